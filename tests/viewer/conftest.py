"""Fixtures for the viewer tests: small saved models, image files, a fake camera video. No Qt import here, so the
model and services tests run without it. Helpers (a fake predictor, faces with known weights): viewer_fixtures.py."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from viewer_fixtures import FakePredictor, face_image


@pytest.fixture
def fake_ran() -> FakePredictor:
    return FakePredictor("ran")


@pytest.fixture
def fake_baseline() -> FakePredictor:
    return FakePredictor("baseline")


@pytest.fixture
def image_files(tmp_path: Path) -> list[Path]:
    """Three small PNGs and one corrupt file, in a folder."""
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(3):
        p = folder / f"img_{i}.png"
        cv2.imwrite(str(p), face_image(seed=i)[..., ::-1])
        paths.append(p)
    bad = folder / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    return paths + [bad]


@pytest.fixture(scope="session")
def fake_camera_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-frame video whose frame i has brightness 4*i (so a test can tell which frame was analysed)."""
    path = tmp_path_factory.mktemp("camera") / "camera.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (160, 120))
    assert writer.isOpened()
    for i in range(60):
        frame = np.full((120, 160, 3), 4 * i, np.uint8)
        cv2.putText(frame, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Freshly initialised compact RAN and baseline, saved the way the app loads them."""
    import ran_core

    root = tmp_path_factory.mktemp("models")
    out = {}
    for key, name in (("ran", "ran_compact"), ("baseline", "baseline_compact")):
        model = ran_core.create_model(name)
        out[key] = ran_core.save_model(model.eval(), root / key)
    return out
