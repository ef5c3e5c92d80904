"""facenet-pytorch's MTCNN: face boxes and 5 landmarks, with its weights inside the package (works offline).

An optional extra: ``pip install --no-deps facenet-pytorch==2.6.0`` (its own pins on torch and numpy are stale,
hence ``--no-deps``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import numpy as np
import torch

from ran_core.faces.detectors import DEFAULT_MAX_SIDE, Detection, DetectorUnavailable, DownscalingDetector

INSTALL_HINT = "pip install --no-deps facenet-pytorch==2.6.0"


def check() -> str | None:
    if importlib.util.find_spec("facenet_pytorch") is None:
        return f"facenet-pytorch is not installed ({INSTALL_HINT})"
    return None


def _import_mtcnn() -> type:
    try:
        from facenet_pytorch import MTCNN

        return MTCNN
    except ModuleNotFoundError as exc:
        if exc.name != "requests":
            raise
    # The package __init__ also imports the face-recognition network, whose weight downloader needs `requests`, a
    # dependency that `--no-deps` leaves out. MTCNN itself does not use it: import its module under a bare parent
    # package instead, and leave no half-imported `facenet_pytorch` behind.
    spec = importlib.util.find_spec("facenet_pytorch")
    bare = types.ModuleType("facenet_pytorch")
    bare.__path__ = list(spec.submodule_search_locations or [])
    sys.modules["facenet_pytorch"] = bare
    try:
        return importlib.import_module("facenet_pytorch.models.mtcnn").MTCNN
    finally:
        if sys.modules.get("facenet_pytorch") is bare:
            del sys.modules["facenet_pytorch"]


class MTCNNDetector(DownscalingDetector):
    """MTCNN boxes and landmarks (left eye, right eye, nose, mouth left, mouth right: ran_core's order).

    Args:
        device: torch device.
        max_side: longest side of the copy detection runs on.
        min_score: drop faces below this probability.
        min_face_size: smallest face side in pixels of the (downscaled) detection image.
        refine_below: see :class:`DownscalingDetector`.
        min_face: smallest face side worth finding, in pixels of the image given to :meth:`detect` (0: as small as
            ``min_face_size`` allows). MTCNN's first and costliest pyramid level is the image shrunk by
            ``12 / smallest face``: ``min_face=40`` (faces too small for the 48 px model) makes a 512 px photo about
            1.7x faster. Off by default: another pyramid moves boxes and landmarks by a few pixels, and photos
            keep the landmarks they had.
    """

    name = "mtcnn"

    def __init__(
        self,
        device: str = "cpu",
        max_side: int | None = DEFAULT_MAX_SIDE,
        min_score: float = 0.9,
        min_face_size: int = 20,
        refine_below: int = 96,
        min_face: int = 0,
    ) -> None:
        super().__init__(max_side, min_score, refine_below)
        try:
            MTCNN = _import_mtcnn()
        except ImportError as exc:
            raise DetectorUnavailable(f"mtcnn needs facenet-pytorch ({INSTALL_HINT}): {exc}") from None
        self.mtcnn = MTCNN(keep_all=True, device=torch.device(device), min_face_size=min_face_size)
        self.min_face_size = min_face_size
        self.min_face = min_face

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        return self._detect_at(rgb, 1.0)

    def _detect_at(self, rgb: np.ndarray, scale: float) -> list[Detection]:
        # MTCNN.detect reads this attribute on every call, so setting it here is how a per-image size is passed.
        self.mtcnn.min_face_size = max(self.min_face_size, round(self.min_face * scale))
        if min(rgb.shape[:2]) < self.mtcnn.min_face_size:
            # No face of the smallest searched size fits: MTCNN's image pyramid would be empty (and it would fail
            # inside torch.cat). Tiny and very thin images (18x30 px, 6000x80 shrunk to 1280x17) hold no face.
            return []
        with torch.inference_mode():
            boxes, probs, points = self.mtcnn.detect(rgb, landmarks=True)
        if boxes is None:
            return []
        return [Detection(b, p, lm) for b, p, lm in zip(boxes, probs, points)]


def build(device: str = "cpu", max_side: int | None = DEFAULT_MAX_SIDE, **kwargs) -> MTCNNDetector:
    return MTCNNDetector(device=device, max_side=max_side, **kwargs)
