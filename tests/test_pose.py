"""Head pose from 5 landmarks: synthetic faces at known angles, the sign conventions, real photos, accuracy by pose."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from test_landmarks import FRACTIONS, _FakeDetector

from ran_core import create_model, save_model
from ran_core.cli import main
from ran_core.faces import create_detector
from ran_core.faces import detectors as detectors_mod
from ran_core.faces.pose import FACE_MODEL_3D, estimate_pose, project_model, rotation_from_pose
from ran_core.imageio import read_image

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


def test_recovers_known_angles_of_synthetic_faces() -> None:
    errors = []
    for yaw in range(-60, 61, 10):
        for pitch in (-30, -15, 0, 15, 30):
            for roll in (-30, 0, 20):
                got = estimate_pose(project_model(yaw, pitch, roll), (480, 640))
                errors.append(max(abs(got.yaw - yaw), abs(got.pitch - pitch), abs(got.roll - roll)))
    assert max(errors) < 1.0  # degrees
    # error grows with the angle only through perspective; a far face is recovered as well
    far = estimate_pose(project_model(45, 10, 5, distance=3000), (480, 640))
    assert abs(far.yaw - 45) < 1 and abs(far.pitch - 10) < 1 and abs(far.roll - 5) < 1


def test_a_smile_is_not_read_as_pitch() -> None:
    """Mouth corners 8 mm up and 4 mm out (a broad smile) barely move pitch; yaw and roll stay as before."""
    smiling = FACE_MODEL_3D.copy()
    smiling[3] += [-4.0, -8.0, 0.0]
    smiling[4] += [4.0, -8.0, 0.0]
    for yaw in (-30, 0, 30):
        for pitch in (-20, 0, 20):
            cam = (smiling - FACE_MODEL_3D.mean(0)) @ rotation_from_pose(yaw, pitch, 0).T + [0.0, 0.0, 600.0]
            pts = 500.0 * cam[:, :2] / cam[:, 2:] + [320.0, 240.0]
            got = estimate_pose(pts, (480, 640))
            assert abs(got.pitch - pitch) < 3.0, (yaw, pitch, got)


def test_sign_conventions() -> None:
    left = project_model(30, 0, 0)
    assert left[2, 0] > left[:2, 0].mean()  # turning to its left moves the nose to the image's right
    tilted = project_model(0, 0, 20)
    assert tilted[1, 1] > tilted[0, 1]  # roll > 0: the eye on the image's right goes down
    frontal = estimate_pose(project_model(0, 0, 0))  # focal length guessed from the points: still within a degree
    assert max(abs(frontal.yaw), abs(frontal.pitch), abs(frontal.roll)) < 1.0
    assert estimate_pose(project_model(20, 0, 0)).yaw > 15 and estimate_pose(project_model(0, 20, 0)).pitch > 15


def test_unusable_landmarks_give_none_and_68_points_work() -> None:
    assert estimate_pose(None) is None
    assert estimate_pose(np.full((5, 2), np.nan)) is None
    assert estimate_pose(np.zeros((5, 2))) is None  # all at one point
    assert estimate_pose(np.stack([np.arange(5.0), np.arange(5.0)], 1)) is None  # on a line
    five = project_model(25, 0, 0)
    pts68 = np.zeros((68, 2))
    pts68[36:42] = five[0]
    pts68[42:48] = five[1]
    pts68[30] = five[2]
    pts68[48], pts68[54] = five[3], five[4]
    assert abs(estimate_pose(pts68).yaw - estimate_pose(five).yaw) < 1e-6


def test_frontal_and_three_quarter_sample_photos() -> None:
    mtcnn = create_detector("mtcnn")
    poses = {}
    for name in ("astronaut", "cameraman", "grace_hopper"):
        rgb = read_image(SAMPLES / f"{name}.jpg")
        (face,) = mtcnn.detect(rgb)
        poses[name] = estimate_pose(face.five_points, rgb.shape[:2])
    assert abs(poses["astronaut"].yaw) < 10 and abs(poses["grace_hopper"].yaw) < 10
    # the astronaut smiles broadly at the camera: not a head tilted down (the 5-point fit alone said -34 degrees)
    assert abs(poses["astronaut"].pitch) < 10 and abs(poses["grace_hopper"].pitch) < 10
    assert abs(poses["cameraman"].yaw) > 30  # the cameraman looks into his camera, face turned


def test_predict_json_has_the_pose(tmp_path) -> None:
    torch.manual_seed(0)
    save_model(create_model("ran_compact"), tmp_path / "m")
    out = tmp_path / "r.json"
    args = ["predict", str(SAMPLES / "cameraman.jpg"), "--model", str(tmp_path / "m"), "--detector", "mtcnn"]
    assert main([*args, "--json", str(out)]) == 0
    (face,) = json.loads(out.read_text())["inputs"][0]["faces"]
    assert set(face["pose"]) == {"yaw", "pitch", "roll"} and abs(face["pose"]["yaw"]) > 30
    assert main([*args, "--json", str(out), "--detector", "haar"]) == 0  # no landmarks: no pose
    for face in json.loads(out.read_text())["inputs"][0]["faces"]:
        assert face["pose"] is None


def test_eval_pose_bins_and_per_image_csv(ferplus_root, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAN_CORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(detectors_mod, "_REGISTRY", dict(detectors_mod._REGISTRY))
    detectors_mod.register_detector("fake-lm", lambda **kw: _FakeDetector(blind_white=True))
    from PIL import Image

    Image.fromarray(np.full((48, 48), 255, np.uint8)).save(ferplus_root / "FER2013Valid" / "fer0000100.png")
    torch.manual_seed(0)
    save_model(create_model("baseline_compact"), tmp_path / "m")
    save_model(create_model("baseline_compact"), tmp_path / "other")
    argv = ["eval", "--checkpoint", str(tmp_path / "m"), "--dataset", "ferplus", "--data-root", str(ferplus_root)]
    argv += ["--split", "valid", "--out", str(tmp_path / "e"), "--workers", "0", "--pose-bins"]
    argv += ["--landmark-detector", "fake-lm", "--compare", str(tmp_path / "other")]
    assert main(argv) == 0
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    bins = m["pose_bins"]
    assert list(bins) == ["<15", "15-30", "30-45", ">=45", "unknown"]
    assert bins["unknown"]["n"] == 1 and sum(b["n"] for b in bins.values()) == 12
    assert bins["<15"]["n"] == 11 and bins["<15"]["mean_yaw"] < 15  # the fake landmarks are a frontal face
    assert "pose_bins" in m["compare"]
    rows = list(csv.DictReader((tmp_path / "e" / "per_image.csv").open()))
    assert len(rows) == 12 and set(rows[0]) == {"image", "true", "pred", "yaw", "pitch", "roll", "pred_other"}
    blank = [r for r in rows if r["image"].endswith("fer0000100.png")][0]
    assert blank["yaw"] == "" and all(r["yaw"] != "" for r in rows if r is not blank)
    assert FRACTIONS.shape == (5, 2)
