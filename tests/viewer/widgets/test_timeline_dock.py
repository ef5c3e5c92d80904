"""The timeline dock on a video played through the real camera path (fake models): it plots the selected face over
the file's time, a click seeks the video to that frame, and a live camera does not seek."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage

from ran_viewer.services.camera import VideoFileSource
from ran_viewer.widgets.common import class_color


def _rgb(img: QImage) -> np.ndarray:
    img = img.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    return np.frombuffer(img.constBits(), np.uint8, count=bpl * h).reshape(h, bpl)[:, : 3 * w].reshape(h, w, 3).copy()


def click_at_time(qtbot, widget, t: float) -> None:
    """A real left click on the probability plot at time ``t``."""
    scene = widget.prob_plot.getViewBox().mapViewToScene(QPointF(t, 0.5))
    qtbot.mouseClick(widget.view.viewport(), Qt.MouseButton.LeftButton, pos=widget.view.mapFromScene(scene))


def test_timeline_follows_the_face_of_a_video_and_a_click_seeks_to_that_frame(qtbot, window) -> None:
    state, tl, w = window.state, window.timeline, window.timeline_widget
    assert not window.docks["timeline"].isVisible()
    window.start_camera("clip.avi")
    assert window.docks["timeline"].isVisible()  # a camera session shows the timeline
    qtbot.waitUntil(lambda: len(tl.series()) >= 6, timeout=10000)
    window.act_pause.trigger()
    assert window.wait_idle(10)
    s = tl.series()
    # the dock redraws at most 20 times a second: wait for the drawing of the last reading
    qtbot.waitUntil(lambda: len(w.prob_curves) == 8 and len(w.prob_curves[0].getData()[0]) == len(s), timeout=2000)
    assert s.track == state.selected_face_result.track_id and s.class_names == state.ran_faces[0].class_names
    np.testing.assert_allclose(s.times * 30, np.round(s.times * 30), atol=1e-6)  # the file's clock: frame / 30 fps
    assert len(w.prob_curves) == 8 and len(w.weight_curves) == 6
    for c, curve in enumerate(w.prob_curves):
        x, y = curve.getData()
        np.testing.assert_allclose(x, s.times)
        np.testing.assert_allclose(y, s.probabilities[:, c])
    np.testing.assert_allclose(w.weight_curves[1].getData()[1], s.weights[:, 1])
    assert w.cursors[0].value() == pytest.approx(state.frame_time)
    assert "Click the timeline" in w.view.toolTip()
    qtbot.wait(20)
    pixels = _rgb(w.view.grab().toImage())
    top = int(np.argmax(s.probabilities[-1]))
    colour = np.array([int(class_color(top)[i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(pixels.astype(int) - colour).max(axis=2) <= 2).sum() > 20  # the top class's line is drawn

    target = float(s.times[len(s) // 2])
    with qtbot.waitSignal(w.sig_seek, timeout=2000) as blocker:
        click_at_time(qtbot, w, target)
    frame = round(blocker.args[0] * 30)
    assert abs(frame - round(target * 30)) <= 1  # the click lands where it was aimed
    qtbot.waitUntil(lambda: state.frame_time == pytest.approx(frame / 30), timeout=5000)
    assert abs(int(state.image[5, 150, 0]) - 4 * frame) <= 3  # the shown frame IS that frame (brightness 4 i)
    assert window.wait_idle(10)
    assert tl.series().times[-1] == pytest.approx(frame / 30)  # the timeline went back with the video
    qtbot.waitUntil(lambda: w.cursors[0].value() == pytest.approx(frame / 30), timeout=2000)
    assert w.prob_curves[0].getData()[0][-1] == pytest.approx(frame / 30)
    assert state.camera.paused  # seeking a paused video shows one frame and stays paused


def test_timeline_of_a_live_camera_does_not_seek(qtbot, window, fake_camera_video: Path) -> None:
    class LiveCamera(VideoFileSource):
        """The test video, as a webcam would give it: no file time, no seeking."""

        def __init__(self) -> None:
            super().__init__(fake_camera_video, fps=60, loop=True)
            self.seekable = False

    window.camera_factory = lambda spec: LiveCamera()
    state, w = window.state, window.timeline_widget
    window.start_camera(0)
    qtbot.waitUntil(lambda: len(window.timeline.series()) >= 3, timeout=10000)
    assert not state.camera.seekable and "does nothing" in w.view.toolTip()
    times = window.timeline.series().times
    assert np.all(np.diff(times) > 0)  # a monotonic clock
    qtbot.waitUntil(lambda: len(w.prob_curves) == 8 and len(w.prob_curves[0].getData()[0]) > 0, timeout=2000)
    seeks: list[float] = []
    w.sig_seek.connect(seeks.append)
    click_at_time(qtbot, w, float(times[0]))
    assert seeks == [] and not window.controller.seek_camera(0.5)
    assert "cannot go back in time" in window.message_label.text()


def test_the_timeline_dock_belongs_to_the_attention_tab(qtbot, window) -> None:
    window.start_camera("clip.avi")
    assert window.docks["timeline"].isVisible()
    window.tabs.setCurrentIndex(1)
    assert not window.docks["timeline"].isVisible()
    window.tabs.setCurrentIndex(0)
    assert window.docks["timeline"].isVisible()
