"""Covering one face's regions by weight, step by step, without Qt: the order, the patches, the readings per step."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_fixtures import analysis, face_image, make_controller, make_face, messages

from ran_core.structures import FERPLUS_CLASSES
from ran_viewer.model.analysis import ModelsInfo
from ran_viewer.model.cover_by_weight import CoverByWeight
from ran_viewer.model.occluders import RectOccluder

ALPHAS = [0.05, 0.30, 0.10, 0.25, 0.15, 0.15]  # equal betas: the α·β shares follow the alphas
BOX = (60.0, 20.0, 260.0, 230.0)


def probs(cls: int, p: float = 0.8) -> list[float]:
    out = np.full(8, (1 - p) / 7)
    out[cls] = p
    return out.tolist()


def face(cls: int, p: float = 0.8):
    return make_face(BOX, ALPHAS, probabilities=probs(cls, p), image_shape=(240, 320))


@pytest.fixture
def shown():
    """A controller showing one still image whose single face RAN reads as neutral (baseline: happiness)."""
    c, state, engine, _ = make_controller()
    c.open_array(face_image(), "a")
    c.on_image_loaded(0, face_image(), "a", None)
    c.on_result(analysis("image", 0, 0, [face(0)], baseline_faces=[face(1, 0.6)]))
    return c, state, engine


def test_regions_are_covered_most_weighted_first_and_region_0_never(shown) -> None:
    c, state, engine = shown
    cover = CoverByWeight(c)
    said = messages(state)
    assert cover.start() and cover.active and cover.step == 0
    assert cover.names == ["top_left", "center_down", "center_90", "center_75", "top_right"]  # ties keep K order
    assert cover.order == [1, 3, 4, 5, 2] and cover.total == 5
    assert cover.shares == pytest.approx([0.30, 0.25, 0.15, 0.15, 0.10])
    assert said[-1][0].startswith("covered 0 of 5 regions of face #1 — RAN says neutral 80%, baseline happiness 60%")
    assert "next: top_left (α·β 0.30)" in said[-1][0]

    assert cover.forward()
    top_left = state.ran_faces[0].regions[1].box
    assert state.occluders == [
        RectOccluder(fill="mean", color=(128, 128, 128), x1=top_left[0], y1=top_left[1], x2=top_left[2], y2=top_left[3])
    ]
    assert engine.calls[-1] == ("occlusion", 1, [BOX], 0)  # the SAME face is re-read on the covered image
    assert state.selected_region == 1  # the region just covered is highlighted
    x1, y1, x2, y2 = (round(v) for v in top_left)
    patch = state.display_image[max(y1, 0) : y2, max(x1, 0) : x2]
    assert patch.size and (patch == 128).all()  # filled with the mean grey, as ran_core's deletion fills
    assert said[-1][0].startswith("covered 1 of 5 regions: top_left — reading the covered face…")


def test_each_step_shows_its_own_reading_even_when_results_arrive_late(shown) -> None:
    c, state, engine = shown
    cover = CoverByWeight(c)
    said = messages(state)
    cover.start()
    cover.forward()  # request 1
    cover.forward()  # request 2
    # request 1's result arrives after the second patch went on: shown, but it is not step 2's reading
    assert c.on_result(analysis("occlusion", 1, 0, [face(2)], occluded=True))
    assert not c.reading_is_current and 2 not in cover.readings and 1 not in cover.readings
    assert c.on_result(analysis("occlusion", 2, 0, [face(3, 0.62)], baseline_faces=[face(1, 0.5)], occluded=True))
    assert c.reading_is_current and cover.readings[2][0].label == "sadness"
    assert said[-1][0] == (
        "covered 2 of 5 regions: top_left, center_down — RAN now says sadness 62% (was neutral 80%), "
        "baseline happiness 50% (was happiness 60%) · next: center_90 (α·β 0.15)"
    )
    # one step back: the patch of center_down goes, the models read the face with top_left covered only
    assert cover.back() and cover.step == 1 and len(state.occluders) == 1
    assert engine.calls[-1] == ("occlusion", 1, [BOX], 0) and state.selected_region == 1
    c.on_result(analysis("occlusion", 3, 0, [face(4)], occluded=True))
    assert cover.readings[1][0].label == "anger" and "RAN now says anger 80%" in said[-1][0]
    # back to the uncovered face: its reading is known, nothing is run
    n = len(engine.calls)
    assert cover.back() and cover.step == 0 and state.occluders == [] and len(engine.calls) == n
    assert state.ran_faces[0].label == "neutral" and not cover.back()


def test_go_to_the_end_and_stop(shown) -> None:
    c, state, engine = shown
    cover = CoverByWeight(c)
    changed: list = []
    cover.events.changed.connect(lambda: changed.append(cover.step))
    cover.start()
    cover.go_to(99)
    assert cover.step == 5 and len(state.occluders) == 5 and not cover.can_forward and not cover.forward()
    assert cover.covered == cover.names and changed[-1] == 5
    cover.go_to(2)
    assert cover.step == 2 and state.occluders == cover.occluders(2)
    cover.stop()
    assert not cover.active and state.occluders == [] and not cover.can_back


def test_editing_the_patches_another_face_or_image_stops_it(shown) -> None:
    c, state, engine = shown
    cover = CoverByWeight(c)
    said = messages(state)
    cover.start()
    cover.forward()
    state.add_occluder(RectOccluder(x1=0, y1=0, x2=10, y2=10))  # the user draws a patch of their own
    assert not cover.active and len(state.occluders) == 2 and "stopped" in said[-1][0]
    cover.start()
    assert state.occluders == [] and cover.active  # starting again starts from the uncovered face
    cover.forward()
    state.set_image(face_image(seed=3), "b")
    assert not cover.active


def test_it_cannot_start_without_a_ran_face_or_during_the_camera() -> None:
    c, state, engine, _ = make_controller()
    cover = CoverByWeight(c)
    said = messages(state)
    assert not cover.start() and "needs a face" in said[-1][0]
    c.open_array(face_image(), "a")
    c.on_image_loaded(0, face_image(), "a", None)
    base = make_face(BOX, [float("nan")] * 6, image_shape=(240, 320))
    c.on_result(analysis("image", 0, 0, [], baseline_faces=[base]))
    assert not cover.start() and "load a RAN model" in said[-1][0]
    c.start_camera(0)
    assert not cover.start() and "stop the camera" in said[-1][0]
    assert FERPLUS_CLASSES[0] == "neutral"


def test_patches_take_the_loaded_rans_normalisation_mean(shown) -> None:
    """ran_core's deletion covers with the model's mean: an RGB model with ImageNet statistics gets that colour."""
    c, state, engine = shown
    c.on_models_loaded(ModelsInfo(ran_name="rgb-ran", ran_mean=(0.485, 0.456, 0.406)))
    c.on_result(analysis("image", 0, 0, [face(0)], baseline_faces=[face(1, 0.6)]))
    cover = CoverByWeight(c)
    cover.start()
    cover.forward()
    assert state.occluders[0].color == (124, 116, 104)
    x1, y1, x2, y2 = (round(v) for v in state.ran_faces[0].regions[1].box)
    patch = state.display_image[max(y1, 0) : y2, max(x1, 0) : x2]
    assert patch.size and (patch == np.array([124, 116, 104], np.uint8)).all()
    c.on_models_loaded(ModelsInfo(ran_name="gray-ran", ran_mean=(0.25,)))
    assert c.cover_color == (64, 64, 64)
    c.on_models_loaded(ModelsInfo(baseline_name="baseline only"))  # no RAN: mid-grey
    assert c.cover_color == (128, 128, 128)
