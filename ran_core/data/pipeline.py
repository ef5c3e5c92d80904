"""From dataset samples to model input: decode once, frame the face, then augment and cut regions on whole batches.

Decoding and framing happen per sample (in DataLoader workers, or once up front into an in-memory cache for small
datasets such as FERPlus, whose 48 px images fit in ~65 MB). Augmentation, region cropping and normalisation run on
whole batches on the training device, so the GPU is never waiting on per-image Python code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ran_core.config import ModelConfig
from ran_core.imageio import ImageReadError, read_image, to_gray
from ran_core.regions import crop_regions, normalize_crops, region_boxes_batch

logger = logging.getLogger(__name__)

# Landmark order is left_eye, right_eye, nose, mouth_left, mouth_right: a horizontal flip swaps the pairs.
_FLIP_ORDER = [1, 0, 2, 4, 3]


def frame_face(
    rgb: np.ndarray,
    config: ModelConfig,
    size: int,
    face_box: Sequence[float] | None = None,
    landmarks: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Cut the face out of an RGB image and resize it to ``size``, in the model's colour mode.

    The face box is made square around its centre (out-of-image parts are zero) so faces keep their aspect ratio.

    Returns:
        ``(image (size, size, C) uint8, landmarks (5, 2) in the framed image's pixels or None)``.
    """
    img = to_gray(rgb)[..., None] if config.color_mode == "gray" else rgb
    h, w = img.shape[:2]
    if face_box is None:
        x1, y1, x2, y2 = 0.0, 0.0, float(w), float(h)
    else:
        x1, y1, x2, y2 = (float(v) for v in face_box)
    side = max(x2 - x1, y2 - y1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    sx1, sy1 = int(round(cx - side / 2)), int(round(cy - side / 2))
    iside = max(1, int(round(side)))
    crop = np.zeros((iside, iside, img.shape[2]), dtype=np.uint8)
    ix1, iy1, ix2, iy2 = max(sx1, 0), max(sy1, 0), min(sx1 + iside, w), min(sy1 + iside, h)
    if ix2 > ix1 and iy2 > iy1:
        crop[iy1 - sy1 : iy2 - sy1, ix1 - sx1 : ix2 - sx1] = img[iy1:iy2, ix1:ix2]
    if iside != size:
        interp = cv2.INTER_AREA if iside > size else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (size, size), interpolation=interp)
        if crop.ndim == 2:
            crop = crop[..., None]
    lm = None
    if landmarks is not None:
        lm = (np.asarray(landmarks, dtype=np.float32) - np.array([sx1, sy1], dtype=np.float32)) * (size / iside)
    return crop, lm


class FaceDataset(Dataset):
    """Decodes and frames one sample; a sample that cannot be read yields ``None`` (counted by the collate step)."""

    def __init__(self, samples: Sequence, config: ModelConfig, size: int, num_classes: int, soft: bool = False):
        self.samples = samples
        self.config = config
        self.size = size
        self.num_classes = num_classes
        self.soft = soft

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict | None:
        s = self.samples[index]
        try:
            rgb = read_image(s.path)
        except ImageReadError as exc:
            return {"index": index, "error": str(exc)}
        img, lm = frame_face(rgb, self.config, self.size, s.face_box, s.landmarks)
        if self.soft and s.soft is not None:
            target = torch.as_tensor(s.soft, dtype=torch.float32)
        else:
            target = torch.tensor(s.label, dtype=torch.long)
        return {
            "index": index,
            "image": torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1),
            "target": target,
            "landmarks": torch.full((5, 2), float("nan")) if lm is None else torch.from_numpy(lm[:5]),
        }


def collate_faces(items: list[dict]) -> dict:
    """Stack the good items; report the indices and messages of the ones that failed to decode."""
    good = [it for it in items if "error" not in it]
    bad = [(it["index"], it["error"]) for it in items if "error" in it]
    if not good:
        return {"index": torch.empty(0, dtype=torch.long), "errors": bad}
    return {
        "index": torch.tensor([it["index"] for it in good]),
        "image": torch.stack([it["image"] for it in good]),
        "target": torch.stack([it["target"] for it in good]),
        "landmarks": torch.stack([it["landmarks"] for it in good]),
        "errors": bad,
    }


@dataclass
class CachedFaces:
    """All framed faces of a split decoded into memory once: ``images (N, C, S, S) uint8``."""

    images: torch.Tensor
    targets: torch.Tensor
    landmarks: torch.Tensor
    valid: torch.Tensor  # (N,) bool: False where the image could not be read
    errors: list[tuple[int, str]]

    def batch(self, index: torch.Tensor) -> dict:
        keep = index[self.valid[index]]
        return {
            "index": keep,
            "image": self.images[keep],
            "target": self.targets[keep],
            "landmarks": self.landmarks[keep],
            "errors": [(int(i), "unreadable image") for i in index[~self.valid[index]]],
        }


def cache_faces(dataset: FaceDataset, threads: int = 4, desc: str = "decoding") -> CachedFaces:
    """Decode every sample once (threads: Pillow and OpenCV release the GIL while decoding)."""
    n = len(dataset)
    c = dataset.config.in_chans
    images = torch.zeros((n, c, dataset.size, dataset.size), dtype=torch.uint8)
    soft = dataset.soft
    targets = torch.zeros((n, dataset.num_classes), dtype=torch.float32) if soft else torch.zeros(n, dtype=torch.long)
    landmarks = torch.full((n, 5, 2), float("nan"))
    valid = torch.zeros(n, dtype=torch.bool)
    errors: list[tuple[int, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for i, item in enumerate(tqdm(pool.map(dataset.__getitem__, range(n)), total=n, desc=desc, leave=False)):
            if "error" in item:
                errors.append((i, item["error"]))
                continue
            images[i] = item["image"]
            t = item["target"]
            if soft and t.ndim == 0:
                t = F.one_hot(t, dataset.num_classes).float()
            targets[i] = t
            landmarks[i] = item["landmarks"]
            valid[i] = True
    return CachedFaces(images, targets, landmarks, valid, errors)


ERASE_FILLS: tuple[str, ...] = ("gray", "black", "mixed")


@dataclass
class AugmentConfig:
    """Batch augmentation applied to the whole face before its regions are cut.

    Attributes:
        flip: probability of a horizontal flip.
        rotate: max rotation in degrees.
        scale: max relative zoom (0.1 = 0.9x to 1.1x).
        translate: max shift as a fraction of the face side.
        shear: max horizontal shear (x += shear * y, in units of the face side).
        erase: probability of erasing a random rectangle (a synthetic occlusion; Zhong et al. 2020).
        parts: probability of covering a whole face part instead (see :data:`PART_OCCLUDERS`: a band over the eyes,
            the mouth and chin, or the upper, lower, left or right half, each edge moved by up to
            :data:`PART_JITTER` of the face side), filled as ``erase_fill`` says. A face covered this way gets no
            random rectangle too. Occluders this large are what RAN's attention is meant to work around: its
            uncovered crops carry the expression.
        color: max relative brightness/contrast change (additive brightness, contrast about the mean).
        brightness: ``(lo, hi)`` range of a multiplicative brightness factor, or None.
        erase_fill: what an erased rectangle is filled with: ``gray`` (0.5, the default), ``black``, or ``mixed`` (per
            face one of black, gray or uniform noise, as sunglasses, masks and hands are rarely mid-gray).
    """

    flip: float = 0.5
    rotate: float = 0.0
    scale: float = 0.0
    translate: float = 0.0
    shear: float = 0.0
    erase: float = 0.0
    parts: float = 0.0
    color: float = 0.0
    brightness: tuple[float, float] | None = None
    erase_fill: str = "gray"

    def __post_init__(self) -> None:
        if self.erase_fill not in ERASE_FILLS:
            raise ValueError(f"erase_fill must be one of {', '.join(ERASE_FILLS)}, got {self.erase_fill!r}")
        if not 0 <= self.parts <= 1:
            raise ValueError(f"parts must be a probability in [0, 1], got {self.parts}")
        if self.brightness is not None:
            lo, hi = (float(v) for v in self.brightness)
            if not 0 <= lo <= hi:
                raise ValueError(f"brightness range must satisfy 0 <= lo <= hi, got {self.brightness}")
            self.brightness = (lo, hi)

    @classmethod
    def official(cls) -> AugmentConfig:
        """The authors' recipe: random flips and small random crops (a shift of a few pixels)."""
        return cls(flip=0.5, translate=0.06)

    @classmethod
    def modern(cls) -> AugmentConfig:
        return cls(flip=0.5, rotate=10.0, scale=0.1, translate=0.08, erase=0.25, color=0.2)

    @classmethod
    def strong(cls) -> AugmentConfig:
        """The heavy augmentation of the best small from-scratch FERPlus CNNs (rotation 30 degrees, shifts, shear and
        zoom 20 %, brightness x0.2-1.2), plus random erasing as a stand-in for occluders."""
        return cls(flip=0.5, rotate=30.0, scale=0.2, translate=0.2, shear=0.2, erase=0.25, brightness=(0.2, 1.2))

    @classmethod
    def preset(cls, name: str, erase_fill: str = "gray", parts: float = 0.0) -> AugmentConfig | None:
        """``none``, ``official``, ``modern`` or ``strong``, with erased rectangles filled as ``erase_fill`` says and
        face parts covered with probability ``parts``."""
        if name == "none":
            return None
        if name not in AUGMENT_PRESETS:
            raise ValueError(f"unknown augmentation {name!r}; choose one of none, {', '.join(AUGMENT_PRESETS)}")
        aug = getattr(cls, name)()
        aug.erase_fill = erase_fill
        aug.parts = parts
        aug.__post_init__()
        return aug


AUGMENT_PRESETS: tuple[str, ...] = ("official", "modern", "strong")


def _box_mask(x0: torch.Tensor, y0: torch.Tensor, x1: torch.Tensor, y1: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(B, H, W)`` bool mask of the pixels whose index lies in each face's box ``[x0, x1) x [y0, y1)``."""
    xs = torch.arange(w).view(1, 1, w)
    ys = torch.arange(h).view(1, h, 1)
    in_x = (xs >= x0.view(-1, 1, 1)) & (xs < x1.view(-1, 1, 1))
    in_y = (ys >= y0.view(-1, 1, 1)) & (ys < y1.view(-1, 1, 1))
    return in_x & in_y


class RegionBatcher:
    """uint8 face batch -> augmented, region-cropped, normalised ``(B, K, C, S, S)`` float batch, on any device."""

    def __init__(self, config: ModelConfig, augment: AugmentConfig | None = None, seed: int = 0):
        self.config = config
        self.augment = augment
        self.generator = torch.Generator().manual_seed(seed)
        self.region_generator = torch.Generator().manual_seed(config.regions.seed)

    def _rand(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator)

    def __call__(self, images: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
        return self.crop(*self.augment_faces(images, landmarks))

    def augment_faces(
        self, images: torch.Tensor, landmarks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """uint8 faces -> the augmented float faces (0-1) and, for a landmark-region model, their moved landmarks:
        what :meth:`crop` cuts the regions from (and what a distillation teacher reads, the very same faces)."""
        x = images.float() / 255.0
        lm = None
        if landmarks is not None and self.config.regions.scheme == "landmark":
            # Faces without landmarks (NaN rows) fall back to fixed crops one by one (the model's K is the same).
            lm = landmarks.to(device=images.device, dtype=torch.float32)
        if self.augment is not None:
            x, lm = self._augment(x, lm)
        return x, lm

    def crop(self, x: torch.Tensor, lm: torch.Tensor | None = None) -> torch.Tensor:
        """Float faces ``(B, C, H, W)`` in 0-1 -> this model's normalised region crops ``(B, K, C, S, S)``."""
        cfg = self.config
        device = x.device
        b, _, h, w = x.shape
        if cfg.regions.scheme != "landmark":
            lm = None
        if cfg.regions.num_regions == 1 and cfg.regions.scheme == "fixed" and h == w == cfg.input_size:
            crops = x[:, None]  # the whole face at the model's size already: nothing to crop
        else:
            face = torch.tensor([[0.0, 0.0, float(w), float(h)]], device=device).expand(b, 4)
            gen = self.region_generator if cfg.regions.scheme == "random" else None
            boxes, _ = region_boxes_batch(cfg.regions, face, lm, canvas_size=(h, w), generator=gen)
            crops = crop_regions(x, boxes.to(device=device, dtype=x.dtype), cfg.input_size)
        return normalize_crops(crops, cfg.mean, cfg.std)

    def _augment(self, x: torch.Tensor, lm: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        a = self.augment
        b, _, h, w = x.shape
        dev = x.device
        flip = self._rand(b) < a.flip
        ang = (self._rand(b) * 2 - 1) * math.radians(a.rotate)
        scl = 1 + (self._rand(b) * 2 - 1) * a.scale
        tx, ty = ((self._rand(b) * 2 - 1) * a.translate * 2), ((self._rand(b) * 2 - 1) * a.translate * 2)
        erase = self._rand(b) < a.erase
        erase_box = self._rand(b, 4)
        if a.parts > 0:  # drawn only when asked: runs without parts keep their random streams
            part = self._rand(b) < a.parts
            part_kind = (self._rand(b) * len(PART_OCCLUDERS)).long().clamp(max=len(PART_OCCLUDERS) - 1)
            part_jitter = (self._rand(b, 4) * 2 - 1) * PART_JITTER
            erase = erase & ~part
        color = (self._rand(b, 2) * 2 - 1) * a.color
        shear = (self._rand(b) * 2 - 1) * a.shear
        lo, hi = a.brightness or (1.0, 1.0)
        gain = lo + self._rand(b) * (hi - lo)
        # Output-to-input sampling matrix in normalised coords: x_in = Sh S^-1 R^-1 (x_out - t), flip folded in.
        cos, sin = torch.cos(ang) / scl, torch.sin(ang) / scl
        fx = torch.where(flip, -1.0, 1.0)
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos * fx, sin
        theta[:, 1, 0], theta[:, 1, 1] = -sin * fx, cos
        if a.shear > 0:
            row0 = theta[:, 0, :2] + shear[:, None] * theta[:, 1, :2]
            theta[:, 0, 0], theta[:, 0, 1] = row0[:, 0], row0[:, 1]
        theta[:, 0, 2] = -(theta[:, 0, 0] * tx + theta[:, 0, 1] * ty)
        theta[:, 1, 2] = -(theta[:, 1, 0] * tx + theta[:, 1, 1] * ty)
        theta = theta.to(dev)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        if lm is not None:
            # Forward map of points: invert the 2x2 part. Normalised coords u = 2p/size - 1.
            u = torch.stack([lm[..., 0] / w * 2 - 1, lm[..., 1] / h * 2 - 1], dim=-1)
            lin, t = theta[:, :, :2], theta[:, :, 2]
            v = torch.linalg.solve(lin[:, None].expand(-1, u.shape[1], -1, -1), (u - t[:, None])[..., None])[..., 0]
            lm = torch.stack([(v[..., 0] + 1) / 2 * w, (v[..., 1] + 1) / 2 * h], dim=-1)
            lm = torch.where(flip.to(dev)[:, None, None], lm[:, _FLIP_ORDER], lm)
        if a.color > 0:
            c = color.to(dev)
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = ((x - mean) * (1 + c[:, 1, None, None, None]) + mean + c[:, 0, None, None, None]).clamp(0, 1)
        if a.brightness is not None:
            x = (x * gain.to(dev)[:, None, None, None]).clamp(0, 1)
        mask = None
        if a.erase > 0 and erase.any():
            ew = (0.2 + 0.3 * erase_box[:, 0]) * w
            eh = (0.2 + 0.3 * erase_box[:, 1]) * h
            ex = erase_box[:, 2] * (w - ew)
            ey = erase_box[:, 3] * (h - eh)
            mask = _box_mask(ex, ey, ex + ew, ey + eh, h, w) & erase.view(-1, 1, 1)
        if a.parts > 0 and part.any():
            frac = torch.tensor(list(PART_OCCLUDERS.values()))[part_kind] + part_jitter
            frac = frac.clamp(0, 1)
            part_mask = _box_mask(frac[:, 0] * w, frac[:, 1] * h, frac[:, 2] * w, frac[:, 3] * h, h, w)
            part_mask &= part.view(-1, 1, 1)
            mask = part_mask if mask is None else mask | part_mask
        if mask is not None:
            mask = mask[:, None].to(dev)
            if a.erase_fill == "gray":
                x = x.masked_fill(mask, 0.5)
            elif a.erase_fill == "black":
                x = x.masked_fill(mask, 0.0)
            else:  # mixed: each face's rectangle black, gray or noise (drawn only here: gray/black streams unchanged)
                kind = (self._rand(b) * 3).long().clamp(max=2).to(dev).view(-1, 1, 1, 1)
                noise = torch.rand(x.shape, generator=self.generator).to(dev)
                fill = torch.where(
                    kind == 0, torch.zeros_like(x), torch.where(kind == 1, torch.full_like(x, 0.5), noise)
                )
                x = torch.where(mask, fill, x)
        return x, lm

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "region_generator": self.region_generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.region_generator.set_state(state["region_generator"])


def iterate_batches(
    source: CachedFaces | FaceDataset,
    batches: Sequence[torch.Tensor],
    workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[dict]:
    """Yield collated batches for the given index batches, from the cache or through a DataLoader."""
    if isinstance(source, CachedFaces):
        for idx in batches:
            yield source.batch(idx)
        return
    loader = DataLoader(
        source,
        batch_sampler=[idx.tolist() for idx in batches],
        num_workers=workers,
        collate_fn=collate_faces,
        pin_memory=pin_memory,
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
    )
    yield from loader


# Synthetic occluders for evaluation, as fractions (x0, y0, x1, y1) of the framed face: a band over both eyes
# (sunglasses), a mask over mouth and chin, and the lower or left half. ``random`` puts a square of 40% of the face
# side anywhere.
OCCLUSIONS: dict[str, tuple[float, float, float, float] | None] = {
    "eyes": (0.0, 0.2, 1.0, 0.48),
    "mouth": (0.1, 0.62, 0.9, 1.0),
    "lower_half": (0.0, 0.5, 1.0, 1.0),
    "left_half": (0.0, 0.0, 0.5, 1.0),
    "random": None,
}


# Face parts that ``AugmentConfig.parts`` covers in training, as fractions of the face before jitter: the fixed
# occluders above (sunglasses, a mask, a half hidden by a hand or by a turned head) and the halves they leave out.
# Each edge moves by up to PART_JITTER of the face side, so training sees the family, not the exact test boxes.
PART_OCCLUDERS: dict[str, tuple[float, float, float, float]] = {
    **{name: box for name, box in OCCLUSIONS.items() if box is not None},
    "upper_half": (0.0, 0.0, 1.0, 0.5),
    "right_half": (0.5, 0.0, 1.0, 1.0),
}
PART_JITTER = 0.08


def occlude_batch(images: torch.Tensor, kind: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """Black out part of every ``(B, C, H, W)`` uint8 face, as a sunglasses/mask stand-in for robustness tests.

    The authors' FERPlus occlusion/pose lists name test-split images; this lets any split be evaluated under a
    controlled, reproducible occlusion instead (``random`` draws from ``generator``).
    """
    if kind not in OCCLUSIONS:
        raise ValueError(f"unknown occlusion {kind!r}; choose one of {', '.join(OCCLUSIONS)}")
    out = images.clone()
    b, _, h, w = images.shape
    frac = OCCLUSIONS[kind]
    if frac is not None:
        x0, y0, x1, y1 = frac
        out[:, :, round(y0 * h) : round(y1 * h), round(x0 * w) : round(x1 * w)] = 0
        return out
    side = 0.4
    pos = torch.rand((b, 2), generator=generator) * (1 - side)
    for i in range(b):
        x0, y0 = int(pos[i, 0] * w), int(pos[i, 1] * h)
        out[i, :, y0 : y0 + round(side * h), x0 : x0 + round(side * w)] = 0
    return out
