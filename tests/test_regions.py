"""Region schemes on a non-square image with a face box away from the origin, and the crops taken from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ran_core import RegionConfig, crop_regions, region_boxes
from ran_core.regions import (
    AFFECTNET_FIXED_REGIONS,
    DEFAULT_FIXED_REGIONS,
    FIXED_REGIONS,
    LANDMARK_NAMES,
    region_boxes_batch,
)

H, W = 120, 200  # image (rows, columns): wider than tall
FACE = (50.0, 20.0, 130.0, 110.0)  # x1, y1, x2, y2: 80 wide, 90 tall
LANDMARKS = np.array([[75.0, 50.0], [105.0, 50.0], [90.0, 70.0], [78.0, 90.0], [102.0, 90.0]])


def _face_crops(image, config: RegionConfig, size: int, face_box=None, landmarks=None):
    """``(names, boxes, crops, scheme)`` of one face the way the Predictor cuts them: region_boxes, then crop_regions
    on the ``(C, H, W)`` float image (crops keep its value range)."""
    if isinstance(image, np.ndarray):
        arr = image[..., None] if image.ndim == 2 else image
        image = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    img = image.float()
    names, boxes, scheme = region_boxes(config, tuple(img.shape[-2:]), face_box, landmarks)
    crops = crop_regions(img[None], torch.as_tensor(boxes, dtype=torch.float32)[None], size)[0]
    return names, boxes, crops, scheme


def _boxes(config: RegionConfig, **kw) -> tuple[list[str], np.ndarray, str]:
    return region_boxes(config, (H, W), face_box=kw.pop("face_box", FACE), **kw)


@pytest.mark.parametrize("scheme", ["fixed", "random", "landmark"])
def test_region_zero_is_the_face(scheme: str) -> None:
    names, boxes, used = _boxes(RegionConfig(scheme=scheme), landmarks=LANDMARKS)
    assert used == scheme
    assert names[0] == "face" and len(names) == len(boxes) == RegionConfig(scheme=scheme).num_regions
    np.testing.assert_array_equal(boxes[0], FACE)
    assert boxes.dtype == np.float64 and boxes.shape[1] == 4


def test_fixed_boxes_are_the_documented_fractions() -> None:
    cfg = RegionConfig(names=AFFECTNET_FIXED_REGIONS)
    names, boxes, _ = _boxes(cfg)
    assert names == list(AFFECTNET_FIXED_REGIONS) and set(names) <= set(FIXED_REGIONS)
    x1, y1, x2, y2 = FACE
    w, h = x2 - x1, y2 - y1
    for name, box in zip(names, boxes):
        fx1, fy1, fx2, fy2 = FIXED_REGIONS[name]
        np.testing.assert_allclose(box, [x1 + fx1 * w, y1 + fy1 * h, x1 + fx2 * w, y1 + fy2 * h], err_msg=name)
    by_name = dict(zip(names, boxes))
    # Written out, so a change of the table itself is caught too (the official AffectNet crops).
    np.testing.assert_allclose(by_name["top_left"], [50, 20, 110, 87.5])
    np.testing.assert_allclose(by_name["top_right"], [70, 20, 130, 87.5])
    np.testing.assert_allclose(by_name["center_down"], [60, 42.5, 120, 110])
    np.testing.assert_allclose(by_name["center_90"], [58, 29, 122, 101])
    assert DEFAULT_FIXED_REGIONS == ("face", "top_left", "top_right", "center_down", "center_90", "center_75")
    assert RegionConfig().num_regions == 6 and len(AFFECTNET_FIXED_REGIONS) == 8


def test_whole_image_is_the_default_face() -> None:
    _, boxes, _ = region_boxes(RegionConfig(), (H, W))
    np.testing.assert_array_equal(boxes[0], [0, 0, W, H])
    names, boxes, _ = region_boxes(RegionConfig.whole_face(), (H, W), face_box=FACE)
    assert names == ["face"] and boxes.shape == (1, 4)


def test_random_boxes_inside_face_and_reproducible() -> None:
    cfg = RegionConfig(scheme="random", num_random=9, random_scale=(0.4, 0.8), seed=7)
    names, boxes, _ = _boxes(cfg)
    assert names == ["face"] + [f"random_{i}" for i in range(1, 9)]
    x1, y1, x2, y2 = FACE
    crops = boxes[1:]
    assert (crops[:, 0] >= x1).all() and (crops[:, 1] >= y1).all()
    assert (crops[:, 2] <= x2 + 1e-9).all() and (crops[:, 3] <= y2 + 1e-9).all()
    fw = (crops[:, 2] - crops[:, 0]) / (x2 - x1)
    fh = (crops[:, 3] - crops[:, 1]) / (y2 - y1)
    assert ((fw >= 0.4 - 1e-9) & (fw <= 0.8 + 1e-9) & (fh >= 0.4 - 1e-9) & (fh <= 0.8 + 1e-9)).all()
    assert len({tuple(b) for b in crops.round(6)}) == 8  # all different

    np.testing.assert_array_equal(_boxes(cfg)[1], boxes)  # config.seed makes evaluation reproducible
    other = _boxes(RegionConfig(scheme="random", num_random=9, random_scale=(0.4, 0.8), seed=8))[1]
    assert not np.allclose(other[1:], crops)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    np.testing.assert_array_equal(_boxes(cfg, generator=g1)[1], _boxes(cfg, generator=g2)[1])
    assert not np.allclose(_boxes(cfg, generator=g1)[1], _boxes(cfg, generator=g2.manual_seed(4))[1])


def test_landmark_squares() -> None:
    cfg = RegionConfig(scheme="landmark", landmark_ratio=0.4)
    names, boxes, used = _boxes(cfg, landmarks=LANDMARKS)
    assert used == "landmark" and names == ["face", *LANDMARK_NAMES]
    side = 0.4 * 90  # ratio x the face's longer side
    centres = np.stack([(boxes[1:, 0] + boxes[1:, 2]) / 2, (boxes[1:, 1] + boxes[1:, 3]) / 2], axis=1)
    np.testing.assert_allclose(centres, LANDMARKS)
    np.testing.assert_allclose(boxes[1:, 2] - boxes[1:, 0], side)
    np.testing.assert_allclose(boxes[1:, 3] - boxes[1:, 1], side)


def test_landmark_squares_are_clipped_to_the_image() -> None:
    cfg = RegionConfig(scheme="landmark", landmark_ratio=0.5)
    face = (150.0, 60.0, 200.0, 120.0)  # in the bottom-right corner; longer side 60 -> squares of 30
    pts = np.array([[160.0, 70.0], [195.0, 70.0], [175.0, 110.0], [2.0, 1.0], [260.0, 200.0]])
    _, boxes, _ = _boxes(cfg, face_box=face, landmarks=pts)
    np.testing.assert_allclose(boxes[1], [145, 55, 175, 85])  # fully inside: untouched
    np.testing.assert_allclose(boxes[2], [180, 55, 200, 85])  # right edge clipped
    np.testing.assert_allclose(boxes[3], [160, 95, 190, 120])  # bottom clipped
    np.testing.assert_allclose(boxes[4], [0, 0, 17, 16])  # top-left corner clipped
    # Even a point outside the image gives a non-empty box inside it.
    for box in boxes:
        assert 0 <= box[0] < box[2] <= W and 0 <= box[1] < box[3] <= H, box


def test_landmark_without_landmarks_falls_back_to_fixed() -> None:
    cfg = RegionConfig(scheme="landmark")
    names, boxes, used = _boxes(cfg, landmarks=None)
    assert used == "fixed"
    fixed_names, fixed_boxes, _ = _boxes(RegionConfig())
    assert names == fixed_names and len(names) == cfg.num_regions
    np.testing.assert_array_equal(boxes, fixed_boxes)
    crop_names, _, _, scheme = _face_crops(np.zeros((H, W, 3), np.uint8), cfg, 16, face_box=FACE)
    assert scheme == "fixed" and crop_names == fixed_names


def test_landmark_needs_five_points() -> None:
    with pytest.raises(ValueError, match="5 points"):
        _boxes(RegionConfig(scheme="landmark"), landmarks=LANDMARKS[:4])


def test_batched_boxes_equal_per_face_boxes() -> None:
    faces = torch.tensor([FACE, (0.0, 0.0, 60.0, 40.0), (120.0, 10.0, 190.0, 119.0)], dtype=torch.float64)
    lms = torch.as_tensor(np.stack([LANDMARKS, LANDMARKS / 2, LANDMARKS + 40]))
    for cfg in (RegionConfig(), RegionConfig(scheme="landmark")):
        batch, scheme = region_boxes_batch(cfg, faces, lms, canvas_size=(H, W))
        assert scheme == cfg.scheme and batch.shape == (3, cfg.num_regions, 4)
        for i in range(3):
            _, one, _ = _boxes(cfg, face_box=faces[i].numpy(), landmarks=lms[i].numpy())
            np.testing.assert_allclose(batch[i].numpy(), one)


def test_empty_face_box_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        _boxes(RegionConfig(), face_box=(10, 10, 10, 50))


# --- crops -----------------------------------------------------------------------------------------------------------


def test_face_crops_shapes_and_boxes() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    names, boxes, crops, scheme = _face_crops(rgb, RegionConfig(), 24, face_box=FACE)
    assert crops.shape == (6, 3, 24, 24) and crops.dtype == torch.float32
    assert 0 <= crops.min() and crops.max() <= 255
    assert names == list(DEFAULT_FIXED_REGIONS) and scheme == "fixed"
    np.testing.assert_allclose(boxes[0], FACE)

    _, _, gray, _ = _face_crops(rgb[..., 0], RegionConfig(), 20, face_box=FACE)
    assert gray.shape == (6, 1, 20, 20)
    _, _, chw, _ = _face_crops(torch.from_numpy(rgb).permute(2, 0, 1), RegionConfig(), 20, face_box=FACE)
    torch.testing.assert_close(chw[:, :1], gray)


def test_crop_of_a_bright_square_is_bright() -> None:
    img = np.zeros((H, W), np.float32)
    img[30:60, 140:170] = 1.0  # rows 30..59, columns 140..169 -> continuous box (140, 30, 170, 60)
    cfg = RegionConfig(scheme="landmark", landmark_ratio=0.5)
    pts = np.array([[155.0, 45.0], [20.0, 100.0], [10.0, 10.0], [100.0, 100.0], [190.0, 110.0]])
    _, _, crops, _ = _face_crops(img, cfg, 10, face_box=(125.0, 15.0, 185.0, 75.0), landmarks=pts)
    crops = crops[:, 0]
    torch.testing.assert_close(crops[1], torch.ones(10, 10))  # the square exactly: the left_eye box
    assert crops[2].max() == 0 and crops[3].max() == 0  # far from the square
    face = crops[0]  # face box (125, 15)-(185, 75): the square fills its central half
    assert face[3:7, 3:7].min() == 1 and face[:2].max() == 0 and face[:, :2].max() == 0


def test_crop_of_a_gradient_samples_the_right_place() -> None:
    """On a linear ramp (value = column index) bilinear sampling is exact, so every crop column must read the
    ramp at its own centre: this pins the half-pixel convention and the box-to-crop mapping."""
    ramp = np.tile(np.arange(W, dtype=np.float32), (H, 1))
    rows = np.tile(np.arange(H, dtype=np.float32)[:, None], (1, W))
    image = torch.from_numpy(np.stack([ramp, rows]))
    boxes = torch.tensor([[[50.0, 20.0, 130.0, 110.0], [10.0, 5.0, 30.0, 45.0]]])
    size = 8
    crops = crop_regions(image[None], boxes, size)
    assert crops.shape == (1, 2, 2, size, size)
    for k, (x1, y1, x2, y2) in enumerate(boxes[0].tolist()):
        cols = x1 + (torch.arange(size) + 0.5) * (x2 - x1) / size - 0.5  # column centres, in pixel-index units
        rws = y1 + (torch.arange(size) + 0.5) * (y2 - y1) / size - 0.5
        torch.testing.assert_close(crops[0, k, 0], cols[None].expand(size, size), atol=1e-4, rtol=0)
        torch.testing.assert_close(crops[0, k, 1], rws[:, None].expand(size, size), atol=1e-4, rtol=0)


def test_crop_outside_the_image_reads_zero() -> None:
    image = torch.ones(1, 1, H, W)
    crops = crop_regions(image, torch.tensor([[[W + 10.0, 0.0, W + 50.0, 40.0]]]), 4)
    assert crops.abs().max() == 0


# --- configuration ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"names": ("face", "nose_tip")}, "unknown fixed region"),
        ({"names": ("top_left", "face")}, "first fixed region must be 'face'"),
        ({"names": ()}, "first fixed region must be 'face'"),
        ({"landmark_ratio": 0.0}, "landmark_ratio"),
        ({"landmark_ratio": 1.5}, "landmark_ratio"),
        ({"scheme": "grid"}, "unknown region scheme"),
        ({"num_random": 0}, "num_random"),
        ({"random_scale": (0.9, 0.5)}, "random_scale"),
        ({"random_scale": (0.0, 0.5)}, "random_scale"),
    ],
)
def test_region_config_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RegionConfig(**kwargs)


def test_region_config_round_trip() -> None:
    cfg = RegionConfig(scheme="random", num_random=4, random_scale=(0.3, 0.6), seed=11, names=("face", "top_left"))
    again = RegionConfig.from_dict({**cfg.to_dict(), "future_field": 1})
    assert again == cfg and again.region_names() == ["face", "random_1", "random_2", "random_3"]
    assert RegionConfig(scheme="landmark").region_names() == ["face", *LANDMARK_NAMES]


def test_landmark_batch_falls_back_per_face_not_per_batch() -> None:
    faces = torch.tensor([FACE, (0.0, 0.0, 60.0, 40.0), (120.0, 10.0, 190.0, 119.0)], dtype=torch.float64)
    lms = torch.as_tensor(np.stack([LANDMARKS, LANDMARKS / 2, LANDMARKS + 40]))
    lms[1] = float("nan")  # the middle face has no landmarks
    cfg = RegionConfig(scheme="landmark")
    batch, scheme = region_boxes_batch(cfg, faces, lms, canvas_size=(H, W))
    assert scheme == "landmark+fixed" and batch.shape == (3, 6, 4)
    _, fixed, _ = _boxes(RegionConfig(), face_box=faces[1].numpy())
    np.testing.assert_allclose(batch[1].numpy(), fixed)
    for i in (0, 2):
        _, alone, used = _boxes(cfg, face_box=faces[i].numpy(), landmarks=lms[i].numpy())
        assert used == "landmark"
        np.testing.assert_allclose(batch[i].numpy(), alone)
    all_missing, scheme = region_boxes_batch(cfg, faces, torch.full_like(lms, float("nan")), canvas_size=(H, W))
    assert scheme == "fixed"


def test_only_the_bottom_crop_escapes_the_eye_bar() -> None:
    """Every official crop holds an eye, so a bar across the eyes reaches all of them; ``bottom`` is the opt-in crop
    it leaves untouched (what it is for)."""
    from ran_core.data.pipeline import occlude_batch

    face = torch.from_numpy(np.random.default_rng(1).integers(1, 256, (1, 1, 48, 48), dtype=np.uint8))
    barred = occlude_batch(face, "eyes")
    names = (*AFFECTNET_FIXED_REGIONS, "bottom")
    cfg = RegionConfig(names=names)
    _, _, clean, _ = _face_crops(face[0], cfg, 24)
    _, _, covered, _ = _face_crops(barred[0], cfg, 24)
    changed = {n for n, a, b in zip(names, clean, covered) if not torch.equal(a, b)}
    assert changed == set(AFFECTNET_FIXED_REGIONS)
