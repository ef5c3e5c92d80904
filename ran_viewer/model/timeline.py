"""Expression over time: what the timeline dock plots, without Qt.

While the camera (or a video played as the camera) runs, every analysed frame's faces land in a ring buffer per
tracked face (``FaceResult.track_id``): the frame's time, the class probabilities and the region weights (α and β).
The timeline follows the selected face and starts over when another face is selected or the camera starts again.
Frame times come from the camera thread: a video file's own clock (frame index / the file's fps), or a monotonic
clock for a live camera. When a video jumps back (a seek, or a looping video starting again) the samples after the
new time are dropped, so the buffer always reads forward in time.

Smoothing (off by default) is the EMA of ``ran-core predict VIDEO --smooth``: :class:`ran_core.timeline.
ExpressionSmoother`, over a window in seconds, so it does not depend on the frame rate.
"""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from ran_core.structures import FaceResult
from ran_core.timeline import ExpressionSmoother
from ran_viewer.model.events import Event
from ran_viewer.model.viewer_state import ViewerState
from ran_viewer.model.weights import mode_values


class TimelineEvents:
    """Events of :class:`ExpressionTimeline`."""

    def __init__(self) -> None:
        self.changed = Event("changed")  # () new samples of the followed face, a reset, another face, smoothing


@dataclass
class _Track:
    """One face's samples, oldest first; ``smoothed`` is aligned with ``samples`` when smoothing is on."""

    samples: collections.deque = field(default_factory=collections.deque)
    smoothed: collections.deque = field(default_factory=collections.deque)
    class_names: list[str] = field(default_factory=list)
    region_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TimelineSample:
    """One analysed frame of one face."""

    time: float
    probabilities: np.ndarray  # (C,)
    alpha: np.ndarray  # (K,), NaN for a model without regions
    beta: np.ndarray  # (K,)


@dataclass(frozen=True)
class TimelineSeries:
    """A face's samples as arrays, for plotting.

    Attributes:
        track: the face's track id.
        times: ``(T,)`` seconds.
        probabilities: ``(T, C)``, smoothed when smoothing is on; ``raw_probabilities`` as the models read them.
        weights: ``(T, K)`` region weights in the asked mode (α, β or the α·β share); empty ``(T, 0)`` without regions.
        class_names, region_names: the names of the columns.
    """

    track: int | None
    times: np.ndarray
    probabilities: np.ndarray
    raw_probabilities: np.ndarray
    weights: np.ndarray
    class_names: list[str]
    region_names: list[str]

    def __len__(self) -> int:
        return len(self.times)


class ExpressionTimeline:
    """Ring buffers of ``(time, probabilities, weights)`` per tracked face, fed from a :class:`ViewerState`'s
    prediction events while its camera runs.

    Args:
        state: the viewer state to follow (``None``: feed it with :meth:`push` yourself, as tests do).
        capacity: samples kept per face at most (the oldest go first).
        history_s: seconds kept per face (older samples go).
    """

    def __init__(self, state: ViewerState | None = None, capacity: int = 4096, history_s: float = 120.0) -> None:
        if capacity < 2 or not history_s > 0:
            raise ValueError(f"need capacity >= 2 and history_s > 0, got {capacity} and {history_s}")
        self.events = TimelineEvents()
        self.capacity = int(capacity)
        self.history_s = float(history_s)
        self._tracks: dict[int, _Track] = {}
        self._followed: int | None = None
        self._smooth = False
        self._smooth_s = 1.0
        self._smoothers: dict[int, ExpressionSmoother] = {}
        self.state = state
        self._camera_running = False
        if state is not None:
            self._camera_running = state.camera.running
            state.events.predictions.connect(self._on_predictions)
            state.events.selection.connect(self._on_selection)
            state.events.camera.connect(self._on_camera)

    # --- the buffers -----------------------------------------------------------------------------------------------

    @property
    def tracks(self) -> list[int]:
        """Track ids with samples."""
        return [t for t, tr in self._tracks.items() if tr.samples]

    def samples(self, track: int) -> list[TimelineSample]:
        """The samples of ``track``, oldest first."""
        tr = self._tracks.get(track)
        return list(tr.samples) if tr else []

    def push(
        self,
        track: int,
        time_s: float,
        probabilities: np.ndarray,
        alpha: np.ndarray | None = None,
        beta: np.ndarray | None = None,
        class_names: list[str] | None = None,
        region_names: list[str] | None = None,
    ) -> None:
        """Add one reading of face ``track`` at ``time_s`` seconds.

        A time not after the track's last one rewinds it: the samples from ``time_s`` on are dropped first (a video
        sought back, or looping). Samples older than :attr:`history_s` before the newest go.
        """
        if not math.isfinite(time_s):
            raise ValueError(f"time must be finite, got {time_s}")
        probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        alpha = np.full(0, np.nan) if alpha is None else np.asarray(alpha, dtype=np.float64).reshape(-1)
        beta = np.full(len(alpha), np.nan) if beta is None else np.asarray(beta, dtype=np.float64).reshape(-1)
        tr = self._tracks.get(track)
        names = list(class_names) if class_names is not None else [str(i) for i in range(len(probs))]
        regions = list(region_names) if region_names is not None else [str(i) for i in range(len(alpha))]
        if tr is None or tr.class_names != names or tr.region_names != regions:
            tr = self._tracks[track] = _Track(class_names=names, region_names=regions)  # new face, or new models
            self._smoothers.pop(track, None)
        rewound = False
        while tr.samples and tr.samples[-1].time >= time_s:
            tr.samples.pop()
            if tr.smoothed:
                tr.smoothed.pop()
            rewound = True
        while tr.samples and (tr.samples[0].time < time_s - self.history_s or len(tr.samples) >= self.capacity):
            tr.samples.popleft()
            if tr.smoothed:
                tr.smoothed.popleft()
        tr.samples.append(TimelineSample(float(time_s), probs, alpha, beta))
        if self._smooth:
            if rewound or len(tr.smoothed) != len(tr.samples) - 1:
                self._resmooth(track)  # the smoother's state was past the new time: replay what is left
            else:
                tr.smoothed.append(self._smoother(track).update(track, float(time_s), probs))
        if track == self._followed:
            self.events.changed.emit()

    def reset(self, track: int | None = None) -> None:
        """Forget one face's samples, or every face's (``None``)."""
        if track is None:
            self._tracks.clear()
            self._smoothers.clear()
        else:
            self._tracks.pop(track, None)
            self._smoothers.pop(track, None)
        self.events.changed.emit()

    # --- which face ------------------------------------------------------------------------------------------------

    @property
    def followed(self) -> int | None:
        """The track id of the face the timeline shows (``None``: no face selected)."""
        return self._followed

    def follow(self, track: int | None) -> None:
        """Show face ``track``; another face than before starts the timeline over."""
        if track == self._followed:
            return
        self._followed = track
        self.reset()

    # --- smoothing -------------------------------------------------------------------------------------------------

    @property
    def smoothing(self) -> bool:
        return self._smooth

    @property
    def smoothing_s(self) -> float:
        """The EMA's time window in seconds."""
        return self._smooth_s

    def set_smoothing(self, enabled: bool | None = None, window_s: float | None = None) -> None:
        """Turn the EMA of ``ran-core predict --smooth`` on or off, or change its window (seconds > 0)."""
        new_on = self._smooth if enabled is None else bool(enabled)
        new_s = self._smooth_s if window_s is None else float(window_s)
        if not new_s > 0 or not math.isfinite(new_s):
            raise ValueError(f"the smoothing window must be > 0 seconds, got {window_s}")
        if (new_on, new_s) == (self._smooth, self._smooth_s):
            return
        self._smooth, self._smooth_s = new_on, new_s
        self._smoothers.clear()
        for track in self._tracks:
            self._resmooth(track)
        self.events.changed.emit()

    def _smoother(self, track: int) -> ExpressionSmoother:
        if track not in self._smoothers:
            self._smoothers[track] = ExpressionSmoother(self._smooth_s)
        return self._smoothers[track]

    def _resmooth(self, track: int) -> None:
        """Smooth ``track``'s samples again from the first (a new window, or samples dropped)."""
        tr = self._tracks[track]
        tr.smoothed.clear()
        self._smoothers.pop(track, None)
        if not self._smooth:
            return
        smoother = self._smoother(track)
        for s in tr.samples:
            tr.smoothed.append(smoother.update(track, s.time, s.probabilities))

    # --- reading ---------------------------------------------------------------------------------------------------

    def series(self, track: int | None = None, mode: str = "alpha*beta", since: float | None = None) -> TimelineSeries:
        """``track``'s samples as arrays (default: the followed face), region weights in ``mode``; only those at
        ``since`` seconds or later when given (what a plot of the last seconds needs, built at camera rate)."""
        track = self._followed if track is None else track
        tr = self._tracks.get(track) if track is not None else None
        names = list(tr.class_names) if tr else []
        regions = list(tr.region_names) if tr else []
        n = len(tr.samples) if tr else 0
        start = n
        if tr is not None:
            start = 0 if since is None else n - sum(1 for _ in _takewhile_from_end(tr.samples, since))
        samples = list(itertools.islice(tr.samples, start, n)) if tr else []
        if not samples:
            return TimelineSeries(
                track, np.zeros(0), np.zeros((0, len(names))), np.zeros((0, len(names))), np.zeros((0, 0)), names, []
            )
        times = np.fromiter((s.time for s in samples), dtype=np.float64, count=len(samples))
        raw = np.stack([s.probabilities for s in samples])
        smoothed = self._smooth and len(tr.smoothed) == n
        probs = np.stack(list(itertools.islice(tr.smoothed, start, n))) if smoothed else raw
        if regions:
            alpha = np.stack([s.alpha for s in samples])
            beta = np.stack([s.beta for s in samples])
            weights = mode_values(alpha, beta, mode)
        else:
            weights = np.zeros((len(samples), 0))
        return TimelineSeries(track, times, probs, raw, weights, names, regions)

    def latest_time(self, track: int | None = None) -> float | None:
        """The time of ``track``'s newest sample (default: the followed face), or ``None``."""
        track = self._followed if track is None else track
        tr = self._tracks.get(track) if track is not None else None
        return tr.samples[-1].time if tr is not None and tr.samples else None

    # --- following the viewer --------------------------------------------------------------------------------------

    def _on_camera(self) -> None:
        running = self.state.camera.running
        if running and not self._camera_running:  # a new camera session starts over
            self._followed = None
            self.reset()
        self._camera_running = running

    def _on_selection(self) -> None:
        face = self.state.selected_face_result
        if face is not None and face.track_id is not None:
            self.follow(face.track_id)

    def _on_predictions(self) -> None:
        state = self.state
        if not state.camera.running or state.frame_time is None:
            return
        self._on_selection()
        faces = state.ran_faces or state.baseline_faces
        for face in faces:
            if face.track_id is not None:
                self._push_face(face, state.frame_time)

    def _push_face(self, face: FaceResult, time_s: float) -> None:
        alpha = np.array([r.alpha for r in face.regions], dtype=np.float64)
        beta = np.array([r.beta for r in face.regions], dtype=np.float64)
        if len(alpha) < 2 or not np.isfinite(alpha).any():
            alpha = beta = np.zeros(0)  # the baseline: no regions to plot
        names = [r.name for r in face.regions] if len(alpha) else []
        self.push(face.track_id, time_s, face.probabilities, alpha, beta, list(face.class_names), names)


def _takewhile_from_end(samples: collections.deque, since: float):
    """The samples at ``since`` or later, newest first (the deque is in time order)."""
    for s in reversed(samples):
        if s.time < since:
            return
        yield s
