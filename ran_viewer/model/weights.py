"""Region-weight maths shared by the views and panels: the weight modes (α, β, α·β share), a face's weights in a mode,
and the colour-scale range. No Qt here."""

from __future__ import annotations

import numpy as np

from ran_core.structures import FaceResult

WEIGHT_MODES: tuple[str, ...] = ("alpha", "beta", "alpha*beta")


WEIGHT_LABELS: dict[str, str] = {
    "alpha": "α (self-attention)",
    "beta": "β (relation-attention)",
    "alpha*beta": "α·β share",
}


def region_values(face: FaceResult, mode: str) -> np.ndarray:
    """``(K,)`` weights of ``face``'s regions in ``mode``; ``alpha*beta`` is normalised to sum to 1 (each share)."""
    alpha = np.array([r.alpha for r in face.regions], dtype=float)
    beta = np.array([r.beta for r in face.regions], dtype=float)
    return mode_values(alpha, beta, mode)


def mode_values(alpha: np.ndarray, beta: np.ndarray, mode: str) -> np.ndarray:
    """Region weights in ``mode`` from α and β of shape ``(..., K)`` (one face, or one row per frame of a face): the
    ``alpha*beta`` share is normalised over the last axis (see :func:`region_values`)."""
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    if mode == "alpha":
        return alpha
    if mode == "beta":
        return beta
    if mode == "alpha*beta":
        w = alpha * beta
        total = np.nansum(w, axis=-1, keepdims=True)
        return np.divide(w, total, out=w.copy(), where=total > 0)
    raise ValueError(f"unknown weight mode {mode!r}")


def weight_levels(values: np.ndarray, min_span: float = 0.25) -> tuple[float, float]:
    """Colour-scale range of ``values`` (NaN ignored): their min..max, widened around its middle to at least
    ``min_span`` × their mean, so that nearly equal weights (an untrained model, a uniform face) get nearly equal
    colours instead of being stretched over the whole colour map."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = float(values.min()), float(values.max())
    need = max(min_span * float(np.abs(values).mean()), 1e-3)
    if hi - lo < need:
        mid = (lo + hi) / 2
        lo, hi = mid - need / 2, mid + need / 2
    return (lo, hi)


def normalized(value: float, levels: tuple[float, float]) -> float:
    """``value`` mapped into [0, 1] on the colour scale ``levels``."""
    lo, hi = levels
    if not np.isfinite(value):
        return 0.0
    return float(min(1.0, max(0.0, (value - lo) / (hi - lo))))
