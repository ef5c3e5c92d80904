"""What one analysis request returns (:class:`Analysis`) and which models loaded (:class:`ModelsInfo`): the data the
services produce, the workers carry and the controller applies. No Qt, no model code here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ran_core.structures import FaceResult


class PredictorLike(Protocol):
    """What the viewer needs from :class:`ran_core.predictor.Predictor` (duck-typed so tests can pass fakes)."""

    def __call__(self, image: np.ndarray) -> list[FaceResult]: ...

    def predict_faces(self, rgb: np.ndarray, detections: list[Any]) -> list[FaceResult]: ...


@dataclass
class Analysis:
    """The result of one request.

    Attributes:
        kind: ``image`` (a new still image), ``occlusion`` (the current image with occluders) or ``frame``.
        seq: the request number (increasing); ``image_seq`` the number of the image request it belongs to.
        image: the pixels the models read (with occluders for ``occlusion`` and ``frame``).
        clean_image: for ``frame``, the camera frame without occluders (what ``ViewerState.image`` holds).
        occluded: occluders were burned into ``image``.
        ran_faces, baseline_faces: each model's faces; empty when that model is not loaded.
        seconds: wall time of the analysis.
        frame_index: the camera frame number (``frame`` only).
        frame_time: when the frame was taken, in seconds: its time in a video file, or since a live camera opened
            (``frame`` only; ``None`` when unknown).
        dropped: camera frames dropped so far because newer ones replaced them before analysis.
    """

    kind: str
    seq: int
    image_seq: int
    image: np.ndarray
    clean_image: np.ndarray | None = None
    occluded: bool = False
    name: str = ""
    path: str | None = None
    ran_faces: list[FaceResult] = field(default_factory=list)
    baseline_faces: list[FaceResult] = field(default_factory=list)
    seconds: float = 0.0
    frame_index: int = -1
    frame_time: float | None = None
    dropped: int = 0
    models_loaded: bool = True


@dataclass
class ModelsInfo:
    """Which models loaded, and why the others did not (one user-facing line each)."""

    ran_name: str = ""
    baseline_name: str = ""
    errors: list[str] = field(default_factory=list)
    detector: str = ""
    ran_mean: tuple[float, ...] = ()  # RAN's normalisation mean (0-1), what covered regions are filled with


def model_display_name(spec: Any) -> str:
    """A short name for a model given as a bundled name, a path or a module."""
    if isinstance(spec, (str, Path)):
        p = Path(spec)
        if p.name in ("model.safetensors", "config.json"):
            p = p.parent
        return p.name or str(spec)
    src = getattr(spec, "source_path", None)
    if src is not None:
        return Path(src).name
    config = getattr(spec, "config", None)
    return getattr(config, "name", type(spec).__name__)
