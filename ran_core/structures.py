"""Typed results shared by the model, the predictor, the CLI and the viewer.

Everything here is plain data (dataclasses, numpy, torch tensors) with no Qt, so the viewer's state and the tests can
use it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

# The 8 FERPlus classes in label.csv column order (unknown and NF are not classes).
FERPLUS_CLASSES: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)


@dataclass
class ModelOutput:
    """What every model returns from ``forward``.

    Attributes:
        logits: ``(B, num_classes)`` class scores.
        alpha: ``(B, K)`` self-attention weights used for aggregation (``None`` for the baseline).
        beta: ``(B, K)`` relation-attention weights used for aggregation (``None`` for the baseline).
        alpha_raw: ``(B, K)`` sigmoid outputs before any cross-region normalisation.
        beta_raw: ``(B, K)`` sigmoid outputs before any cross-region normalisation.
        features: ``(B, D)`` the aggregated representation fed to the classifier.
    """

    logits: torch.Tensor
    alpha: torch.Tensor | None = None
    beta: torch.Tensor | None = None
    alpha_raw: torch.Tensor | None = None
    beta_raw: torch.Tensor | None = None
    features: torch.Tensor | None = None

    @property
    def weights(self) -> torch.Tensor | None:
        """``(B, K)`` the product α·β, normalised across regions: each region's share of the final representation."""
        if self.alpha is None or self.beta is None:
            return None
        w = self.alpha * self.beta
        return w / w.sum(dim=1, keepdim=True)


@dataclass
class RegionResult:
    """One region of one face, as the viewer draws it.

    Attributes:
        name: region name (``face``, ``top_left``, ``left_eye`` ...).
        box: ``(x1, y1, x2, y2)`` in the ORIGINAL image's pixel coordinates.
        alpha: self-attention weight (``nan`` for the baseline).
        beta: relation-attention weight (``nan`` for the baseline).
    """

    name: str
    box: tuple[float, float, float, float]
    alpha: float = float("nan")
    beta: float = float("nan")

    @property
    def weight(self) -> float:
        """α·β, the unnormalised share of this region in the aggregated feature."""
        return self.alpha * self.beta

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "box": [float(v) for v in self.box], "alpha": _f(self.alpha), "beta": _f(self.beta)}


@dataclass
class FaceResult:
    """A detected face and the model's reading of it.

    Attributes:
        box: ``(x1, y1, x2, y2)`` face box in original image coordinates.
        score: detector confidence in [0, 1].
        landmarks: ``(N, 2)`` points in original image coordinates (N = 5 or 68), or ``None``.
        probabilities: ``(num_classes,)`` softmax probabilities.
        class_names: names for ``probabilities``.
        regions: the regions the model looked at, region 0 being the whole face.
        region_scheme: which scheme produced the regions (``fixed``, ``landmark`` or ``random``).
        crop: the aligned face crop as the model's preprocessing saw it (H, W, C uint8), or ``None``.
        region_crops: ``(K, H, W, C)`` uint8 crops as the backbone saw them, or ``None``.
        track_id: stable index of this face across video frames (``None`` for still images).
        pose: head pose (:class:`ran_core.faces.pose.HeadPose`, yaw / pitch / roll in degrees) from the landmarks,
            or ``None`` without landmarks.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray | None
    probabilities: np.ndarray
    class_names: list[str]
    regions: list[RegionResult] = field(default_factory=list)
    region_scheme: str = "fixed"
    crop: np.ndarray | None = None
    region_crops: np.ndarray | None = None
    track_id: int | None = None
    pose: Any = None

    @property
    def label(self) -> str:
        return self.class_names[int(np.argmax(self.probabilities))]

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (crops are left out)."""
        d: dict[str, Any] = {
            "box": [float(v) for v in self.box],
            "score": float(self.score),
            "landmarks": None if self.landmarks is None else np.asarray(self.landmarks, dtype=float).tolist(),
            "label": self.label,
            "probabilities": {n: float(p) for n, p in zip(self.class_names, self.probabilities)},
            "region_scheme": self.region_scheme,
            "regions": [r.to_dict() for r in self.regions],
            "pose": None if self.pose is None else self.pose.to_dict(),
        }
        if self.track_id is not None:
            d["track_id"] = self.track_id
        return d


def _f(v: float) -> float | None:
    return None if v != v else float(v)  # NaN is not valid JSON
