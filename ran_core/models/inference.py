"""Inference as a saved model asks for it: test-time augmentation and logit adjustment from its config.

Every inference path (``eval``, ``predict``, the :class:`~ran_core.predictor.Predictor`, the camera path and the
viewer) calls :func:`infer` instead of ``model(x)``, so a model saved with ``tta="flip"`` (or ``shift``,
``flip_shift``) or a ``logit_bias`` gives the same answers everywhere. Training calls the model directly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ran_core.config import TTA_MODES
from ran_core.structures import ModelOutput


def shift_pixels(size: int) -> int:
    """The ``shift`` TTA's step for crops of ``size`` px: 1 px at 48 px, about 2 % of the side at any size."""
    return max(1, round(size / 48))


def shift_crops(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``(..., C, H, W)`` crops moved ``dx`` px right and ``dy`` px down, the uncovered edge replicated."""
    if not dx and not dy:
        return x
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    p = max(abs(dx), abs(dy))
    y = F.pad(x.reshape(-1, c, h, w), (p, p, p, p), mode="replicate")
    y = y[:, :, p - dy : p - dy + h, p - dx : p - dx + w]
    return y.reshape(*lead, c, h, w)


def tta_views(x: torch.Tensor, mode: str) -> list[torch.Tensor]:
    """The crops each test-time augmentation averages over, the unchanged crops first.

    ``none``: the crops. ``flip``: + their mirror images. ``shift``: + the crops moved by :func:`shift_pixels`
    left, right, up and down (5 views). ``flip_shift``: the 5 shift views and their mirror images (10 views).
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {mode!r}; choose one of {', '.join(TTA_MODES)}")
    views = [x]
    if "shift" in mode:
        s = shift_pixels(x.shape[-1])
        views += [shift_crops(x, dx, dy) for dx, dy in ((s, 0), (-s, 0), (0, s), (0, -s))]
    if "flip" in mode:
        views += [v.flip(-1) for v in views]
    return views


def infer(model: nn.Module, x: torch.Tensor, tta: str | None = None) -> ModelOutput:
    """Run ``model`` on ``(B, K, C, H, W)`` normalised crops the way its config says.

    Args:
        model: a ran_core model.
        x: region crops (region 0 the whole face).
        tta: override the config's test-time augmentation (one of :data:`ran_core.config.TTA_MODES`).

    Returns:
        the model's output with ``logits`` replaced by log-probabilities: the log of the mean of the softmax over the
        views of :func:`tta_views` (just the crops for ``none``); plus the config's ``logit_bias``. The argmax and
        softmax of these logits are the prediction and the probabilities. The attention weights are those of the
        unchanged crops (the boxes drawn on the image).

    Mirroring every crop equals cutting the regions from the mirrored face and permuting them (top_left <-> top_right),
    and RAN's aggregation does not depend on region order, so ``flip`` needs no knowledge of the region scheme. The
    shifted views move every crop by the same few pixels (edges replicated), about what a detector's jitter does.
    """
    config = model.config
    views = tta_views(x, tta or config.tta)
    out = model(x)
    logp = torch.log_softmax(out.logits.float(), dim=1)
    if len(views) > 1:
        b = x.shape[0]
        rest = model(torch.cat(views[1:])).logits.float()  # one call for the other views
        all_logp = torch.cat([logp[None], torch.log_softmax(rest, dim=1).view(len(views) - 1, b, -1)])
        logp = torch.logsumexp(all_logp, 0) - math.log(len(views))
    if config.logit_bias is not None:
        logp = logp + torch.tensor(config.logit_bias, dtype=logp.dtype, device=logp.device)
    out.logits = logp
    return out
