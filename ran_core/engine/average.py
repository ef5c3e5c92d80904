"""Weight averaging of saved models (a "model soup"; timm's ``avg_checkpoints.py``).

Models fine-tuned from one parent stay in one basin of the loss, and the mean of their weights often predicts better
than any of them (Wortsman et al., "Model soups", ICML 2022) at the cost of one model. Models that did not start from
a common parent usually average into a poor one: evaluate the result before using it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from ran_core.saved_model import load_model

logger = logging.getLogger(__name__)

# Inference settings that leave the meaning of the weights alone; every other config field must match.
_FREE_FIELDS = ("provenance", "tta", "logit_bias", "drop_rate", "attention_dropout")


def average_models(sources: Sequence[str | Path], weights: Sequence[float] | None = None) -> nn.Module:
    """The weighted mean of the weights of ``sources`` (saved models, run directories or bundled names).

    Floating-point tensors (weights and batch-norm statistics) are averaged; integer buffers are taken from the
    first model. The result keeps the first model's test-time augmentation and drops any logit adjustment, which
    was fitted to one model's probabilities (fit a new one with ``ran-core calibrate``).

    Raises:
        ValueError: fewer than two models, weights that do not fit, or models of different architectures.
        ModelLoadError: a source is not a saved model.
    """
    if len(sources) < 2:
        raise ValueError("averaging needs at least two models")
    if weights is None:
        weights = [1.0] * len(sources)
    if len(weights) != len(sources) or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"give one non-negative weight per model ({len(sources)}), not all zero; got {list(weights)}")
    total = float(sum(weights))
    share = [float(w) / total for w in weights]
    models = [load_model(s) for s in sources]
    ref = _architecture(models[0])
    for src, model in zip(sources[1:], models[1:]):
        other = _architecture(model)
        differ = sorted(k for k in ref.keys() | other.keys() if ref.get(k) != other.get(k))
        if differ:
            raise ValueError(f"{src} cannot be averaged with {sources[0]}: their {', '.join(differ)} differ")
    states = [m.state_dict() for m in models]
    averaged = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            mean = sum(w * s[key].double() for w, s in zip(share, states))
            averaged[key] = mean.to(first.dtype)
        else:
            averaged[key] = first
    out = models[0]
    out.load_state_dict(averaged)
    if out.config.logit_bias is not None:
        logger.info("the logit adjustment of %s is dropped: fit one for the mean with ran-core calibrate", sources[0])
    out.config.logit_bias = None
    out.config.provenance = {
        "averaged_from": [
            {"model": str(src), "weight": w, "provenance": m.config.provenance}
            for src, w, m in zip(sources, share, models)
        ]
    }
    return out


def _architecture(model: nn.Module) -> dict:
    d = model.config.to_dict()
    for k in _FREE_FIELDS:
        d.pop(k, None)
    d["tensors"] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return d


__all__ = ["average_models"]
