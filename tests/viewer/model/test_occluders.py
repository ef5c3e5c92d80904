"""Occluders burned into images, and the occlusion editor (Qt-free)."""

from __future__ import annotations

import numpy as np
import pytest
from viewer_fixtures import event_counter, face_image, make_face

from ran_viewer.model.occluders import (
    BrushStroke,
    EllipseOccluder,
    PolygonOccluder,
    RectOccluder,
    apply_occluders,
    eye_bar,
    mouth_mask,
    occluder_mask,
)
from ran_viewer.model.occlusion_editor import OcclusionEditor
from ran_viewer.model.viewer_state import ViewerState


def test_occluders_change_only_covered_pixels_and_leave_original() -> None:
    state = ViewerState()
    img = face_image()
    state.set_image(img.copy())
    counts = event_counter(state)
    state.add_occluder(RectOccluder(x1=10, y1=20, x2=30, y2=50))
    shown = state.display_image
    assert (shown[20:50, 10:30] == 0).all()
    mask = np.ones(img.shape[:2], bool)
    mask[20:50, 10:30] = False
    assert (shown[mask] == img[mask]).all() and (state.image == img).all()
    state.replace_last_occluder(RectOccluder(fill="gray", x1=0, y1=0, x2=5, y2=5))
    assert (state.display_image[:5, :5] == 128).all() and (state.display_image[20:50, 10:30] == img[20:50, 10:30]).all()
    state.undo_occluder()
    state.undo_occluder()  # nothing left: no event
    state.clear_occluders()
    assert state.display_image is state.image and counts == {"occluders": 3}


@pytest.mark.parametrize(
    "occ",
    [
        RectOccluder(x1=5, y1=5, x2=40, y2=30),
        PolygonOccluder(points=((5, 5), (60, 10), (55, 40), (8, 35))),
        EllipseOccluder(cx=50, cy=40, rx=20, ry=10, angle=30),
        BrushStroke(points=((10, 10), (60, 60)), radius=5),
    ],
)
@pytest.mark.parametrize("fill", ["black", "gray", "noise", "blur"])
def test_every_shape_and_fill(occ, fill: str) -> None:
    from dataclasses import replace

    occ = replace(occ, fill=fill)
    img = face_image(120, 160)
    out = apply_occluders(img, [occ])
    mask = occluder_mask(occ, img.shape[:2])
    assert mask.sum() > 50
    assert (out[~mask] == img[~mask]).all()  # nothing outside the shape changes
    assert (out[mask] != img[mask]).any()
    np.testing.assert_array_equal(out, apply_occluders(img, [occ]))  # deterministic, even the noise
    assert occ.contains(*np.argwhere(mask)[len(np.argwhere(mask)) // 2][::-1])
    moved = occ.moved(10, 5)
    np.testing.assert_allclose(np.array(moved.bounds()) - np.array(occ.bounds()), [10, 5, 10, 5])


def test_occluder_outside_image_and_empty_list() -> None:
    img = face_image(50, 50)
    assert apply_occluders(img, []) is img
    np.testing.assert_array_equal(apply_occluders(img, [RectOccluder(x1=100, y1=100, x2=120, y2=120)]), img)
    with pytest.raises(ValueError):
        apply_occluders(img, [RectOccluder(fill="plaid", x1=0, y1=0, x2=5, y2=5)])


@pytest.mark.parametrize("n_points", [5, 68, 0])
def test_eye_bar_covers_eyes_and_mouth_mask_covers_mouth(n_points: int) -> None:
    box = (100.0, 100.0, 200.0, 220.0)
    if n_points == 5:
        lm = np.array([[130, 150], [170, 150], [150, 175], [135, 195], [165, 195]], float)
    elif n_points == 68:
        lm = np.zeros((68, 2))
        lm[36:42], lm[42:48], lm[30], lm[48:68] = (130, 150), (170, 150), (150, 175), (150, 195)
    else:
        lm = None
    bar, mask = eye_bar(box, lm), mouth_mask(box, lm)
    eyes_y = 150 if lm is not None else 100 + 0.4 * 120
    mouth_y = 195 if lm is not None else 100 + 0.78 * 120
    assert bar.contains(130, eyes_y) and bar.contains(170, eyes_y) and not bar.contains(150, mouth_y)
    assert mask.contains(150, mouth_y) and not mask.contains(130, eyes_y)


def test_editor_patch_brush_and_face_tools() -> None:
    state = ViewerState()
    state.set_image(face_image())
    editor = OcclusionEditor(state)
    assert not editor.press(5, 5)  # tool "none" edits nothing
    state.occlusion_tool = "patch"
    editor.press(10, 10)
    editor.move(40, 30)
    editor.release(50, 60)
    assert state.occluders[-1].bounds() == (10, 10, 50, 60)
    editor.press(5, 5)
    editor.release(6, 6)  # a click is not a patch
    assert len(state.occluders) == 1
    state.occlusion_tool = "brush"
    state.brush_radius = 6
    editor.press(0, 0)
    for x in range(1, 40):
        editor.move(x, x)
    editor.release(40, 40)
    stroke = state.occluders[-1]
    assert isinstance(stroke, BrushStroke) and stroke.radius == 6 and 5 < len(stroke.points) < 40
    state.occlusion_tool = "eyes"
    messages = []
    state.events.message.connect(lambda text, level: messages.append(text))
    assert not editor.press(100, 100) and messages  # no face yet: says so
    state.set_predictions([make_face((100, 60, 220, 200), [0.2] * 6)], [])
    editor.press(150, 100)
    before = state.occluders[-1].bounds()
    editor.move(160, 110)
    editor.release(160, 110)
    after = state.occluders[-1].bounds()
    np.testing.assert_allclose(np.subtract(after, before), [10, 10, 10, 10])
    with pytest.raises(ValueError):
        state.occlusion_tool = "laser"
