"""Face detection backends, the auto choice, downscaled detection, alignment and tracking, on real photographs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ran_core.faces import (
    Detection,
    DetectorUnavailable,
    DownscalingDetector,
    IoUTracker,
    align_face,
    box_iou,
    create_detector,
    five_point_landmarks,
    list_detectors,
    register_detector,
    resolve_auto,
)
from ran_core.faces import fan as fan_backend
from ran_core.faces.alignment import (
    FERPLUS_TEMPLATE,
    apply_affine,
    similarity_transform,
    template_for_margin,
    warp_crop,
)
from ran_core.imageio import read_image

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    return read_image(SAMPLES / "grace_hopper.jpg")


@pytest.fixture(scope="module")
def mtcnn():
    return create_detector("mtcnn")


@pytest.fixture(scope="module")
def haar():
    return create_detector("haar")


# ---- the interface -------------------------------------------------------------------------------------------------


def test_five_points_from_68() -> None:
    pts = np.arange(136, dtype=np.float64).reshape(68, 2)
    five = five_point_landmarks(pts)
    assert five.shape == (5, 2)
    np.testing.assert_allclose(five[0], pts[36:42].mean(0))
    np.testing.assert_allclose(five[1], pts[42:48].mean(0))
    np.testing.assert_allclose(five[2:], pts[[30, 48, 54]])
    np.testing.assert_array_equal(five_point_landmarks(five), five)
    with pytest.raises(ValueError):
        Detection((0, 0, 10, 10), 1.0, np.zeros((7, 2)))


def test_registry_and_unknown_name() -> None:
    assert {"fan", "mtcnn", "haar"} <= set(list_detectors())
    with pytest.raises(ValueError, match="unknown detector"):
        create_detector("nope")

    class Fixed:
        name = "fixed"

        def detect(self, rgb):
            return [Detection((1, 2, 3, 4), 0.5)]

    register_detector("fixed-test", lambda device="cpu", max_side=None: Fixed())
    assert create_detector("fixed-test").detect(np.zeros((8, 8, 3), np.uint8))[0].box == (1.0, 2.0, 3.0, 4.0)


class _Recorder(DownscalingDetector):
    """Reports a box at fixed fractions of whatever image it is given, and remembers that image's size."""

    name = "recorder"

    def _detect(self, rgb):
        self.seen = rgb.shape
        h, w = rgb.shape[:2]
        lm = np.array([[0.3 * w, 0.4 * h]] * 5)
        return [Detection((0.25 * w, 0.5 * h, 0.75 * w, 0.9 * h), 0.9, lm)]


def test_downscaled_detection_maps_back_to_original() -> None:
    det = _Recorder(max_side=640, refine_below=0)
    rgb = np.zeros((3000, 4000, 3), np.uint8)
    (d,) = det.detect(rgb)
    assert max(det.seen[:2]) == 640
    np.testing.assert_allclose(d.box, (1000, 1500, 3000, 2700), atol=1e-6)
    np.testing.assert_allclose(d.landmarks[0], (1200, 1200), atol=1e-6)
    small = np.zeros((300, 400, 3), np.uint8)
    det.detect(small)
    assert det.seen[:2] == (300, 400)  # never upscaled


# ---- real backends on real faces -----------------------------------------------------------------------------------


def test_mtcnn_finds_one_face_with_landmarks_in_order(hopper, mtcnn) -> None:
    dets = mtcnn.detect(hopper)
    assert len(dets) == 1
    d = dets[0]
    x1, y1, x2, y2 = d.box
    assert d.score > 0.95 and 100 < x2 - x1 < 300
    le, re, nose, ml, mr = d.landmarks
    assert le[0] < nose[0] < re[0] and ml[0] < mr[0]  # image-left before image-right
    assert max(le[1], re[1]) < nose[1] < min(ml[1], mr[1])  # eyes above nose above mouth
    assert all(x1 <= p[0] <= x2 and y1 <= p[1] <= y2 for p in d.landmarks)


def test_mtcnn_works_without_requests() -> None:
    """`pip install --no-deps facenet-pytorch` leaves out `requests`, which only its package __init__ needs."""
    code = (
        "import sys; sys.modules['requests'] = None\n"
        "from ran_core.faces import create_detector\n"
        "from ran_core.imageio import read_image\n"
        f"d = create_detector('mtcnn').detect(read_image({str(SAMPLES / 'astronaut.jpg')!r}))\n"
        "assert len(d) == 1 and d[0].landmarks.shape == (5, 2), d\n"
        "assert 'facenet_pytorch' not in sys.modules\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_haar_agrees_with_mtcnn(hopper, mtcnn, haar) -> None:
    (h,) = haar.detect(hopper)
    (m,) = mtcnn.detect(hopper)
    assert h.landmarks is None and 0.5 <= h.score <= 1
    assert box_iou(np.array(h.box), np.array(m.box))[0, 0] > 0.5


def test_no_face_gives_empty_list(mtcnn, haar) -> None:
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 3)
    assert mtcnn.detect(noise) == []
    assert haar.detect(np.full((240, 320, 3), 128, np.uint8)) == []


def test_huge_image_detects_on_downscaled_copy_in_original_coordinates(hopper, mtcnn) -> None:
    (ref,) = mtcnn.detect(hopper)
    canvas = np.full((8000, 8000, 3), 90, np.uint8)
    face = cv2.resize(hopper, None, fx=2.0, fy=2.0, interpolation=cv2.INTER_CUBIC)
    ox, oy = 5000, 3000
    canvas[oy : oy + face.shape[0], ox : ox + face.shape[1]] = face
    t0 = time.perf_counter()
    dets = mtcnn.detect(canvas)
    assert time.perf_counter() - t0 < 15
    assert len(dets) == 1
    expected = np.array(ref.box) * 2 + [ox, oy, ox, oy]
    assert box_iou(np.array(dets[0].box), expected)[0, 0] > 0.7
    np.testing.assert_allclose(dets[0].landmarks, ref.landmarks * 2 + [ox, oy], atol=6)


# ---- auto and face-alignment ---------------------------------------------------------------------------------------


def _fake_fan_weights(torch_home: Path) -> None:
    """Random-init FAN and S3FD saved where face-alignment would have downloaded its real weights."""
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    ckpt = torch_home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    fan_file, sfd_file = (ckpt / f.name for f in fan_backend.weight_files())
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), fan_file)
    torch.save(s3fd().state_dict(), sfd_file)


def test_auto_order(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert "not found in" in fan_backend.check() and "--detector mtcnn/haar" in fan_backend.check()
    assert resolve_auto() == "mtcnn"
    import ran_core.faces.mtcnn as mtcnn_backend

    monkeypatch.setattr(mtcnn_backend, "check", lambda: "facenet_pytorch is not installed")
    monkeypatch.setattr(mtcnn_backend, "build", None)
    import ran_core.faces.detectors as detectors

    monkeypatch.setitem(detectors._REGISTRY, "mtcnn", "ran_core.faces.mtcnn")
    assert resolve_auto() == "haar"
    assert create_detector("auto").name == "haar"
    with pytest.raises(DetectorUnavailable, match="facenet"):
        create_detector("mtcnn")


def test_fan_without_weights_fails_fast_with_advice(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    t0 = time.perf_counter()
    with pytest.raises(DetectorUnavailable) as err:
        create_detector("fan")
    assert time.perf_counter() - t0 < 2
    assert str(tmp_path / "hub" / "checkpoints") in str(err.value) and "mtcnn/haar" in str(err.value)


def test_fan_pipeline_with_local_weights(monkeypatch, tmp_path, hopper) -> None:
    """The real face-alignment loading and landmark code, on random weights placed in a temporary hub cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    _fake_fan_weights(tmp_path)
    assert resolve_auto() == "fan"
    det = create_detector("fan", max_side=256, refine_below=0)
    assert det.name == "fan"
    seen = []

    # Random S3FD weights would report dozens of random boxes (a minute of FAN passes); give it the face box instead.
    def s3fd_says(image):
        seen.append(image.shape)
        h, w = image.shape[:2]
        return [np.array([0.3 * w, 0.2 * h, 0.7 * w, 0.6 * h, 0.97])]

    monkeypatch.setattr(det.fa.face_detector, "detect_from_image", s3fd_says)
    # The same heatmap decoding in plain Python: numba would spend ~25 s compiling it on this test's first call.
    import face_alignment.utils as fa_utils

    for fn in ("_get_preds_fromhm", "transform_np"):
        monkeypatch.setattr(fa_utils, fn, getattr(fa_utils, fn).py_func)
    (d,) = det.detect(hopper)
    assert max(seen[0][:2]) == 256  # ran on the downscaled copy
    h, w = hopper.shape[:2]
    np.testing.assert_allclose(d.box, (0.3 * w, 0.2 * h, 0.7 * w, 0.6 * h), rtol=0.01)  # original coordinates
    assert d.score == pytest.approx(0.97)
    assert d.landmarks.shape == (68, 2) and np.isfinite(d.landmarks).all()
    # FAN looks at a crop around the box: its points, even from random weights, stay near it.
    x1, y1, x2, y2 = d.box
    side = x2 - x1
    assert (d.landmarks[:, 0] > x1 - side).all() and (d.landmarks[:, 0] < x2 + side).all()
    assert (d.landmarks[:, 1] > y1 - side).all() and (d.landmarks[:, 1] < y2 + side).all()
    np.testing.assert_allclose(d.five_points[0], d.landmarks[36:42].mean(0))
    np.testing.assert_allclose(d.five_points[4], d.landmarks[54])

    monkeypatch.setattr(det.fa.face_detector, "detect_from_image", lambda image: [])
    assert det.detect(hopper) == []


# ---- alignment -----------------------------------------------------------------------------------------------------


def test_similarity_transform_recovers_a_known_one() -> None:
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, (5, 2))
    a, s, t = np.deg2rad(25), 1.7, np.array([12.0, -30.0])
    lin = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    m = similarity_transform(src, src @ lin.T + t)
    np.testing.assert_allclose(m[:, :2], lin, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)
    with pytest.raises(ValueError):
        similarity_transform(np.ones((5, 2)), src)


def test_template_matches_ferplus_at_reference_margin() -> None:
    np.testing.assert_allclose(template_for_margin(0.1), FERPLUS_TEMPLATE, atol=1e-12)
    wide = template_for_margin(0.3)
    # more margin: the face gets smaller in the crop, around the same centre
    assert np.ptp(wide[:, 0]) < np.ptp(FERPLUS_TEMPLATE[:, 0])


def test_aligned_crop_puts_landmarks_on_template(hopper, mtcnn) -> None:
    (d,) = mtcnn.detect(hopper)
    a = align_face(hopper, d.box, d.five_points, size=96, margin=0.1)
    assert a.method == "similarity" and a.crop.shape == (96, 96, 3)
    np.testing.assert_allclose(a.landmarks, template_for_margin(0.1) * 96, atol=4)
    np.testing.assert_allclose(a.points_to_source(a.landmarks), d.five_points, atol=1e-6)
    # Detect again on the crop itself: the face's landmarks are where the template says.
    (again,) = mtcnn.detect(cv2.resize(a.crop, (192, 192), interpolation=cv2.INTER_CUBIC))
    np.testing.assert_allclose(again.landmarks / 192, FERPLUS_TEMPLATE, atol=0.05)


def test_rotated_face_aligns_like_the_upright_one(hopper, mtcnn) -> None:
    (d,) = mtcnn.detect(hopper)
    upright = align_face(hopper, d.box, d.five_points, size=64).crop.astype(np.float64)
    h, w = hopper.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0)
    rotated = cv2.warpAffine(hopper, rot, (w, h), borderMode=cv2.BORDER_REPLICATE)
    (dr,) = mtcnn.detect(rotated)
    crop = align_face(rotated, dr.box, dr.five_points, size=64).crop.astype(np.float64)
    corr = np.corrcoef(upright.ravel(), crop.ravel())[0, 1]
    plain = align_face(rotated, dr.box, None, size=64).crop.astype(np.float64)  # box crop: still rotated
    assert corr > 0.85 and corr > np.corrcoef(upright.ravel(), plain.ravel())[0, 1] + 0.1


def test_box_crop_frames_box_with_margin() -> None:
    rgb = np.zeros((200, 300, 3), np.uint8)
    a = align_face(rgb, (100, 50, 180, 150), None, size=48, margin=0.1)
    assert a.method == "box" and a.landmarks is None
    # square of 1.2 x the longer side (100), centred on the box
    np.testing.assert_allclose(a.boxes_to_source(np.array([[0, 0, 48, 48]]))[0], (80, 40, 200, 160), atol=1e-9)


def test_box_mapping_of_rotated_crop_is_corner_bounding_box() -> None:
    ang = np.deg2rad(30)
    m = np.array([[np.cos(ang), -np.sin(ang), 10.0], [np.sin(ang), np.cos(ang), 5.0]])
    from ran_core.faces.alignment import AlignedFace, invert_affine

    a = AlignedFace(np.zeros((4, 4, 3), np.uint8), m, invert_affine(m), None, "similarity")
    box = np.array([[10.0, 20.0, 30.0, 50.0]])
    corners = apply_affine(a.inverse, [[10, 20], [30, 20], [10, 50], [30, 50]])
    np.testing.assert_allclose(a.boxes_to_source(box)[0], [*corners.min(0), *corners.max(0)])


def test_warp_of_a_far_smaller_crop_is_not_aliased() -> None:
    checker = ((np.indices((2000, 2000)).sum(0) % 2) * 255).astype(np.uint8)
    rgb = np.repeat(checker[..., None], 3, axis=2)
    m = np.array([[48 / 2000, 0, 0], [0, 48 / 2000, 0]])
    crop = warp_crop(rgb, m, 48)
    assert abs(crop.mean() - 127.5) < 3 and crop.std() < 6  # plain interpolation would alias to black or white
    # 1:1 warp is an exact copy (pixel centres line up)
    small = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    np.testing.assert_array_equal(warp_crop(small, np.array([[1.0, 0, -5], [0, 1.0, -3]]), 20), small[3:23, 5:25])


# ---- tracking ------------------------------------------------------------------------------------------------------


def test_tracker_keeps_ids_stable() -> None:
    tr = IoUTracker(iou_threshold=0.3, max_missed=2)
    a, b = np.array([0, 0, 50, 50.0]), np.array([200, 0, 250, 50.0])
    assert tr.update([a, b]) == [0, 1]
    assert tr.update([b + [5, 0, 5, 0], a + [4, 2, 4, 2]]) == [1, 0]  # order of detections does not matter
    assert tr.update([a + [8, 4, 8, 4]]) == [0]  # b missed once
    assert tr.update([b + [10, 0, 10, 0], a + [10, 5, 10, 5]]) == [1, 0]  # b comes back with its id
    c = np.array([400, 300, 450, 350.0])
    assert tr.update([c]) == [2]
    for _ in range(3):
        tr.update([c])
    assert tr.update([a + [10, 5, 10, 5], c]) == [3, 2]  # a was gone too long: a new id
    assert tr.update([]) == []


def test_tracker_follows_a_face_that_moves_fast_between_looks() -> None:
    tr = IoUTracker()
    a = np.array([0, 0, 60, 60.0])
    ids = [tr.update([a + [40 * i, 0, 40 * i, 0]])[0] for i in range(4)]  # IoU 0.2 between looks
    assert ids == [0, 0, 0, 0]
    assert tr.update([a + [400, 0, 400, 0]]) == [1]  # far away: another face
    assert tr.update([np.array([100, 0, 300, 200.0])]) == [2]  # near but 3x larger: another face
    plain = IoUTracker(max_shift=0)
    assert [plain.update([a + [40 * i, 0, 40 * i, 0]])[0] for i in range(3)] == [0, 1, 2]
