"""Inference as a saved model asks for it: test-time augmentation and logit adjustment from its config.

Every inference path (``eval``, ``predict``, the :class:`~ran_core.predictor.Predictor`, the camera path and the
viewer) calls :func:`infer` instead of ``model(x)``, so a model saved with ``tta="flip"`` or a ``logit_bias`` gives
the same answers everywhere. Training calls the model directly.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ran_core.structures import ModelOutput


def infer(model: nn.Module, x: torch.Tensor, tta: str | None = None) -> ModelOutput:
    """Run ``model`` on ``(B, K, C, H, W)`` normalised crops the way its config says.

    Args:
        model: a ran_core model.
        x: region crops (region 0 the whole face).
        tta: override the config's test-time augmentation (``none`` or ``flip``).

    Returns:
        the model's output with ``logits`` replaced by log-probabilities: with ``flip``, the log of the mean of the
        softmax of the crops and of their mirror images; plus the config's ``logit_bias``. The argmax and softmax of
        these logits are the prediction and the probabilities. The attention weights are those of the unmirrored
        crops (the boxes drawn on the image).

    Mirroring every crop equals cutting the regions from the mirrored face and permuting them (top_left <-> top_right),
    and RAN's aggregation does not depend on region order, so ``flip`` needs no knowledge of the region scheme.
    """
    config = model.config
    mode = tta or config.tta
    out = model(x)
    logp = torch.log_softmax(out.logits.float(), dim=1)
    if mode == "flip":
        mirrored = model(x.flip(-1))
        both = torch.stack([logp, torch.log_softmax(mirrored.logits.float(), dim=1)])
        logp = torch.logsumexp(both, 0) - math.log(2)
    elif mode != "none":
        raise ValueError(f"unknown test-time augmentation {mode!r}; choose none or flip")
    if config.logit_bias is not None:
        logp = logp + torch.tensor(config.logit_bias, dtype=logp.dtype, device=logp.device)
    out.logits = logp
    return out
