"""Logit adjustment: trade a little overall accuracy for accuracy on the rare classes, after training.

FERPlus is very unbalanced (happiness and neutral are ~60 % of the faces, contempt and disgust under 1 % each), so a
model trained on it rarely predicts the rare classes even when they are likely. Adding ``-tau * log(prior)`` to the
log-probabilities (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021) moves the decision towards
them: ``tau = 0`` is the trained model, ``tau = 1`` the Bayes-optimal choice for balanced classes. :func:`fit_tau`
picks the ``tau`` with the best mean-class accuracy whose overall accuracy stays within ``max_drop`` points of the
unadjusted model, on a validation split, or, given a floor ``min_mean_class``, the most accurate ``tau`` that reaches
it; the chosen bias is stored in the saved model's ``logit_bias``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ran_core.engine.metrics import SetMetrics, confusion_matrix


@dataclass
class Calibration:
    """The chosen adjustment and the whole trade-off curve it was chosen from.

    Attributes:
        tau: the chosen strength.
        bias: ``(C,)`` per-class values added to the log-probabilities, ``-tau * log(prior)`` (centred).
        prior: the class prior used (training-split frequencies).
        base: accuracy and mean-class accuracy without adjustment.
        chosen: accuracy and mean-class accuracy with the chosen bias.
        curve: ``[{"tau", "accuracy", "mean_class_accuracy"}]`` for every tau tried.
    """

    tau: float
    bias: list[float]
    prior: list[float]
    base: dict[str, float]
    chosen: dict[str, float]
    curve: list[dict[str, float]] = field(default_factory=list)
    max_drop: float = 0.5
    min_mean_class: float | None = None

    def to_json(self) -> dict:
        return {
            "tau": self.tau,
            "bias": self.bias,
            "prior": self.prior,
            "max_drop": self.max_drop,
            "min_mean_class": self.min_mean_class,
            "base": self.base,
            "chosen": self.chosen,
            "curve": self.curve,
        }


def _metrics(targets: np.ndarray, logp: np.ndarray, c: int) -> SetMetrics:
    return SetMetrics.from_confusion(confusion_matrix(targets, logp.argmax(1), c))


def fit_tau(
    probs: np.ndarray,
    targets: np.ndarray,
    prior: np.ndarray,
    max_drop: float = 0.5,
    taus: np.ndarray | None = None,
    min_mean_class: float | None = None,
) -> Calibration:
    """Choose the logit-adjustment strength on held-out predictions.

    Args:
        probs: ``(N, C)`` class probabilities of the unadjusted model.
        targets: ``(N,)`` true classes.
        prior: ``(C,)`` class frequencies of the training data (any positive scale).
        max_drop: largest loss of overall accuracy, in points, accepted for a better mean-class accuracy.
        taus: the strengths to try (default 0 to 2 in steps of 0.05).
        min_mean_class: a floor for mean-class accuracy, in %: the most accurate strength (within ``max_drop``)
            that reaches it is chosen; when none does, the best mean-class accuracy within ``max_drop`` as without it.

    Raises:
        ValueError: shapes disagree, a prior is not positive, or there are no predictions.
    """
    probs = np.asarray(probs, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    prior = np.asarray(prior, dtype=np.float64)
    if probs.ndim != 2 or len(probs) == 0 or len(probs) != len(targets):
        raise ValueError(f"need (N, C) probabilities and N targets, got {probs.shape} and {targets.shape}")
    c = probs.shape[1]
    if prior.shape != (c,) or (prior <= 0).any():
        raise ValueError(f"the prior needs {c} positive values (a class with no training image cannot be adjusted)")
    if max_drop < 0:
        raise ValueError("max_drop must be >= 0")
    prior = prior / prior.sum()
    taus = np.round(np.arange(0.0, 2.0001, 0.05), 4) if taus is None else np.asarray(taus, dtype=np.float64)
    logp = np.log(np.clip(probs, 1e-12, None))
    log_prior = np.log(prior) - np.log(prior).mean()  # centred: the bias moves classes against each other only
    base = _metrics(targets, logp, c)
    curve, best, floor_met = [], (0.0, base), None
    for tau in taus:
        m = _metrics(targets, logp - tau * log_prior, c)
        curve.append({"tau": float(tau), "accuracy": m.accuracy, "mean_class_accuracy": m.mean_class_accuracy})
        if m.accuracy < base.accuracy - max_drop:
            continue
        if m.mean_class_accuracy > best[1].mean_class_accuracy:
            best = (float(tau), m)
        if min_mean_class is not None and m.mean_class_accuracy >= min_mean_class:
            if floor_met is None or m.accuracy > floor_met[1].accuracy:
                floor_met = (float(tau), m)
    tau, chosen = floor_met or best
    return Calibration(
        tau=tau,
        bias=[float(v) for v in -tau * log_prior],
        prior=[float(v) for v in prior],
        base={"accuracy": base.accuracy, "mean_class_accuracy": base.mean_class_accuracy},
        chosen={"accuracy": chosen.accuracy, "mean_class_accuracy": chosen.mean_class_accuracy},
        curve=curve,
        max_drop=max_drop,
        min_mean_class=min_mean_class,
    )
