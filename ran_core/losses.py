"""Losses: the region-biased loss of RAN and the total training criterion."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ran_core.structures import ModelOutput


def region_biased_loss(alpha: torch.Tensor, margin: float = 0.02) -> torch.Tensor:
    """RB-loss: at least one crop must out-weigh the whole face by ``margin``.

    ``L = mean_b max(0, margin - (max_{i>=1} alpha_i - alpha_0))``.

    Args:
        alpha: ``(B, K)`` self-attention weights, region 0 the whole face.
        margin: delta; the authors' README uses 0.02 (their FERPlus script used 0.1).
    """
    if alpha.ndim != 2 or alpha.shape[1] < 2:
        raise ValueError(f"the region-biased loss needs (B, K>=2) attention weights, got {tuple(alpha.shape)}")
    gap = alpha[:, 1:].max(dim=1).values - alpha[:, 0]
    return F.relu(margin - gap).mean()


def max_rb_gap(num_regions: int, attention_norm: str = "softmax") -> float:
    """The largest ``max_{i>=1} alpha_i - alpha_0`` the attention can reach: an RB-loss margin must be below it.

    With the official softmax over K sigmoid scores s_i in (0, 1), the gap is largest when one crop scores 1 and all
    other regions 0: ``(e - 1) / (e + K - 1)``, about 0.22 for K = 6 (and never reached: sigmoids stay inside (0, 1)).
    Without normalisation, alpha_i are sigmoids and the gap stays below 1.
    """
    if num_regions < 2:
        raise ValueError("the region-biased loss needs at least 2 regions")
    if attention_norm == "softmax":
        return (math.e - 1) / (math.e + num_regions - 1)
    return 1.0


class RANCriterion(nn.Module):
    """Cross-entropy (hard or soft targets) + ``lambda_rb`` * region-biased loss.

    Args:
        lambda_rb: weight of the RB-loss (1 in the paper). Ignored for models without attention (the baseline).
        margin: the RB-loss margin delta.
        label_smoothing: passed to cross-entropy for hard targets.
    """

    def __init__(self, lambda_rb: float = 1.0, margin: float = 0.02, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.lambda_rb = lambda_rb
        self.margin = margin
        self.label_smoothing = label_smoothing

    def forward(self, output: ModelOutput, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Returns the total loss and its parts (``ce``, ``rb``), detached, for logging."""
        logits = output.logits.float()
        if target.is_floating_point():  # soft targets (FERPlus probability mode)
            ce = torch.sum(-target * F.log_softmax(logits, dim=1), dim=1).mean()
        else:
            ce = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        parts = {"ce": ce.detach()}
        loss = ce
        if output.alpha is not None and output.alpha.shape[1] > 1 and self.lambda_rb > 0:
            rb = region_biased_loss(output.alpha.float(), self.margin)
            loss = loss + self.lambda_rb * rb
            parts["rb"] = rb.detach()
        return loss, parts
