"""The Predictor on real photographs: boxes in original coordinates, preprocessing as configured, awkward inputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from ran_core import RegionConfig, create_model, save_model
from ran_core.faces import Detection, box_iou, create_detector
from ran_core.imageio import ImageReadError
from ran_core.predictor import Predictor

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"
HOPPER = SAMPLES / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_model(create_model("ran_compact", mean=(0.45,), std=(0.3,)), tmp_path_factory.mktemp("m") / "ran")


@pytest.fixture(scope="module")
def mtcnn():
    return create_detector("mtcnn")


@pytest.fixture(scope="module")
def predictor(model_dir, mtcnn) -> Predictor:
    return Predictor(model_dir, detector=mtcnn)


@pytest.fixture(scope="module")
def hopper_face(predictor):
    (face,) = predictor(HOPPER)
    return face


def _inside(inner, outer, tol=1.0) -> bool:
    return (
        inner[0] >= outer[0] - tol
        and inner[1] >= outer[1] - tol
        and inner[2] <= outer[2] + tol
        and inner[3] <= outer[3] + tol
    )


def test_one_face_with_regions_in_original_coordinates(predictor, hopper_face) -> None:
    f = hopper_face
    assert f.probabilities.shape == (8,) and f.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert f.region_scheme == "fixed" and [r.name for r in f.regions][0] == "face" and len(f.regions) == 6
    assert f.landmarks.shape == (5, 2)
    face_region = f.regions[0].box
    # region 0 is the aligned crop: the detector box plus margin (a little less where MTCNN boxes run tall)
    assert _inside(f.box, face_region, tol=0.15 * (f.box[2] - f.box[0]))
    h, w = 600, 512
    assert 0 <= face_region[0] and face_region[2] <= w and face_region[3] <= h
    for r in f.regions[1:]:
        assert _inside(r.box, face_region)
        assert (r.box[2] - r.box[0]) < (face_region[2] - face_region[0])
    top_left, top_right, center_down = f.regions[1].box, f.regions[2].box, f.regions[3].box
    le, re, _, ml, mr = f.landmarks
    assert _inside((*le, *le), top_left) and _inside((*re, *re), top_right)
    assert _inside((*ml, *ml), center_down) and _inside((*mr, *mr), center_down)
    alphas = np.array([r.alpha for r in f.regions])
    assert alphas.sum() == pytest.approx(1.0, abs=1e-5)  # softmax-normalised, as the model aggregates
    json.dumps(f.to_dict())
    assert predictor.timings.faces == 1


def test_model_sees_the_crop_normalised_as_configured(predictor, hopper_face) -> None:
    f = hopper_face
    assert f.crop.shape == (48, 48, 1) and f.crop.dtype == np.uint8
    assert f.region_crops.shape == (6, 48, 48, 1)
    np.testing.assert_allclose(f.region_crops[0].astype(float), f.crop.astype(float), atol=2)  # region 0 = crop
    x = torch.from_numpy(f.region_crops).permute(0, 3, 1, 2).float()[None] / 255.0
    with torch.inference_mode():
        out = predictor.model((x - 0.45) / 0.3)
    np.testing.assert_allclose(torch.softmax(out.logits, 1)[0].numpy(), f.probabilities, atol=2e-3)
    np.testing.assert_allclose(out.alpha[0].numpy(), [r.alpha for r in f.regions], atol=2e-3)


def test_batch_and_given_detections_match_single_calls(predictor, mtcnn, hopper_face) -> None:
    astronaut = SAMPLES / "astronaut.jpg"
    batch = predictor.predict_batch([HOPPER, astronaut, np.full((100, 120, 3), 200, np.uint8)])
    assert [len(b) for b in batch] == [1, 1, 0]
    assert predictor.timings.faces == 2 and predictor.timings.model > 0 and predictor.timings.detection > 0
    np.testing.assert_allclose(batch[0][0].probabilities, hopper_face.probabilities, atol=1e-5)
    (single,) = predictor(astronaut)
    np.testing.assert_allclose(batch[1][0].probabilities, single.probabilities, atol=1e-5)
    rgb = np.asarray(Image.open(HOPPER).convert("RGB"))
    (given,) = predictor.predict_faces(rgb, mtcnn.detect(rgb))
    np.testing.assert_allclose(given.probabilities, hopper_face.probabilities, atol=1e-5)
    assert predictor.timings.detection == 0
    duck = type("Found", (), {"box": given.box, "landmarks": given.landmarks})()  # any object with a box will do
    np.testing.assert_allclose(predictor.predict_faces(rgb, [duck])[0].probabilities, given.probabilities, atol=1e-6)
    assert predictor.predict_faces(rgb, []) == []


def test_box_only_detection_gives_square_crop(predictor) -> None:
    rgb = np.asarray(Image.open(HOPPER).convert("RGB"))
    (f,) = predictor.predict_faces(rgb, [Detection((149, 100, 380, 331), 0.8)])
    assert f.landmarks is None and f.region_scheme == "fixed"
    np.testing.assert_allclose(f.regions[0].box, (149 - 23.1, 100 - 23.1, 380 + 23.1, 331 + 23.1), atol=1e-3)


def test_landmark_scheme_uses_landmarks_and_falls_back_without(mtcnn, tmp_path) -> None:
    model = create_model("ran_compact", regions=RegionConfig(scheme="landmark"))
    p = Predictor(model, detector=mtcnn)
    (f,) = p(HOPPER)
    assert f.region_scheme == "landmark"
    assert [r.name for r in f.regions] == ["face", "left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    for r, pt in zip(f.regions[1:], f.landmarks):
        cx, cy = (r.box[0] + r.box[2]) / 2, (r.box[1] + r.box[3]) / 2
        assert abs(cx - pt[0]) < 3 and abs(cy - pt[1]) < 3  # each square is centred on its landmark
    rgb = np.asarray(Image.open(HOPPER).convert("RGB"))
    (g,) = p.predict_faces(rgb, [Detection(f.box, f.score)])
    assert g.region_scheme == "fixed" and g.regions[1].name == "top_left"


def test_baseline_model(tmp_path, mtcnn) -> None:
    p = Predictor(save_model(create_model("baseline_compact"), tmp_path / "b"), detector=mtcnn)
    (f,) = p(HOPPER)
    assert len(f.regions) == 1 and np.isnan(f.regions[0].alpha)
    assert f.region_crops.shape == (1, 48, 48, 1)
    assert json.loads(json.dumps(f.to_dict()))["regions"][0]["alpha"] is None


def test_no_face_is_an_empty_list(predictor) -> None:
    assert predictor(np.full((300, 400, 3), 128, np.uint8)) == []
    assert predictor.timings.faces == 0


# ---- awkward files -------------------------------------------------------------------------------------------------


def test_unreadable_files_raise_image_read_error(predictor, tmp_path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(HOPPER.read_bytes()[:2000])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    for path, reason in ((empty, "empty"), (truncated, "decode"), (text, "not an image")):
        with pytest.raises(ImageReadError, match=reason):
            predictor(path)


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_every_image_mode_finds_the_same_face(predictor, hopper_face, tmp_path) -> None:
    rgb = Image.open(HOPPER).convert("RGB")
    gray = np.asarray(rgb.convert("L"))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(255)
    variants = {
        "gray": _save(rgb.convert("L"), tmp_path / "gray.png"),
        "rgba": _save(rgba, tmp_path / "rgba.png"),
        "16bit": _save(Image.fromarray(gray.astype(np.uint16) * 257), tmp_path / "g16.png"),
        "cmyk": _save(rgb.convert("CMYK"), tmp_path / "cmyk.jpg", quality=95),
        "pil": rgb,
        "bytes": HOPPER.read_bytes(),
    }
    assert Image.open(variants["16bit"]).mode.startswith("I")
    for name, source in variants.items():
        faces = predictor(source)
        assert len(faces) == 1, name
        assert box_iou(np.array(faces[0].box), np.array(hopper_face.box))[0, 0] > 0.85, name


def test_exif_rotated_photo_matches_upright(predictor, hopper_face, tmp_path) -> None:
    upright = Image.open(HOPPER).convert("RGB")
    # Stored sideways with orientation 6 ("rotate 90 CW to display"), as a phone held on its side writes it.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif.tobytes(), quality=95)
    (f,) = predictor(path)
    assert box_iou(np.array(f.box), np.array(hopper_face.box))[0, 0] > 0.85
    buf = io.BytesIO()
    stored.save(buf, format="JPEG", quality=95)  # the same pixels without the tag are really sideways
    sideways = predictor(buf.getvalue())
    assert not sideways or box_iou(np.array(sideways[0].box), np.array(hopper_face.box))[0, 0] < 0.5


def test_huge_image_boxes_in_original_coordinates(predictor, hopper_face) -> None:
    hopper = np.asarray(Image.open(HOPPER).convert("RGB"))
    canvas = np.full((8000, 8000, 3), 60, np.uint8)
    ox, oy = 1200, 6500
    canvas[oy : oy + 600, ox : ox + 512] = hopper
    (f,) = predictor(canvas)
    expected = np.array(hopper_face.box) + [ox, oy, ox, oy]
    assert box_iou(np.array(f.box), expected)[0, 0] > 0.7
    # the face is 6x smaller in the detection copy; it is detected again at full resolution, so the landmarks are as
    # precise as on the small photo (without that second look they are 5 px off)
    np.testing.assert_allclose(f.landmarks, hopper_face.landmarks + [ox, oy], atol=3)
    for r, ref in zip(f.regions, hopper_face.regions):
        np.testing.assert_allclose(r.box, np.array(ref.box) + [ox, oy, ox, oy], atol=15)
    corr = np.corrcoef(f.crop.ravel().astype(float), hopper_face.crop.ravel().astype(float))[0, 1]
    assert corr > 0.95


def test_haar_detector_by_name(model_dir) -> None:
    p = Predictor(model_dir, detector="haar")
    (f,) = p(HOPPER)
    assert f.landmarks is None and f.region_scheme == "fixed"
    gray = cv2.cvtColor(cv2.imread(str(HOPPER)), cv2.COLOR_BGR2GRAY)
    assert len(p(gray)) == 1  # (H, W) arrays are grayscale images


def test_batch_api_reports_each_bad_input_and_keeps_the_others(predictor, tmp_path, monkeypatch) -> None:
    from ran_core.predictor import InputError

    broken = tmp_path / "broken.png"
    broken.write_text("not an image")
    good = predictor.predict_batch([HOPPER], errors="report")
    out = predictor.predict_batch([HOPPER, broken, b""], errors="report")
    assert len(out[0]) == 1 and np.allclose(out[0][0].probabilities, good[0][0].probabilities)
    assert isinstance(out[1], InputError) and out[1].index == 1 and "not an image" in out[1].message
    assert isinstance(out[2], InputError) and "empty" in out[2].message
    with pytest.raises(ImageReadError):
        predictor.predict_batch([HOPPER, broken])
    # an analysis failure on one image: the batch is retried one by one and only that image has the error
    real = predictor.detector.detect

    def flaky(rgb):
        if rgb.shape[0] == 77:
            raise RuntimeError("simulated detector failure")
        return real(rgb)

    monkeypatch.setattr(predictor.detector, "detect", flaky)
    out = predictor.predict_batch([HOPPER, np.zeros((77, 77, 3), np.uint8)], errors="report")
    assert len(out[0]) == 1 and isinstance(out[1], InputError) and "simulated detector failure" in out[1].message
    with pytest.raises(ValueError, match="errors"):
        predictor.predict_batch([HOPPER], errors="ignore")
