"""Landmarks for datasets without them: detected once on upscaled, padded faces, mapped back, cached, per-face
fallback in training."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ferplus_fixtures import train_config
from PIL import Image

from ran_core import create_model, load_model
from ran_core.data import open_dataset
from ran_core.data.landmarks import attach_landmarks, detect_landmarks
from ran_core.data.pipeline import RegionBatcher
from ran_core.engine.trainer import Trainer
from ran_core.faces import Detection, create_detector
from ran_core.faces import detectors as detectors_mod
from ran_core.imageio import read_image, to_gray

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"

# Landmarks as fractions of the face (left eye, right eye, nose, mouth corners).
FRACTIONS = np.array([[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]])


class _FakeDetector:
    """Finds the pasted face: the square of the picture that is not the mid-grey padding, with fixed landmarks in it.
    All-white faces are not found (with ``blind_white``); calls are counted."""

    name = "fake-lm"

    def __init__(self, blind_white: bool = False) -> None:
        self.calls = 0
        self.blind_white = blind_white

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        self.calls += 1
        ys, xs = np.nonzero(np.abs(rgb[..., 0].astype(int) - 128) > 0)
        if len(xs) == 0:
            return []
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        if self.blind_white and rgb[y1:y2, x1:x2].mean() > 250:
            return []
        pts = np.array([x1, y1]) + FRACTIONS * np.array([x2 - x1, y2 - y1])
        return [Detection((x1, y1, x2, y2), 0.99, pts)]


def test_detect_landmarks_maps_points_back_to_the_image() -> None:
    img = np.full((48, 60), 10, np.uint8)
    box = (6.0, 0.0, 54.0, 48.0)  # the face is the middle 48 x 48 of a wider image
    pts = detect_landmarks(img, _FakeDetector(), face_box=box, upscale=96)
    np.testing.assert_allclose(pts, np.array([6, 0]) + FRACTIONS * 48, atol=0.6)
    white = np.full((48, 60), 255, np.uint8)
    assert detect_landmarks(white, _FakeDetector(blind_white=True), face_box=box) is None


def test_attach_landmarks_counts_names_and_caches(ferplus_root, tmp_path) -> None:
    split = open_dataset("ferplus", ferplus_root, "valid")
    det = _FakeDetector(blind_white=True)
    for s in split.samples[:2]:  # two faces the detector cannot find
        Image.fromarray(np.full((48, 48), 255, np.uint8)).save(s.path)
    done: list[tuple[int, int]] = []
    report = attach_landmarks(
        split, det, cache_dir=tmp_path / "cache", progress=False, on_progress=lambda d, t: done.append((d, t))
    )
    assert (report.total, report.detected, report.cached) == (12, 10, 0)
    assert done == [(k, 12) for k in range(1, 13)]  # one call per image, for a GUI's progress bar
    assert report.missing == [split.samples[0].key, split.samples[1].key]
    assert split.samples[0].landmarks is None and split.samples[5].landmarks.shape == (5, 2)
    assert "no face found in 2" in report.summary() and report.cache_path.is_file()
    # a second reading comes from the cache: the detector is not called again
    again = open_dataset("ferplus", ferplus_root, "valid")
    det2 = _FakeDetector()
    report2 = attach_landmarks(again, det2, cache_dir=tmp_path / "cache", progress=False)
    assert det2.calls == 0 and report2.cached == 12 and report2.detected == 10
    np.testing.assert_allclose(again.samples[5].landmarks, split.samples[5].landmarks)


def test_attach_landmarks_refuses_detectors_without_landmarks(ferplus_root) -> None:
    from ran_core.faces import DetectorUnavailable

    with pytest.raises(DetectorUnavailable, match="no landmarks"):
        attach_landmarks(open_dataset("ferplus", ferplus_root, "valid"), "haar")


def test_mtcnn_finds_landmarks_of_a_48px_face() -> None:
    """The real detector on a real face shrunk to a FERPlus-like 48 px grey crop."""
    mtcnn = create_detector("mtcnn")
    rgb = read_image(SAMPLES / "grace_hopper.jpg")
    (face,) = mtcnn.detect(rgb)
    x1, y1, x2, y2 = (int(v) for v in face.box)
    side = max(x2 - x1, y2 - y1)
    crop = rgb[y1 : y1 + side, x1 : x1 + side]
    small = to_gray(cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA))
    pts = detect_landmarks(small, mtcnn)
    assert pts is not None
    expected = (face.five_points - np.array([x1, y1])) * 48 / side
    assert np.abs(pts - expected).max() < 3.0  # pixels of the 48 px crop


def test_batcher_gives_a_face_without_landmarks_fixed_crops_alone() -> None:
    config = create_model("ran_compact", regions={"scheme": "landmark"}).config
    batcher = RegionBatcher(config, augment=None)
    faces = torch.randint(0, 255, (3, 1, 48, 48), dtype=torch.uint8)
    lms = torch.from_numpy(np.stack([FRACTIONS * 48] * 3)).float()
    full = batcher(faces, lms)
    lms[1] = float("nan")
    mixed = batcher(faces, lms)
    torch.testing.assert_close(mixed[[0, 2]], full[[0, 2]])  # the neighbours keep their landmark crops
    fixed = RegionBatcher(create_model("ran_compact").config, augment=None)(faces[1:2])
    torch.testing.assert_close(mixed[1:2], fixed)


def test_landmark_training_on_a_dataset_without_landmarks(ferplus_root, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(detectors_mod, "_REGISTRY", dict(detectors_mod._REGISTRY))
    detectors_mod.register_detector("fake-lm", lambda **kw: _FakeDetector())
    cfg = train_config(
        ferplus_root,
        tmp_path / "run",
        epochs=1,
        regions="landmark",
        landmark_detector="fake-lm",
        landmark_cache=str(tmp_path / "cache"),
    )
    Trainer(cfg).run()
    model = load_model(tmp_path / "run")
    trained = model.config.provenance["regions_trained"]
    assert model.config.regions.scheme == "landmark" and trained["scheme"] == "landmark"
    assert trained["landmarks"]["train"]["detected"] == 24 and trained["landmarks"]["valid"]["missing"] == 0
