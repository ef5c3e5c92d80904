"""OpenCV Haar-cascade face detector: always available, no landmarks (faces get the fixed region crops).

The eye cascade is not used for landmarks: it fires on eyebrows, nostrils and glasses frames often enough that a
similarity transform fitted to it would do more harm than the plain box crop.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ran_core.faces.detectors import DEFAULT_MAX_SIDE, Detection, DownscalingDetector

CASCADE = "haarcascade_frontalface_default.xml"


def cascade_path() -> Path:
    return Path(cv2.data.haarcascades) / CASCADE


def check() -> str | None:
    path = cascade_path()
    return None if path.is_file() else f"OpenCV's cascade file {path} is missing (opencv-python 5 no longer ships it)"


class HaarDetector(DownscalingDetector):
    """Frontal-face Haar cascade.

    The cascade gives no probability; ``score`` is ``n / (n + min_neighbors)`` where ``n`` is the number of
    overlapping raw detections merged into the box, a rough confidence that is at least 0.5 for every kept face.

    Args:
        max_side: longest side of the copy detection runs on.
        min_score: drop faces below this score.
        scale_factor: step between cascade scales.
        min_neighbors: raw detections needed to keep a face (higher: fewer false positives).
        min_size: smallest face side in pixels of the (downscaled) detection image: the cascade's window is 24.
        refine_below: see :class:`DownscalingDetector`.
        min_face: smallest face side worth finding, in pixels of the image given to :meth:`detect`. The cascade's
            cost grows with the square of the image-to-window ratio, so not scanning windows of faces too small to
            classify (the model's input is 48 px) makes a 512 px photo about twice as fast, with the same boxes.
    """

    name = "haar"

    def __init__(
        self,
        max_side: int | None = DEFAULT_MAX_SIDE,
        min_score: float = 0.0,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
        refine_below: int = 96,
        min_face: int = 40,
    ) -> None:
        super().__init__(max_side, min_score, refine_below)
        self.cascade = cv2.CascadeClassifier(str(cascade_path()))
        if self.cascade.empty():
            raise RuntimeError(f"could not load {cascade_path()}")
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.min_face = min_face

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        return self._detect_at(rgb, 1.0)

    def _detect_at(self, rgb: np.ndarray, scale: float) -> list[Detection]:
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        side = max(self.min_size, round(self.min_face * scale))
        boxes, counts = self.cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(side, side)
        )
        return [
            Detection((x, y, x + w, y + h), n / (n + self.min_neighbors))
            for (x, y, w, h), n in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(counts).reshape(-1))
        ]


def build(device: str = "cpu", max_side: int | None = DEFAULT_MAX_SIDE, **kwargs) -> HaarDetector:
    return HaarDetector(max_side=max_side, **kwargs)
