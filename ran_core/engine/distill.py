"""Knowledge distillation: soft targets from trained models ("teachers") on the very faces the student trains on.

``ran-core train --teacher MODEL [MODEL ...] --teacher-weight W`` trains against ``(1 - W) * label + W * teacher``,
where ``teacher`` is the mean of the teachers' probabilities on the *same augmented faces* as the student's step —
consistent teaching (Beyer et al., "Knowledge distillation: A good teacher is patient and consistent", CVPR 2022):
each teacher cuts its own regions from the student's augmented faces and reads them with its saved test-time
augmentation, but without its logit adjustment (a calibrated shift towards rare classes is for decisions, not for
targets). Teachers are saved models only (safetensors + JSON): nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ran_core.data.pipeline import RegionBatcher
from ran_core.models.inference import infer
from ran_core.saved_model import ModelLoadError, load_model

logger = logging.getLogger(__name__)


def mix_targets(target: torch.Tensor, teacher_probs: torch.Tensor, weight: float) -> torch.Tensor:
    """``(1 - weight) * target + weight * teacher_probs``; hard class indices become one-hot rows first."""
    if not target.is_floating_point():
        target = F.one_hot(target, teacher_probs.shape[1]).to(teacher_probs.dtype)
    return (1.0 - weight) * target.to(teacher_probs.dtype) + weight * teacher_probs


def match_channels(faces: torch.Tensor, channels: int) -> torch.Tensor:
    """``(B, C, H, W)`` faces with ``channels`` channels: gray repeated into RGB, or RGB to luma (ITU-R BT.601)."""
    c = faces.shape[1]
    if c == channels:
        return faces
    if c == 1 and channels == 3:
        return faces.expand(-1, 3, -1, -1)
    if c == 3 and channels == 1:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=faces.dtype, device=faces.device)
        return (faces * w.view(1, 3, 1, 1)).sum(1, keepdim=True)
    raise ValueError(f"cannot turn {c}-channel faces into {channels}-channel ones")


class Teacher:
    """One or more saved models whose mean probabilities on the student's augmented faces are soft targets.

    Args:
        sources: saved model folders, training runs or bundled names.
        class_names: the student's classes; every teacher must predict exactly these, in this order.
        device: where the teachers run (the student's device).
        amp: the student's autocast dtype (``None``: float32).
        student_landmarks: whether the student's batches carry landmarks (a landmark-region student).

    Raises:
        ValueError: a teacher that cannot be loaded, predicts other classes, or needs landmarks the student's batches
            do not carry.
    """

    def __init__(
        self,
        sources: Sequence[str],
        class_names: Sequence[str],
        device: torch.device,
        amp: torch.dtype | None = None,
        student_landmarks: bool = False,
    ) -> None:
        if not sources:
            raise ValueError("--teacher needs at least one saved model")
        self.models: list[nn.Module] = []
        self.batchers: list[RegionBatcher] = []
        for src in sources:
            try:
                model = load_model(src, device)
            except ModelLoadError as exc:
                raise ValueError(f"--teacher {src}: {exc}") from None
            cfg = model.config
            if list(cfg.class_names) != list(class_names):
                raise ValueError(
                    f"--teacher {src} predicts {list(cfg.class_names)}, but the student learns {list(class_names)}: "
                    "a teacher must have the same classes in the same order"
                )
            if cfg.regions.scheme == "landmark" and not student_landmarks:
                raise ValueError(
                    f"--teacher {src} cuts landmark regions, which only a landmark-region student's batches carry "
                    "(--regions landmark)"
                )
            model.config = dataclasses.replace(cfg, logit_bias=None)  # probabilities as trained (see module doc)
            model.requires_grad_(False)
            self.models.append(model.eval())
            self.batchers.append(RegionBatcher(model.config))  # crops only: the faces come augmented
        self.sources = [str(s) for s in sources]
        self.device = device
        self.amp = amp

    def describe(self) -> str:
        parts = [
            f"{src} ({m.config.arch}, {m.config.regions.num_regions} region(s), {m.config.input_size} px, "
            f"tta {m.config.tta})"
            for src, m in zip(self.sources, self.models)
        ]
        return "; ".join(parts)

    @torch.no_grad()
    def __call__(self, faces: torch.Tensor, landmarks: torch.Tensor | None = None) -> torch.Tensor:
        """Mean probabilities ``(B, num_classes)`` (float32) of the teachers on augmented faces in 0-1."""
        total = None
        for model, batcher in zip(self.models, self.batchers):
            x = batcher.crop(match_channels(faces, model.config.in_chans), landmarks)
            with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
                probs = infer(model, x).logits.float().exp()
            total = probs if total is None else total + probs
        assert total is not None
        return total / len(self.models)
