"""The face-detector interface, its registry, and the ``auto`` choice.

A detector takes an ``(H, W, 3)`` uint8 RGB image and returns :class:`Detection` objects in that image's pixel
coordinates. Three backends ship with ran_core, tried in this order by ``auto``:

1. ``fan`` - face-alignment's S3FD detector + FAN 68-point landmarks (the most accurate landmarks). Its weights are
   downloaded into torch's hub cache the first time it is used with a network; without them it is skipped.
2. ``mtcnn`` - facenet-pytorch's MTCNN (5 landmarks, weights ship inside the package):
   ``pip install --no-deps facenet-pytorch==2.6.0``.
3. ``haar`` - OpenCV's Haar cascade (no landmarks, so faces get the fixed region crops). Always available.

Pick one explicitly with ``create_detector("mtcnn")`` or ``ran-core predict --detector mtcnn``. Other detectors can be
added with :func:`register_detector`; anything with a ``name`` and a ``detect(rgb)`` method works with the Predictor.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

logger = logging.getLogger(__name__)

AUTO_ORDER: tuple[str, ...] = ("fan", "mtcnn", "haar")
# Longest side of the copy detection runs on. Faces in a 1280 px view of a photo are still >= 40 px for any face worth
# classifying, and the cost of CNN detectors grows with the pixel count (an 8000x8000 photo would take minutes).
DEFAULT_MAX_SIDE = 1280


class DetectorUnavailable(RuntimeError):
    """A detector backend cannot run here (package missing, weights not downloaded); the message says what to do."""


@dataclass
class Detection:
    """One face found by a detector.

    Attributes:
        box: ``(x1, y1, x2, y2)`` in the pixel coordinates of the image given to the detector.
        score: detector confidence in [0, 1].
        landmarks: ``(5, 2)`` points in the order of :data:`ran_core.regions.LANDMARK_NAMES`, ``(68, 2)`` iBUG-300W
            points, or ``None``.
    """

    box: tuple[float, float, float, float]
    score: float = 1.0
    landmarks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.box = tuple(float(v) for v in np.asarray(self.box, dtype=np.float64).reshape(4)[:4])  # type: ignore
        self.score = float(self.score)
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float64).reshape(-1, 2)
            if len(self.landmarks) not in (5, 68):
                raise ValueError(f"landmarks must be 5 or 68 points, got {len(self.landmarks)}")

    @property
    def five_points(self) -> np.ndarray | None:
        """``(5, 2)`` landmarks in LANDMARK_NAMES order (converted from 68 points if needed), or ``None``."""
        return None if self.landmarks is None else five_point_landmarks(self.landmarks)

    @classmethod
    def from_any(cls, det: Any) -> Detection:
        """Any object with ``box`` (and optionally ``score`` and ``landmarks``), e.g. a FaceResult or another
        detector's result, as a Detection (returned as it is when it already is one)."""
        if isinstance(det, Detection):
            return det
        return cls(det.box, getattr(det, "score", 1.0), getattr(det, "landmarks", None))

    def scaled(self, factor: float) -> Detection:
        """The same detection with every coordinate multiplied by ``factor``."""
        lm = None if self.landmarks is None else self.landmarks * factor
        return Detection(tuple(v * factor for v in self.box), self.score, lm)


def five_point_landmarks(points: np.ndarray) -> np.ndarray:
    """``(68, 2)`` iBUG-300W landmarks -> the 5 MTCNN-order points (eye centres, nose tip, mouth corners).

    ``(5, 2)`` input is returned as float64 unchanged. "Left eye" is the eye on the image's left, as in MTCNN.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 5:
        return pts
    if len(pts) != 68:
        raise ValueError(f"expected 5 or 68 landmarks, got {len(pts)}")
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


@runtime_checkable
class FaceDetector(Protocol):
    """What the Predictor needs from a detector."""

    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an ``(H, W, 3)`` uint8 RGB image, in its pixel coordinates, best first."""
        ...


class DownscalingDetector:
    """Base class for backends: runs :meth:`_detect` on a copy no larger than ``max_side`` and maps results back.

    A face that came out small in the downscaled copy (under ``refine_below`` pixels) is detected again in a crop of
    the full-resolution image around it, so its box and landmarks are as precise as if the photo had been small.

    Args:
        max_side: longest side of the copy detection runs on (``None``: never downscale).
        min_score: detections below this confidence are dropped.
        refine_below: face side, in pixels of the downscaled copy, under which a face is refined (0: never).
    """

    name = "base"
    # Side at which a refined face is detected again: big enough for precise landmarks, small enough to be cheap.
    refine_side = 160

    def __init__(self, max_side: int | None = DEFAULT_MAX_SIDE, min_score: float = 0.0, refine_below: int = 96) -> None:
        if max_side is not None and max_side < 32:
            raise ValueError(f"max_side must be at least 32 px, got {max_side}")
        self.max_side = max_side
        self.min_score = min_score
        self.refine_below = refine_below

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in an ``(H, W, 3)`` uint8 RGB image, in its pixel coordinates, sorted by score."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"detectors take (H, W, 3) uint8 RGB images, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        scale = 1.0
        if self.max_side is not None and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            # Map back with the exact per-axis ratio actually used, not the nominal one, so boxes land on the pixels.
            sx, sy = w / size[0], h / size[1]
            dets = [
                self._refine(rgb, _rescale(d, sx, sy))
                if max(_side(d.box), 1) < self.refine_below
                else _rescale(d, sx, sy)
                for d in self._detect_at(small, scale)
            ]
        else:
            dets = self._detect_at(np.ascontiguousarray(rgb), 1.0)
        dets = [d for d in dets if d.score >= self.min_score and d.box[2] > d.box[0] and d.box[3] > d.box[1]]
        return sorted(dets, key=lambda d: -d.score)

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        raise NotImplementedError

    def _detect_at(self, rgb: np.ndarray, scale: float) -> list[Detection]:
        """Faces in ``rgb``, a copy of the caller's image resized by ``scale``.

        Backends that can skip small faces override this: a face of ``n`` pixels in the caller's image is
        ``n * scale`` pixels here, so they need not search below that.
        """
        return self._detect(rgb)

    def _refine(self, rgb: np.ndarray, det: Detection) -> Detection:
        """Detect ``det`` again in a crop of the full image around it; keep ``det`` if the face is not found again."""
        h, w = rgb.shape[:2]
        x1, y1, x2, y2 = det.box
        pad = _side(det.box)
        cx1, cy1 = int(max(0, x1 - pad)), int(max(0, y1 - pad))
        cx2, cy2 = int(min(w, np.ceil(x2 + pad))), int(min(h, np.ceil(y2 + pad)))
        crop = rgb[cy1:cy2, cx1:cx2]
        f = min(1.0, self.refine_side / _side(det.box))
        size = (max(1, round(crop.shape[1] * f)), max(1, round(crop.shape[0] * f)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA) if f < 1 else np.ascontiguousarray(crop)
        sx, sy = (cx2 - cx1) / size[0], (cy2 - cy1) / size[1]
        found = [_shift(_rescale(d, sx, sy), cx1, cy1) for d in self._detect_at(crop, f)]
        if not found:
            return det
        best = max(found, key=lambda d: box_iou(d.box, det.box)[0, 0])
        return best if box_iou(best.box, det.box)[0, 0] > 0.3 else det

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_side={self.max_side}, min_score={self.min_score})"


def _rescale(det: Detection, sx: float, sy: float) -> Detection:
    box = (det.box[0] * sx, det.box[1] * sy, det.box[2] * sx, det.box[3] * sy)
    lm = None if det.landmarks is None else det.landmarks * np.array([sx, sy])
    return Detection(box, det.score, lm)


def _shift(det: Detection, dx: float, dy: float) -> Detection:
    box = (det.box[0] + dx, det.box[1] + dy, det.box[2] + dx, det.box[3] + dy)
    lm = None if det.landmarks is None else det.landmarks + np.array([dx, dy])
    return Detection(box, det.score, lm)


def _side(box: tuple[float, float, float, float]) -> float:
    return max(box[2] - box[0], box[3] - box[1])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, 4)`` x ``(M, 4)`` XYXY boxes -> ``(N, M)`` intersection over union."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


@dataclass
class _Backend:
    build: Callable[..., FaceDetector]
    # Returns None when the backend can run here, else the reason it cannot (cheap: no weights are loaded).
    check: Callable[[], str | None]


_REGISTRY: dict[str, _Backend | str] = {
    "fan": "ran_core.faces.fan",
    "mtcnn": "ran_core.faces.mtcnn",
    "haar": "ran_core.faces.haar",
    "blazeface": "ran_core.faces.blazeface",
    "blazeface_full": "ran_core.faces.blazeface:build_full",
}


def register_detector(
    name: str, build: Callable[..., FaceDetector], check: Callable[[], str | None] | None = None
) -> None:
    """Make ``create_detector(name)`` call ``build(device=..., max_side=..., **kwargs)``.

    Args:
        name: the name used by ``create_detector`` and ``--detector``.
        build: factory returning a :class:`FaceDetector`.
        check: returns ``None`` if the backend can run here, else why not; ``auto`` uses it to skip backends.
    """
    if name == "auto":
        raise ValueError("'auto' is reserved")
    _REGISTRY[name] = _Backend(build, check or (lambda: None))


def _backend(name: str) -> _Backend:
    if name not in _REGISTRY:
        raise ValueError(f"unknown detector {name!r}; choose one of auto, {', '.join(_REGISTRY)}")
    entry = _REGISTRY[name]
    if isinstance(entry, str):  # built-in backends are imported on first use so that `import ran_core` stays light
        module_name, _, attr = entry.partition(":")
        module = importlib.import_module(module_name)
        entry = _REGISTRY[name] = _Backend(getattr(module, attr or "build"), module.check)
    return entry


def list_detectors() -> list[str]:
    """Registered detector names (``auto`` not included)."""
    return list(_REGISTRY)


def detector_status() -> dict[str, str | None]:
    """For every registered detector: ``None`` if it can run here, else the reason it cannot."""
    return {name: _backend(name).check() for name in _REGISTRY}


# Live video wants the fastest detector that keeps recall: BlazeFace (1.6 ms a 320 px frame, 93.5 % of FERPlus Valid
# faces found in pictures against MTCNN's 87.3 % at 27.6 ms), then what `auto` picks.
CAMERA_ORDER: tuple[str, ...] = ("blazeface",)


def resolve_camera_auto() -> str:
    """The detector the camera path picks: the first of :data:`CAMERA_ORDER` that can run, else :func:`resolve_auto`."""
    for name in CAMERA_ORDER:
        if _backend(name).check() is None:
            return name
    return resolve_auto()


def resolve_auto() -> str:
    """The detector ``auto`` picks on this machine: the first of :data:`AUTO_ORDER` that can run."""
    for name in AUTO_ORDER:
        reason = _backend(name).check()
        if reason is None:
            return name
        logger.debug("auto detector: skipping %s (%s)", name, reason)
    raise DetectorUnavailable("no face detector can run here (OpenCV's Haar cascade files are missing too)")


def create_detector(
    name: str = "auto", device: str = "cpu", max_side: int | None = DEFAULT_MAX_SIDE, **kwargs: Any
) -> FaceDetector:
    """Build a detector by name.

    Args:
        name: ``auto`` or a name from :func:`list_detectors`.
        device: torch device for CNN detectors.
        max_side: longest side of the downscaled copy detection runs on (``None``: full resolution).
        **kwargs: backend options (e.g. ``min_score``).

    Raises:
        DetectorUnavailable: the backend cannot run here; the message says how to fix it or what to pick instead.
    """
    if name == "auto":
        chosen = resolve_auto()
        logger.info("face detector: %s (auto)", chosen)
        return _backend(chosen).build(device=device, max_side=max_side, **kwargs)
    backend = _backend(name)
    reason = backend.check()
    if reason is not None:
        raise DetectorUnavailable(f"detector {name!r} cannot run: {reason}")
    return backend.build(device=device, max_side=max_side, **kwargs)
