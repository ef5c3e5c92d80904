"""Fixtures of the widget tests (Qt allowed here): the main window with fake models and a fake camera."""

from __future__ import annotations

from pathlib import Path

import pytest
from viewer_fixtures import FakePredictor

from ran_viewer.services.analysis import Analyzer
from ran_viewer.services.camera import CameraError, VideoFileSource
from ran_viewer.widgets.main_window import QtMainWindow
from ran_viewer.workers.inference import InferenceWorker


@pytest.fixture
def window(qtbot, fake_camera_video: Path):
    """The main window on fake RAN and baseline predictors; every camera is the test video played at 60 fps (camera
    99 is missing)."""
    worker = InferenceWorker(Analyzer(FakePredictor("ran"), FakePredictor("baseline")))

    def camera_factory(spec):
        if spec == 99:
            raise CameraError("Camera 99 could not be opened: it is missing")
        return VideoFileSource(fake_camera_video, fps=60, loop=True)

    win = QtMainWindow(worker=worker, models=None, dialogs=False, camera_factory=camera_factory)
    win.state.set_model_names("fake-ran", "fake-baseline")
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.shutdown()
