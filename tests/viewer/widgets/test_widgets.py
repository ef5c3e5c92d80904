"""Widgets: mutate the state, assert on what the views draw; drive the main window like a user (with fake models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QGuiApplication, QImage
from viewer_fixtures import FakePredictor, face_image, make_face

from ran_viewer.model.occluders import eye_bar
from ran_viewer.model.viewer_state import ViewerState
from ran_viewer.services.analysis import Analyzer
from ran_viewer.widgets.image_view import QtImageView, weight_color
from ran_viewer.widgets.main_window import QtMainWindow, qimage_to_rgb
from ran_viewer.widgets.probability_chart import QtProbabilityWidget
from ran_viewer.widgets.region_crops import QtRegionCropWidget
from ran_viewer.widgets.region_weights import QtRegionWeightWidget
from ran_viewer.widgets.thumbnail_strip import QtThumbnailStripWidget

ALPHAS = [0.05, 0.30, 0.10, 0.25, 0.15, 0.15]


@pytest.fixture
def state() -> ViewerState:
    s = ViewerState()
    s.set_image(face_image(300, 400))
    s.set_model_names("ran-test", "baseline-test")
    return s


def _faces() -> tuple[list, list]:
    ran = [make_face((100, 50, 300, 260), ALPHAS, image_shape=(300, 400))]
    base = [make_face((100, 50, 300, 260), [float("nan")], probabilities=np.eye(8)[0], image_shape=(300, 400))]
    base[0].regions = base[0].regions[:1]
    return ran, base


def test_image_view_colours_regions_by_weight(qtbot, state: ViewerState) -> None:
    view = QtImageView(state, "ran")
    qtbot.addWidget(view)
    ran, base = _faces()
    state.set_predictions(ran, base)
    assert len(view.region_items) == 6
    levels = state.weight_levels()
    for _, k, item, color in view.region_items:
        assert color == weight_color(state.region_values(ran[0])[k], levels)
        assert item.pen().color() == color
    top = max(view.region_items, key=lambda t: state.region_values(ran[0])[t[1]])
    assert top[1] == 1 and top[3].name() == "#fde725"  # the heaviest region is viridis' yellow end
    state.weight_mode = "alpha"
    assert {c.name() for *_, c in view.region_items} != set()
    assert view.colorbar is not None and view.colorbar.levels() == pytest.approx(state.weight_levels())


def test_image_view_selection_highlight_landmarks_and_title(qtbot, state: ViewerState) -> None:
    view = QtImageView(state, "ran")
    qtbot.addWidget(view)
    ran, base = _faces()
    state.set_predictions(ran, base)
    state.select(0, 3)
    widths = {k: item.pen().widthF() for _, k, item, _ in view.region_items}
    assert widths[3] > max(w for k, w in widths.items() if k != 3)
    assert view.landmarks_item.data.size == 0
    state.show_landmarks = True
    assert len(view.landmarks_item.data) == 5
    assert "ran-test" in view.title.text and "disagreement" in view.title.text


def test_baseline_view_draws_faces_and_flags_disagreement(qtbot, state: ViewerState) -> None:
    view = QtImageView(state, "baseline")
    qtbot.addWidget(view)
    ran, base = _faces()
    state.set_predictions(ran, base)
    assert view.region_items == [] and len(view.face_items) == 1
    assert view.face_items[0][1].pen().style() == Qt.PenStyle.DashLine  # RAN and baseline disagree
    state.set_predictions(ran, [make_face((100, 50, 300, 260), ALPHAS, image_shape=(300, 400))])
    assert view.face_items[0][1].pen().style() == Qt.PenStyle.SolidLine
    assert view.colorbar is None


def test_click_selects_region_and_drag_occludes(qtbot, state: ViewerState) -> None:
    view = QtImageView(state, "ran")
    qtbot.addWidget(view)
    view.resize(500, 400)
    view.show()
    qtbot.waitExposed(view)
    ran, _ = _faces()
    state.set_predictions(ran, [])
    x1, y1, x2, y2 = ran[0].regions[3].box  # center_down: its bottom edge is its own
    view.vb.sig_clicked.emit((x1 + x2) / 2, y2 - 0.5)
    assert (state.selected_face, state.selected_region) == (0, 3)
    view.vb.sig_clicked.emit(5, 5)  # outside every face: region unselected
    assert state.selected_region is None
    state.occlusion_tool = "patch"
    assert view.vb.editing
    before = view.image_item.image.copy()
    for phase, x, y in (("start", 120, 60), ("move", 200, 120), ("finish", 220, 140)):
        view.vb.sig_drag.emit(phase, x, y)
    assert len(state.occluders) == 1 and (view.image_item.image[60:140, 120:220] == 0).all()
    assert not np.array_equal(before, view.image_item.image)


def test_probability_and_weight_panels(qtbot, state: ViewerState) -> None:
    probs, weights, crops = QtProbabilityWidget(state), QtRegionWeightWidget(state), QtRegionCropWidget(state)
    for w in (probs, weights, crops):
        qtbot.addWidget(w)
    assert probs.ran_values is None and weights.values.size == 0
    ran, base = _faces()
    state.set_predictions(ran, base)
    np.testing.assert_allclose(probs.ran_values, ran[0].probabilities)
    np.testing.assert_allclose(probs.baseline_values, base[0].probabilities)
    ticks = probs.plot.getPlotItem().getAxis("left")._tickLevels[0]
    assert [t[1].lstrip("▶ ") for t in ticks] == ran[0].class_names and ticks[ran[0].probabilities.argmax()][1][
        0
    ] == "▶"
    np.testing.assert_allclose(weights.values, state.region_values(ran[0]))
    assert weights.colors[1] == weight_color(weights.values[1], state.weight_levels())
    # the crop panel: aligned face first, then the selected region's crop as the model saw it
    assert crops.shown.shape == (24, 24) and len(crops.thumbs) == 6
    state.select(0, 2)
    np.testing.assert_array_equal(crops.shown, ran[0].region_crops[2][..., 0])
    assert "top_right" in crops.title.text


def test_weight_bar_click_selects_region(qtbot, state: ViewerState) -> None:
    weights = QtRegionWeightWidget(state)
    qtbot.addWidget(weights)
    weights.resize(400, 300)
    weights.show()
    qtbot.waitExposed(weights)
    state.set_predictions(*_faces())
    vb = weights.plot.getPlotItem().getViewBox()
    scene_pt = vb.mapViewToScene(QPointF(0.05, 4))
    view_pt = weights.plot.mapFromScene(scene_pt)
    qtbot.mouseClick(weights.plot.viewport(), Qt.MouseButton.LeftButton, pos=view_pt)
    assert state.selected_region == 4


def test_thumbnail_strip_follows_sources(qtbot, image_files: list[Path]) -> None:
    state = ViewerState()
    strip = QtThumbnailStripWidget(state)
    qtbot.addWidget(strip)
    state.set_sources([str(p) for p in image_files], 1)
    assert strip.count() == 4 and strip.currentRow() == 1
    qtbot.waitUntil(lambda: not strip.loading, timeout=5000)
    strip.setCurrentRow(2)
    assert state.source_index == 2
    state.next_source()
    assert strip.currentRow() == 3
    strip.shutdown()


# --- the main window -----------------------------------------------------------------------------------------------


def test_open_folder_navigate_with_keys_and_survive_a_corrupt_file(qtbot, window, image_files: list[Path]) -> None:
    state = window.state
    assert window.open_paths([image_files[0].parent]) == 4
    assert window.wait_idle(10)
    assert Path(state.current_source).name == "broken.jpg"  # sorted first, and not readable
    assert state.image is None and "cannot decode" in window.message_label.text()
    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.wait_idle(10)
    assert state.image_name == "img_0.png" and len(state.ran_faces) == 1 and len(state.baseline_faces) == 1
    assert "1 face" in window.message_label.text()
    qtbot.keyClick(window, Qt.Key.Key_End)
    assert window.wait_idle(10) and state.image_name == "img_2.png"
    assert window.thumb_widget.currentRow() == 3
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert window.wait_idle(10) and state.image_name == "img_1.png"


def test_missing_path_and_no_face_are_messages(qtbot, window, tmp_path: Path) -> None:
    assert window.open_paths([tmp_path / "nope.png"]) == 0
    assert "not found" in window.message_label.text()
    window.worker.set_analyzer(Analyzer(FakePredictor("ran", faces=0)))
    window.open_array(face_image(), "blank")
    assert window.wait_idle(10)
    assert "no face found" in window.message_label.text() and window.state.image is not None


def test_paste_and_drop_images(qtbot, window, image_files: list[Path]) -> None:
    img = face_image(100, 120)
    qimg = QImage(img.data, 120, 100, 360, QImage.Format.Format_RGB888).copy()
    np.testing.assert_array_equal(qimage_to_rgb(qimg), img)
    QGuiApplication.clipboard().setImage(qimg)
    window.paste()
    assert window.wait_idle(10)
    assert window.state.image_name == "clipboard" and window.state.image.shape == (100, 120, 3)
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(image_files[2]))])
    ev = QDropEvent(
        QPointF(50, 50), Qt.DropAction.CopyAction, md, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    window.dropEvent(ev)
    assert window.wait_idle(10) and window.state.image_name == "img_2.png"


def test_compare_toggle_and_linked_views(qtbot, window, image_files: list[Path]) -> None:
    window.open_paths([image_files[0]])
    assert window.wait_idle(10)
    assert window.base_view.isVisible()
    window.ran_view.vb.setRange(xRange=(10, 60), yRange=(20, 70), padding=0)
    # One pan/zoom for both views: same centre, same scale (the wider view just shows a bit more at the sides).
    (ax, ay), (bx, by) = window.ran_view.vb.viewRange(), window.base_view.vb.viewRange()
    np.testing.assert_allclose([np.mean(ax), np.mean(ay)], [np.mean(bx), np.mean(by)], atol=1e-6)
    np.testing.assert_allclose(window.ran_view.vb.viewPixelSize(), window.base_view.vb.viewPixelSize(), rtol=1e-6)
    window.act_compare.trigger()
    assert not window.state.compare and not window.base_view.isVisible()
    window.act_landmarks.trigger()
    assert window.state.show_landmarks


def test_occlusion_updates_ran_and_baseline_live_with_fixed_boxes(qtbot, window, image_files: list[Path]) -> None:
    state = window.state
    window.open_paths([image_files[0]])
    assert window.wait_idle(10)
    face = state.ran_faces[0]
    clean_alpha = state.region_values(face).copy()
    clean_base = state.baseline_faces[0].probabilities.copy()
    state.add_occluder(eye_bar(face.box, face.landmarks))
    assert window.wait_idle(10)
    assert state.ran_faces[0].box == face.box  # the face did not move
    assert not np.allclose(state.region_values(state.ran_faces[0]), clean_alpha)
    assert not np.allclose(state.baseline_faces[0].probabilities, clean_base)
    assert window.prob_widget.ran_clean.isVisible()  # the unoccluded probabilities stay visible for comparison
    state.clear_occluders()
    assert window.wait_idle(10)
    np.testing.assert_allclose(state.region_values(state.ran_faces[0]), clean_alpha)


def test_camera_start_pause_snapshot_stop(qtbot, window, monkeypatch, tmp_path: Path) -> None:
    state = window.state
    window.start_camera(0)
    qtbot.waitUntil(lambda: state.image is not None and len(state.ran_faces) == 1, timeout=10000)
    assert state.camera.running and window.act_pause.isEnabled()
    qtbot.waitUntil(lambda: state.camera.capture_fps > 0, timeout=5000)
    assert "fps" in window.fps_label.text()
    window.act_pause.trigger()
    assert state.camera.paused and "paused" in window.fps_label.text()
    monkeypatch.setattr("ran_viewer.widgets.main_window.QStandardPaths.writableLocation", lambda *_: str(tmp_path))
    path = window.snapshot()
    assert path is not None and path.is_file()
    window.toggle_camera()
    assert not state.camera.running and window.camera_worker is None


def test_camera_tta_menu_sets_the_analyzer_and_follows_the_state(window) -> None:
    state = window.state
    assert window.camera_tta_actions[None].isChecked()
    window.camera_tta_actions["flip"].trigger()
    assert state.camera.tta == "flip" and window.wait_idle(10)
    assert window.worker.analyzer.camera_tta == "flip"
    window.controller.set_camera_tta(None)  # e.g. from the command line
    assert window.camera_tta_actions[None].isChecked() and not window.camera_tta_actions["flip"].isChecked()


def test_camera_menu_chooses_an_index_or_a_video_file(window, monkeypatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(window, "start_camera", started.append)
    answers = iter([(2, True), (0, False)])
    monkeypatch.setattr("ran_viewer.widgets.main_window.QInputDialog.getInt", lambda *a, **k: next(answers))
    window.act_choose_camera.trigger()
    window.act_choose_camera.trigger()  # cancelled: nothing starts
    files = iter([("/videos/clip.mp4", "Videos"), ("", "")])
    monkeypatch.setattr("ran_viewer.widgets.main_window.QFileDialog.getOpenFileName", lambda *a, **k: next(files))
    window.act_video_camera.trigger()
    window.act_video_camera.trigger()
    assert started == [2, "/videos/clip.mp4"]


def test_missing_camera_keeps_app_running(qtbot, window) -> None:
    window.start_camera(99)
    qtbot.waitUntil(lambda: not window.state.camera.running, timeout=5000)
    assert "could not be opened" in window.message_label.text()
    window.open_array(face_image(), "after")
    assert window.wait_idle(10) and window.state.ran_faces


def test_bad_models_are_reported_and_the_viewer_keeps_running(qtbot, tmp_path: Path) -> None:
    bad = tmp_path / "weights.pth"
    bad.write_bytes(b"not ours")
    win = QtMainWindow(models=(str(tmp_path / "missing-model"), str(bad), "haar"), dialogs=False)
    qtbot.addWidget(win)
    try:
        assert win.wait_idle(30)
        assert win.state.ran_model_name == "" and "could not be loaded" in win.message_label.text()
        win.open_array(face_image(), "x")
        assert win.wait_idle(10) and "no model loaded" in win.message_label.text()
        assert "not loaded" in win.ran_view.title.text
    finally:
        win.shutdown()


def test_evaluation_tabs_open_images_in_the_main_view(qtbot, window, image_files: list[Path]) -> None:
    """The evaluation view and the subset browser are hosted as tabs; clicking an image there opens it here."""
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert titles[0] == "Attention" and "Evaluation" in titles
    if window.evaluation_widget is None:
        pytest.skip("evaluation panels not installed")
    window.tabs.setCurrentWidget(window.evaluation_widget)
    assert not window.docks["probabilities"].isVisible()  # the attention panels make room for the evaluation
    window.evaluation_widget.sig_open_image.emit(str(image_files[1]))
    assert window.wait_idle(10)
    assert window.tabs.currentIndex() == 0 and window.state.image_name == "img_1.png" and window.state.ran_faces
    assert window.docks["probabilities"].isVisible()


def test_a_long_title_never_pushes_the_colour_bar_out_of_the_view(qtbot, state: ViewerState) -> None:
    """pyqtgraph gives a label its text's width as minimum: a camera frame's long title once widened the canvas's
    layout past the view for good, and the colour bar slid out of sight."""
    view = QtImageView(state, "ran")
    qtbot.addWidget(view)
    view.resize(420, 400)
    view.show()
    qtbot.waitExposed(view)
    state.set_model_names("a-model-name-long-enough-to-need-more-room-than-this-view-has", "baseline")
    state.set_predictions(*_faces())
    qtbot.wait(20)
    assert view.title.itemRect().width() > view.canvas.width()  # the title really is longer than the view
    bar = view.colorbar.geometry()
    assert bar.width() > 20 and bar.right() <= view.canvas.width() + 0.5
