"""BlazeFace (LiteRT): anchors as MediaPipe lays them out, faces and landmarks on real photos, the camera default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ran_core.faces import create_detector
from ran_core.faces.detectors import box_iou, detector_status, resolve_camera_auto

pytestmark = pytest.mark.skipif(detector_status().get("blazeface") is not None, reason="BlazeFace is not installed")
SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


def test_anchor_layouts_match_the_networks() -> None:
    from ran_core.faces.blazeface import anchors

    short, full = anchors(128, (8, 16, 16, 16), 2), anchors(192, (4,), 1)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    np.testing.assert_allclose(short[0], [0.5 / 16, 0.5 / 16])  # first cell of the 16x16 grid, twice
    np.testing.assert_allclose(short[1], short[0])
    np.testing.assert_allclose(short[512], [0.5 / 8, 0.5 / 8])  # then the 8x8 grid, six anchors a cell


@pytest.mark.parametrize("name", ["astronaut", "cameraman", "grace_hopper"])
def test_finds_the_sample_faces_where_mtcnn_does(name: str) -> None:
    from ran_core.faces.pose import estimate_pose
    from ran_core.imageio import read_image

    rgb = read_image(SAMPLES / f"{name}.jpg")
    (ref,) = create_detector("mtcnn").detect(rgb)
    (face,) = create_detector("blazeface").detect(rgb)
    assert box_iou(face.box, ref.box)[0, 0] > 0.5 and 0.5 <= face.score <= 1
    pts, ref_pts = face.five_points, ref.five_points
    assert pts[0, 0] < pts[1, 0]  # left eye (image left) first, as in MTCNN
    side = ref.box[2] - ref.box[0]
    if name != "cameraman":  # on the turned face the two detectors place the far eye differently
        assert np.abs(pts[:3] - ref_pts[:3]).max() < 0.15 * side  # eyes and nose close to MTCNN's
    yaw, ref_yaw = estimate_pose(pts, rgb.shape[:2]).yaw, estimate_pose(ref_pts, rgb.shape[:2]).yaw
    assert (abs(yaw) > 15) == (abs(ref_yaw) > 15)  # the turned cameraman reads as turned with either detector


def test_empty_tiny_and_faceless_images() -> None:
    det = create_detector("blazeface")
    assert det.detect(np.zeros((2, 2, 3), np.uint8)) == []
    assert det.detect(np.full((300, 400, 3), 128, np.uint8)) == []


def test_camera_path_defaults_to_blazeface() -> None:
    import torch

    from ran_core import create_model
    from ran_core.predictor import Predictor
    from ran_core.stream import StreamPredictor

    assert resolve_camera_auto() == "blazeface"
    torch.manual_seed(0)
    stream = StreamPredictor(Predictor(create_model("ran_compact"), detector="haar"), detector="camera", tune=False)
    assert stream.detector.name == "blazeface" and stream.predictor.detector.name == "haar"
    from ran_core.imageio import read_image

    frame = read_image(SAMPLES / "grace_hopper.jpg")
    assert len(stream(frame)) == 1 and stream.detections == 1
