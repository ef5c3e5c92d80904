"""Region generation: the three schemes of the RAN paper (fixed-position, random and landmark-based crops).

Every scheme returns, per region, its name and its box ``(x1, y1, x2, y2)`` in the SOURCE image's pixel coordinates
(continuous coordinates: the box ``(0, 0, W, H)`` is the whole image), so a viewer can draw it without guessing.
Region 0 is always the whole face: the region-biased loss compares every other region against it.

Crops are taken with :func:`torchvision.ops.roi_align` for a whole batch at once, which averages several samples per
output pixel when shrinking (so small crops are not aliased) and runs on the GPU when the images are there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torchvision.ops import roi_align

# Fractions (x0, y0, x1, y1) of the face box, as in the official AffectNet loader of the RAN authors.
FIXED_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "face": (0.0, 0.0, 1.0, 1.0),
    "top_left": (0.0, 0.0, 0.75, 0.75),
    "top_right": (0.25, 0.0, 1.0, 0.75),
    "center_down": (0.125, 0.25, 0.875, 1.0),
    "center_95": (0.05, 0.05, 0.95, 0.95),
    "center_90": (0.1, 0.1, 0.9, 0.9),
    "center_75": (0.125, 0.125, 0.875, 0.875),
    "center_top": (0.125, 0.0, 0.875, 0.75),
    # Not in the official loaders: mouth and chin only, the one crop a bar across the eyes (rows 0.2-0.48) leaves
    # untouched — every official crop contains both eyes or one eye. Opt in with ``--region-names``.
    "bottom": (0.125, 0.5, 0.875, 1.0),
}
# The paper uses 6 regions on FERPlus: the face, both upper quadrant-crops (each eye with its brow), the lower-centre
# crop (mouth and nose) and two centred zooms; 8 on AffectNet (the official loader's crops).
DEFAULT_FIXED_REGIONS: tuple[str, ...] = ("face", "top_left", "top_right", "center_down", "center_90", "center_75")
AFFECTNET_FIXED_REGIONS: tuple[str, ...] = (
    "face",
    "top_left",
    "top_right",
    "center_down",
    "center_95",
    "center_90",
    "center_75",
    "center_top",
)
# The 5-point landmark order used everywhere in ran_core (MTCNN's order).
LANDMARK_NAMES: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
SCHEMES: tuple[str, ...] = ("fixed", "random", "landmark")


@dataclass
class RegionConfig:
    """How a face is cut into regions. Stored inside every saved model.

    Attributes:
        scheme: ``fixed`` (named fractions of the face box), ``random`` (random crops, reproducible from ``seed``) or
            ``landmark`` (a square around each of the 5 landmarks).
        names: region names for the fixed scheme, keys of :data:`FIXED_REGIONS`; the first must be ``face``.
        num_random: number of regions (including the face) for the random scheme.
        random_scale: min and max side of a random crop, as a fraction of the face side.
        landmark_ratio: side of a landmark square as a fraction of the face side. The paper uses about 0.4.
        seed: seed for the random scheme at evaluation time.
    """

    scheme: str = "fixed"
    names: tuple[str, ...] = DEFAULT_FIXED_REGIONS
    num_random: int = 6
    random_scale: tuple[float, float] = (0.5, 0.9)
    landmark_ratio: float = 0.4
    seed: int = 0

    def __post_init__(self) -> None:
        self.names = tuple(self.names)
        self.random_scale = tuple(float(v) for v in self.random_scale)  # type: ignore[assignment]
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown region scheme {self.scheme!r}; choose one of {', '.join(SCHEMES)}")
        unknown = [n for n in self.names if n not in FIXED_REGIONS]
        if unknown:
            raise ValueError(f"unknown fixed region(s) {unknown}; known: {', '.join(FIXED_REGIONS)}")
        if not self.names or self.names[0] != "face":
            raise ValueError("the first fixed region must be 'face' (the region-biased loss compares against it)")
        if self.num_random < 1:
            raise ValueError("num_random must be at least 1")
        lo, hi = self.random_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"random_scale must satisfy 0 < min <= max <= 1, got {self.random_scale}")
        if not 0 < self.landmark_ratio <= 1:
            raise ValueError(f"landmark_ratio must be in (0, 1], got {self.landmark_ratio}")

    @property
    def num_regions(self) -> int:
        if self.scheme == "fixed":
            return len(self.names)
        if self.scheme == "random":
            return self.num_random
        return 1 + len(LANDMARK_NAMES)

    def region_names(self) -> list[str]:
        if self.scheme == "fixed":
            return list(self.names)
        if self.scheme == "random":
            return ["face"] + [f"random_{i}" for i in range(1, self.num_random)]
        return ["face", *LANDMARK_NAMES]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["names"] = list(self.names)
        d["random_scale"] = list(self.random_scale)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegionConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def whole_face(cls) -> RegionConfig:
        """The single-region configuration the baseline uses."""
        return cls(scheme="fixed", names=("face",))


def _as_face_box(face_box: Any, height: int, width: int) -> np.ndarray:
    if face_box is None:
        return np.array([0.0, 0.0, float(width), float(height)])
    box = np.asarray(face_box, dtype=np.float64).reshape(4)
    if not (box[2] > box[0] and box[3] > box[1]):
        raise ValueError(f"face box {box.tolist()} is empty")
    return box


def region_boxes(
    config: RegionConfig,
    image_size: tuple[int, int],
    face_box: Any = None,
    landmarks: Any = None,
    generator: torch.Generator | None = None,
) -> tuple[list[str], np.ndarray, str]:
    """Boxes of every region of one face.

    Args:
        config: the region configuration.
        image_size: ``(H, W)`` of the source image.
        face_box: ``(x1, y1, x2, y2)`` of the face; ``None`` means the whole image is the face.
        landmarks: ``(5, 2)`` points in image coordinates (order of :data:`LANDMARK_NAMES`); needed by ``landmark``.
        generator: random source for the ``random`` scheme; ``None`` seeds one from ``config.seed``.

    Returns:
        ``(names, boxes, scheme)``: ``boxes`` is ``(K, 4)`` float64 XYXY in image pixels, ``scheme`` the scheme used.
    """
    height, width = image_size
    face = _as_face_box(face_box, height, width)
    fb = torch.as_tensor(face, dtype=torch.float64)[None]
    lm = None if landmarks is None else torch.as_tensor(np.asarray(landmarks, dtype=np.float64))[None]
    boxes, scheme = region_boxes_batch(config, fb, lm, canvas_size=(height, width), generator=generator)
    names = config.region_names() if scheme == config.scheme else RegionConfig().region_names()
    return names, boxes[0].numpy(), scheme


def region_boxes_batch(
    config: RegionConfig,
    face_boxes: torch.Tensor,
    landmarks: torch.Tensor | None = None,
    canvas_size: tuple[int, int] | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, str]:
    """Vectorised :func:`region_boxes` for a batch of faces (the training path).

    Args:
        config: the region configuration.
        face_boxes: ``(B, 4)`` face boxes.
        landmarks: ``(B, 5, 2)`` landmarks, or ``None``.
        canvas_size: ``(H, W)``; landmark squares are clipped to it.
        generator: random source for the ``random`` scheme.

    Returns:
        ``((B, K, 4) boxes, scheme used)``. With the landmark scheme, a face whose landmarks are missing (NaN rows)
        gets the fixed crops of :data:`DEFAULT_FIXED_REGIONS` (the same K = 6) and the others keep their landmark
        squares; the scheme is then ``"landmark+fixed"``.
    """
    fb = face_boxes.to(torch.float64) if face_boxes.dtype == torch.float64 else face_boxes.float()
    if config.scheme == "landmark" and landmarks is not None:
        missing = torch.isnan(landmarks.reshape(len(landmarks), -1)).any(dim=1)
        if missing.all():
            landmarks = None
        elif missing.any():
            # Fall back per face, never per batch: one face without landmarks must not change its neighbours' crops.
            filled = torch.where(missing[:, None, None], torch.zeros_like(landmarks), landmarks)
            lm_boxes, _ = region_boxes_batch(config, fb, filled, canvas_size, generator)
            fixed, _ = region_boxes_batch(RegionConfig(), fb, None, canvas_size, generator)
            m = missing.to(lm_boxes.device)[:, None, None]
            return torch.where(m, fixed.to(lm_boxes), lm_boxes), "landmark+fixed"
    x1, y1, x2, y2 = fb.unbind(-1)
    w, h = x2 - x1, y2 - y1
    scheme = config.scheme
    if scheme == "landmark" and landmarks is None:
        scheme = "fixed"  # no landmarks: fall back to the paper's fixed crops, and say so.
        config = RegionConfig()
    if scheme == "fixed":
        frac = torch.tensor([FIXED_REGIONS[n] for n in config.names], dtype=fb.dtype, device=fb.device)
        bx1 = x1[:, None] + frac[None, :, 0] * w[:, None]
        by1 = y1[:, None] + frac[None, :, 1] * h[:, None]
        bx2 = x1[:, None] + frac[None, :, 2] * w[:, None]
        by2 = y1[:, None] + frac[None, :, 3] * h[:, None]
        return torch.stack([bx1, by1, bx2, by2], dim=-1), scheme
    if scheme == "random":
        if generator is None:
            generator = torch.Generator().manual_seed(config.seed)
        b, k = fb.shape[0], config.num_random - 1
        lo, hi = config.random_scale
        u = torch.rand((b, k, 4), generator=generator, dtype=torch.float64).to(fb)
        sw = lo + (hi - lo) * u[..., 0]
        sh = lo + (hi - lo) * u[..., 1]
        ox = (1 - sw) * u[..., 2]
        oy = (1 - sh) * u[..., 3]
        bx1 = x1[:, None] + ox * w[:, None]
        by1 = y1[:, None] + oy * h[:, None]
        crops = torch.stack([bx1, by1, bx1 + sw * w[:, None], by1 + sh * h[:, None]], dim=-1)
        return torch.cat([fb[:, None], crops], dim=1), scheme
    # landmark
    pts = landmarks.to(fb)
    if pts.shape[-2] != len(LANDMARK_NAMES):
        raise ValueError(f"landmark regions need {len(LANDMARK_NAMES)} points per face, got {pts.shape[-2]}")
    half = (config.landmark_ratio * torch.maximum(w, h) / 2)[:, None]
    sq = torch.stack([pts[..., 0] - half, pts[..., 1] - half, pts[..., 0] + half, pts[..., 1] + half], dim=-1)
    if canvas_size is not None:
        ch, cw = canvas_size
        # Starts stop one pixel short of the far edge, so a landmark on or beyond it (faces cut by the frame) still
        # gets a one-pixel box INSIDE the image instead of one hanging past it.
        sq = torch.stack(
            [
                sq[..., 0].clamp(0, max(cw - 1, 0)),
                sq[..., 1].clamp(0, max(ch - 1, 0)),
                sq[..., 2].clamp(0, cw),
                sq[..., 3].clamp(0, ch),
            ],
            -1,
        )
        # A landmark at the very edge would clip to an empty box; keep at least one pixel.
        sq[..., 2] = torch.maximum(sq[..., 2], sq[..., 0] + 1)
        sq[..., 3] = torch.maximum(sq[..., 3], sq[..., 1] + 1)
    return torch.cat([fb[:, None], sq], dim=1), scheme


def crop_regions(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Crop and resize every region of every image in one call.

    Args:
        images: ``(B, C, H, W)`` float images.
        boxes: ``(B, K, 4)`` XYXY boxes in pixel coordinates of ``images``.
        size: output side.

    Returns:
        ``(B, K, C, size, size)`` crops. Parts of a box outside the image read as zeros.
    """
    b, k = boxes.shape[:2]
    idx = torch.arange(b, device=images.device, dtype=images.dtype).repeat_interleave(k)[:, None]
    rois = torch.cat([idx, boxes.reshape(b * k, 4).to(images)], dim=1)
    out = roi_align(images, rois, output_size=(size, size), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    return out.reshape(b, k, images.shape[1], size, size)


def normalize_crops(crops: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``(B, K, C, S, S)`` crops with values in [0, 1] -> the model's input: ``(crops - mean) / std`` per channel.

    The one place this happens, for training batches and for the Predictor alike, so the two cannot drift apart.
    """
    m = torch.tensor(mean, device=crops.device, dtype=crops.dtype).view(1, 1, -1, 1, 1)
    s = torch.tensor(std, device=crops.device, dtype=crops.dtype).view(1, 1, -1, 1, 1)
    return (crops - m) / s
