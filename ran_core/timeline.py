"""Expression over time: smoothing of per-frame class probabilities, face by face (tracked ids).

Per-frame readings of a live face flicker; an exponential moving average over a chosen time window steadies them
without the lag of a long box filter. The window is in seconds, not frames, so the result does not depend on the
frame rate or on ``--every``: a reading ``dt`` seconds after the previous one moves the average by
``1 - exp(-dt / window)`` of the way.
"""

from __future__ import annotations

import math

import numpy as np

# One fixed colour per FERPlus class, so timelines and charts agree (tab10 order): the `predict --plot` figure and
# the viewer's live timeline draw the same class in the same colour.
CLASS_COLORS: tuple[str, ...] = ("#7f7f7f", "#2ca02c", "#ff7f0e", "#1f77b4", "#d62728", "#8c564b", "#9467bd", "#e377c2")


def class_color(i: int) -> str:
    """The colour of class ``i`` (colours repeat after 8 classes)."""
    return CLASS_COLORS[i % len(CLASS_COLORS)]


class ExpressionSmoother:
    """Time-based exponential moving average of probability vectors, one per track id.

    Args:
        window_s: the time constant in seconds (0: no smoothing).
    """

    def __init__(self, window_s: float) -> None:
        if window_s < 0 or not math.isfinite(window_s):
            raise ValueError(f"the smoothing window must be >= 0 seconds, got {window_s}")
        self.window_s = float(window_s)
        self._state: dict[int, tuple[float, np.ndarray]] = {}

    def reset(self) -> None:
        self._state.clear()

    def update(self, track: int, time_s: float, values: np.ndarray) -> np.ndarray:
        """The smoothed values of ``track`` after a reading at ``time_s``."""
        v = np.asarray(values, dtype=np.float64)
        prev = self._state.get(track)
        if prev is None or self.window_s == 0 or time_s < prev[0]:
            out = v.copy()
        else:
            a = 1.0 - math.exp(-(time_s - prev[0]) / self.window_s)
            out = prev[1] + a * (v - prev[1])
        self._state[track] = (time_s, out)
        return out


def smooth_series(times: np.ndarray, values: np.ndarray, window_s: float) -> np.ndarray:
    """``(T, C)`` values of one track at ``(T,)`` times -> smoothed, as :class:`ExpressionSmoother` would."""
    s = ExpressionSmoother(window_s)
    return np.stack([s.update(0, float(t), v) for t, v in zip(times, values)]) if len(times) else np.zeros((0,))
