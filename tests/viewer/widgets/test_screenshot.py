"""Real renders: read the pixels of a grabbed view, and run ``ran-viewer --screenshot`` end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage
from viewer_fixtures import SAMPLES, face_image, make_face

from ran_viewer.model.viewer_state import ViewerState
from ran_viewer.widgets.image_view import QtImageView, weight_colormap

ALPHAS = [0.04, 0.36, 0.08, 0.22, 0.12, 0.18]  # distinct weights -> distinct viridis colours


def _rgb(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    return np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)[:, : 3 * w].reshape(h, w, 3).copy()


def _shown_view(qtbot) -> tuple[ViewerState, QtImageView]:
    """A RAN view of a 400x300 test image, shown at 900x700."""
    state = ViewerState()
    state.set_image(face_image(300, 400))
    view = QtImageView(state, "ran")
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    qtbot.waitExposed(view)
    return state, view


def _edge_points(box: tuple[float, ...], n: int = 24) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = box
    t = np.linspace(0.1, 0.9, n)
    return (
        [(x1 + (x2 - x1) * s, y1) for s in t]
        + [(x1 + (x2 - x1) * s, y2) for s in t]
        + [(x1, y1 + (y2 - y1) * s) for s in t]
        + [(x2, y1 + (y2 - y1) * s) for s in t]
    )


def _dist_to_edges(box: tuple[float, ...], x: float, y: float) -> float:
    x1, y1, x2, y2 = box
    dx = 0.0 if x1 <= x <= x2 else min(abs(x - x1), abs(x - x2))
    dy = 0.0 if y1 <= y <= y2 else min(abs(y - y1), abs(y - y2))
    if dx == 0.0 and dy == 0.0:
        return min(abs(x - x1), abs(x - x2), abs(y - y1), abs(y - y2))
    return float(np.hypot(dx, dy))


def test_region_boxes_are_drawn_in_their_viridis_colours(qtbot) -> None:
    """Grab the real widget and check, along every region outline, that the pixels have the viridis colour of that
    region's weight: the rendering, not just the item properties, is right."""
    state, view = _shown_view(qtbot)
    face = make_face((100, 40, 300, 270), ALPHAS, image_shape=(300, 400))
    state.set_predictions([face], [])
    qtbot.wait(50)
    pixels = _rgb(view.grab().toImage())

    values = state.region_values(face)
    lo, hi = state.weight_levels()
    lut = weight_colormap().map((values - lo) / (hi - lo), mode="byte")[:, :3].astype(int)
    assert lut[int(np.argmax(values))].tolist() == [253, 231, 37]  # the largest weight is viridis' yellow
    assert lut[int(np.argmin(values))].tolist() == [68, 1, 84]  # the smallest its purple

    px = max(view.vb.viewPixelSize())  # image units per screen pixel
    labels = [lab.sceneBoundingRect() for lab, *_ in view._labels if lab.isVisible()]
    checked = {}
    for k, region in enumerate(face.regions):
        others = [r.box for j, r in enumerate(face.regions) if j != k]
        good = 0
        for x, y in _edge_points(region.box):
            if min(_dist_to_edges(b, x, y) for b in others) < 6 * px:
                continue  # another outline runs too close to tell them apart
            scene_pt = view.vb.mapViewToScene(QPointF(x, y))
            if any(r.adjusted(-3, -3, 3, 3).contains(scene_pt) for r in labels):
                continue  # under a weight label
            p = view.map_to_widget(x, y)
            patch = pixels[p.y() - 1 : p.y() + 2, p.x() - 1 : p.x() + 2].reshape(-1, 3).astype(int)
            dist = np.abs(patch - lut[k]).max(axis=1).min()
            assert dist <= 6, f"{region.name} at ({x:.0f}, {y:.0f}): pixels {patch.tolist()} != {lut[k].tolist()}"
            good += 1
        checked[region.name] = good
    assert all(n >= 8 for n in checked.values()), checked  # every region's outline was actually sampled

    # The colour bar runs from purple (low) to yellow (high).
    bar = view.colorbar.bar.sceneBoundingRect()  # the gradient itself, without its axes
    top = view.canvas.mapFromScene(bar.center().x(), bar.top() + 30)
    bottom = view.canvas.mapFromScene(bar.center().x(), bar.bottom() - 30)
    c_top, c_bottom = pixels[top.y(), top.x()].astype(int), pixels[bottom.y(), bottom.x()].astype(int)
    assert c_top[1] > 180 and c_top[2] < 120  # yellow-ish
    assert c_bottom[2] > 70 and c_bottom[1] < 80  # purple-ish


def test_cli_screenshot_end_to_end(qapp, tiny_models: dict[str, Path], tmp_path: Path, monkeypatch) -> None:
    """``ran-viewer PHOTO --model M --baseline B --screenshot PNG`` analyses the photo and writes a big PNG, exit 0."""
    from ran_viewer import app
    from ran_viewer.widgets.main_window import QtMainWindow

    seen = {}
    original = QtMainWindow.save_screenshot

    def spy(self, path):
        seen["faces"] = len(self.state.ran_faces)
        seen["baseline"] = len(self.state.baseline_faces)
        seen["models"] = (self.state.ran_model_name, self.state.baseline_model_name)
        return original(self, path)

    monkeypatch.setattr(QtMainWindow, "save_screenshot", spy)
    out = tmp_path / "shot.png"
    argv = [str(SAMPLES / "grace_hopper.jpg"), "--model", str(tiny_models["ran"]), "--baseline"]
    argv += [str(tiny_models["baseline"]), "--detector", "haar", "--screenshot", str(out), "--occlude", "eyes"]
    assert app.main(argv) == 0
    img = QImage(str(out))
    assert img.width() >= 1280 and img.height() >= 800
    assert seen["faces"] >= 1 and seen["baseline"] == seen["faces"]
    assert seen["models"] == ("ran", "baseline")


def test_cli_survives_bad_inputs(qapp, tmp_path: Path) -> None:
    """A corrupt image and a model that does not exist: messages, a screenshot, exit 0 - never a crash."""
    from ran_viewer import app

    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    out = tmp_path / "bad.png"
    argv = [str(bad), str(tmp_path / "missing.png"), "--model", str(tmp_path / "no-model"), "--baseline", "none"]
    assert app.main(argv + ["--screenshot", str(out), "--timeout", "30"]) == 0
    assert QImage(str(out)).width() >= 1280


@pytest.mark.parametrize("argv", [["--size", "10x10"]])
def test_cli_parser_clamps_screenshot_size(argv: list[str]) -> None:
    from ran_viewer.app import build_parser, sample_images

    assert build_parser().parse_args(argv).size == (1280, 800)
    assert [p.name for p in sample_images()] == sorted(p.name for p in sample_images())


@pytest.mark.parametrize("yaw", [40.0, -40.0])
def test_head_pose_glyph_points_where_the_face_turns(qtbot, yaw: float) -> None:
    from ran_core.faces.pose import HeadPose
    from ran_viewer.widgets.image_view import POSE_COLOR

    state, view = _shown_view(qtbot)
    face = make_face((100, 40, 300, 270), ALPHAS, image_shape=(300, 400))
    face.pose = HeadPose(yaw=yaw, pitch=0.0, roll=0.0)
    state.set_predictions([face], [])
    qtbot.waitUntil(lambda: view._n_lines == 2, timeout=2000)
    pixels = _rgb(view.grab().toImage()).astype(int)
    orange = np.array([int(POSE_COLOR[i : i + 2], 16) for i in (1, 3, 5)])
    ys, xs = np.nonzero(np.abs(pixels - orange).max(axis=2) <= 12)
    nose = view.map_to_widget(*face.landmarks[2])
    assert len(xs) > 20  # the glyph is drawn
    assert np.sign(np.median(xs) - nose.x()) == np.sign(yaw)  # to the image's right when the face turns to its left
    assert "yaw -40°" in view.title.text or "yaw +40°" in view.title.text  # and in the title of the selected face
