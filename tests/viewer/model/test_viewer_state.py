"""The viewer state and its events (Qt-free)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from viewer_fixtures import FakePredictor, event_counter, face_image, make_face

from ran_viewer.model.events import Event
from ran_viewer.model.occluders import (
    RectOccluder,
    apply_occluders,
)
from ran_viewer.model.viewer_state import ViewerState, expand_paths, match_face
from ran_viewer.model.weights import region_values, weight_levels


def test_event_connect_emit_block_disconnect() -> None:
    ev, got = Event("x"), []
    ev.connect(got.append)
    ev.connect(got.append)  # connecting twice calls once
    ev.emit(1)
    with ev.blocked():
        ev.emit(2)
    ev.disconnect(got.append)
    ev.emit(3)
    assert got == [1] and len(ev) == 0


def test_set_image_resets_faces_occluders_and_selection() -> None:
    state = ViewerState()
    img = face_image()
    state.set_image(img, "a.png")
    state.set_predictions([make_face((50, 40, 250, 220), [0.1] * 6)], [])
    state.add_occluder(RectOccluder(x1=0, y1=0, x2=10, y2=10))
    state.select(0, 2)
    counts = event_counter(state)
    state.set_image(face_image(seed=1), "b.png")
    assert state.faces == [] and state.occluders == [] and state.selected_face is None
    assert not state.analysed and counts == {"image": 1, "predictions": 1}
    with pytest.raises(ValueError):
        state.set_image(np.zeros((4, 4), np.uint8))


def test_predictions_select_first_face_and_keep_valid_selection() -> None:
    state = ViewerState()
    faces = [make_face((10, 10, 110, 110), [0.2] * 6), make_face((150, 10, 250, 110), [0.2] * 6)]
    state.set_predictions(faces, [])
    assert (state.selected_face, state.selected_region) == (0, None)
    state.select(1, 3)
    state.set_predictions(faces, [])
    assert (state.selected_face, state.selected_region) == (1, 3)
    state.set_predictions(faces[:1], [])
    assert (state.selected_face, state.selected_region) == (0, None)
    counts = event_counter(state)
    state.select(0, 99)  # out of range region -> no region
    state.select(0, None)  # no change -> no event
    state.select(5, 1)  # out of range face -> nothing
    assert state.selected_face is None and counts == {"selection": 1}


def test_sources_navigation_clamps_and_emits() -> None:
    state = ViewerState()
    counts = event_counter(state)
    state.set_sources(["a", "b", "c"], 1)
    assert state.current_source == "b"
    assert state.next_source() and state.current_source == "c"
    assert not state.next_source()  # at the end
    assert state.go_to(-5) and state.source_index == 0
    assert not state.previous_source()
    assert counts["sources"] == 3
    state.set_sources([])
    assert state.current_source is None and not state.next_source()


def test_expand_paths_folders_sorted_and_problems_reported(image_files: list[Path], tmp_path: Path) -> None:
    folder = image_files[0].parent
    (folder / "notes.txt").write_text("not an image")
    empty = tmp_path / "empty"
    empty.mkdir()
    images, problems = expand_paths([folder, tmp_path / "missing.png", empty, image_files[1]])
    names = [Path(p).name for p in images]
    assert names == ["broken.jpg", "img_0.png", "img_1.png", "img_2.png", "img_1.png"]
    assert len(problems) == 2 and "not found" in problems[0] and "no images" in problems[1]


def test_weight_modes_values_and_levels() -> None:
    face = make_face((0, 0, 100, 100), alphas=[0.1, 0.3, 0.2, 0.1, 0.2, 0.1], betas=[0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    np.testing.assert_allclose(region_values(face, "alpha"), [0.1, 0.3, 0.2, 0.1, 0.2, 0.1])
    share = region_values(face, "alpha*beta")
    assert share.sum() == pytest.approx(1.0) and share.argmax() == 0
    state = ViewerState()
    got = []
    state.events.weight_mode.connect(got.append)
    state.weight_mode = "beta"
    state.weight_mode = "beta"
    assert got == ["beta"]
    with pytest.raises(ValueError):
        state.weight_mode = "gamma"
    state.set_predictions([face], [])
    assert state.weight_levels() == pytest.approx((0.1, 0.5))


def test_weight_levels_never_stretch_nearly_equal_weights() -> None:
    assert weight_levels(np.array([0.1, 0.4, np.nan])) == pytest.approx((0.1, 0.4))
    lo, hi = weight_levels(np.full(6, 1 / 6) + np.arange(6) * 1e-5)
    assert hi - lo >= 0.25 / 6 - 1e-9 and lo < 1 / 6 < hi  # a uniform face stays mid-scale, not purple..yellow
    assert weight_levels(np.array([])) == (0.0, 1.0)


def test_disagreements_and_matching(fake_ran: FakePredictor, fake_baseline: FakePredictor) -> None:
    img = face_image()
    state = ViewerState()
    ran, base = fake_ran(img), fake_baseline(img)
    state.set_predictions(ran, base)
    assert ran[0].label != base[0].label and state.disagreements() == [0]
    state.set_predictions(ran, fake_ran(img))
    assert state.disagreements() == []
    moved = make_face((500, 500, 600, 600), [0.2] * 6)
    assert match_face(moved, ran) is None and match_face(ran[0], [moved, ran[0]]) is ran[0]


def test_face_near_prefers_containing_face() -> None:
    state = ViewerState()
    big, small = make_face((0, 0, 200, 200), [0.2] * 6), make_face((50, 50, 100, 100), [0.2] * 6)
    state.set_predictions([big, small], [])
    assert state.face_near(60, 60) is small
    assert state.face_near(150, 20) is big
    assert state.face_near(900, 900) is small or state.face_near(900, 900) is big


def test_set_frame_keeps_selected_track() -> None:
    state = ViewerState()
    a, b = make_face((0, 0, 50, 50), [0.2] * 6), make_face((100, 0, 150, 50), [0.2] * 6)
    a.track_id, b.track_id = 7, 8
    state.set_frame(face_image(), [a, b], [])
    state.select(1)
    state.set_frame(face_image(), [b, a], [])  # same faces, other order
    assert state.selected_face_result is b


def test_camera_settings_update_once() -> None:
    state = ViewerState()
    counts = event_counter(state)
    state.set_camera(running=True, capture_fps=29.5)
    assert state.camera.running and counts == {"camera": 1}
    with pytest.raises(AttributeError):
        state.set_camera(bogus=1)


def test_a_frame_analysed_with_occluders_keeps_the_clean_frame_as_the_image() -> None:
    """ViewerState.image is 'without occluders': a camera frame the worker read with occluders must not replace it,
    and the clean reading of an older image must not come back when the occluders are cleared."""
    state = ViewerState()
    old = make_face((10, 10, 60, 60), [0.2] * 6)
    state.set_image(face_image(seed=1))
    state.set_predictions([old], [])  # a still image's clean reading
    clean = face_image(seed=2)
    occ = RectOccluder(x1=0, y1=0, x2=320, y2=100)
    state.add_occluder(occ)
    burned = apply_occluders(clean, [occ])
    live = make_face((20, 20, 70, 70), [0.2] * 6)
    state.set_frame(clean, [live], [], analysed=burned)
    assert state.image is clean and np.array_equal(state.display_image, burned)
    assert state.clean_ran_faces == []  # unknown for this frame: nothing stale to restore
    state.clear_occluders()
    assert np.array_equal(state.display_image, clean)  # the clean frame, not the burned one
    # without occluders the frame's reading is its clean reading
    state.set_frame(clean, [live], [])
    assert state.clean_ran_faces == [live]
