"""face-alignment (Bulat & Tzimiropoulos): S3FD face boxes + FAN 68-point landmarks.

Its weights (about 190 MB) are downloaded into torch's hub cache (``$TORCH_HOME/hub/checkpoints``) the first time it is
used with a network. Offline, :func:`check` finds them missing up front, so ``auto`` skips this backend and an explicit
``--detector fan`` fails at once with a clear message instead of hanging on a download.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from ran_core.faces.detectors import DEFAULT_MAX_SIDE, Detection, DetectorUnavailable, DownscalingDetector


def weights_dir() -> Path:
    """Where face-alignment looks for (and downloads) its weights."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def weight_files() -> list[Path]:
    """The files the 2D FAN and the S3FD detector load, named as face-alignment names them."""
    from face_alignment.api import models_urls as fan_urls
    from face_alignment.detection.sfd.sfd_detector import models_urls as sfd_urls

    urls = [fan_urls["2DFAN-4"], sfd_urls["s3fd"]]
    return [weights_dir() / os.path.basename(urlparse(u).path) for u in urls]


def check() -> str | None:
    try:
        files = weight_files()
    except ImportError as exc:
        return f"face-alignment is not installed ({exc}); pip install face-alignment"
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        return (
            f"face-alignment weights not found in {weights_dir()} (missing {', '.join(missing)}); "
            "run once with network or pick --detector mtcnn/haar"
        )
    return None


class FANDetector(DownscalingDetector):
    """S3FD boxes and FAN 68-point landmarks (``Detection.five_points`` gives ran_core's 5 points).

    Args:
        device: torch device.
        max_side: longest side of the copy detection runs on.
        min_score: S3FD's own threshold (it drops boxes below it before landmarking).
        refine_below: see :class:`DownscalingDetector`.
    """

    name = "fan"

    def __init__(
        self,
        device: str = "cpu",
        max_side: int | None = DEFAULT_MAX_SIDE,
        min_score: float = 0.5,
        refine_below: int = 96,
    ) -> None:
        super().__init__(max_side, min_score, refine_below)
        reason = check()
        if reason is not None:
            raise DetectorUnavailable(reason)
        import face_alignment

        # compile=False: face-alignment would otherwise torch.compile FAN on first use (minutes on a CPU, a compiler
        # toolchain required) for a network that is not the bottleneck next to S3FD.
        self.fa = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D,
            device=str(device),
            face_detector="sfd",
            face_detector_kwargs={"filter_threshold": min_score},
            compile=False,
        )

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="No faces were detected")
            landmarks, _, boxes = self.fa.get_landmarks_from_image(rgb, return_bboxes=True)
        if landmarks is None:
            return []
        return [Detection(b[:4], b[4], np.asarray(lm)[:, :2]) for lm, b in zip(landmarks, boxes)]


def build(device: str = "cpu", max_side: int | None = DEFAULT_MAX_SIDE, **kwargs) -> FANDetector:
    return FANDetector(device=device, max_side=max_side, **kwargs)
