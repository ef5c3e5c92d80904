"""Expression over time: the selected face's class probabilities as scrolling line traces (the last N seconds), its
region weights beneath, and a cursor at the frame shown. On a video file a click seeks to that time."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QPen, QShowEvent
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QHBoxLayout, QLabel, QSpinBox, QVBoxLayout, QWidget

from ran_viewer.model.timeline import ExpressionTimeline
from ran_viewer.model.viewer_state import ViewerState
from ran_viewer.model.weights import WEIGHT_LABELS
from ran_viewer.widgets.common import BACKGROUND, class_color, subscribe
from ran_viewer.widgets.plots import style_plot

CURSOR_COLOR = "#ffffff"


# At most this often (ms): the camera gives 25-30 frames a second, and a timeline redrawn at 20 Hz looks as smooth
# for a fraction of the GUI thread (drawing 14 traces is most of the cost).
REDRAW_INTERVAL_MS = 50


def region_color(k: int, n: int) -> str:
    """Region ``k`` of ``n``: viridis by index, as ``ran-core predict --plot`` colours them (its dark end left out:
    it would vanish on the dark canvas)."""
    return pg.colormap.get("viridis").map(0.25 + 0.75 * k / max(1, n - 1), mode="qcolor").name()


def gaps_joined(times: np.ndarray, min_gap_s: float = 0.5) -> np.ndarray:
    """``connect`` for pyqtgraph: whether each reading is joined to the next. A gap much longer than the usual
    spacing (the face was lost, the models were busy) is left open rather than drawn as a made-up straight line."""
    if len(times) < 2:
        return np.zeros(len(times), dtype=bool)
    dt = np.diff(times)
    joined = dt <= max(min_gap_s, 5.0 * float(np.median(dt)))
    return np.append(joined, False)


class QtTimelineWidget(QWidget):
    """The followed face's probabilities (top) and region weights (bottom) over the last :attr:`window_s` seconds.

    Signals:
        sig_seek(time_s): the user clicked the timeline of a video file at ``time_s`` seconds.

    Attributes:
        prob_curves, weight_curves: one line per class / region (for tests); ``cursors`` the time cursor of each plot.
    """

    sig_seek = Signal(float)

    def __init__(self, timeline: ExpressionTimeline, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline = timeline
        self.state = state
        self.window_s = 20.0
        self._dirty = True
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_INTERVAL_MS)
        self._timer.timeout.connect(self.redraw)

        self.smooth_check = QCheckBox("Smooth")
        self.smooth_check.setToolTip(
            "Steady the probabilities with an exponential moving average over the window (ran-core predict --smooth)"
        )
        self.smooth_spin = QDoubleSpinBox()
        self.smooth_spin.setRange(0.1, 10.0)
        self.smooth_spin.setSingleStep(0.1)
        self.smooth_spin.setDecimals(1)
        self.smooth_spin.setSuffix(" s")
        self.smooth_spin.setValue(timeline.smoothing_s)
        self.smooth_spin.setToolTip("Smoothing window: a reading this many seconds old counts 1/e as much")
        self.window_spin = QSpinBox()
        self.window_spin.setRange(5, int(timeline.history_s))
        self.window_spin.setSuffix(" s")
        self.window_spin.setValue(int(self.window_s))
        self.window_spin.setToolTip("How much of the past the timeline shows")
        self.hint = QLabel()
        self.hint.setStyleSheet("color: #9aa0a6;")
        controls = QHBoxLayout()
        controls.setContentsMargins(6, 2, 6, 0)
        controls.addWidget(self.smooth_check)
        controls.addWidget(self.smooth_spin)
        controls.addSpacing(12)
        controls.addWidget(QLabel("Show last"))
        controls.addWidget(self.window_spin)
        controls.addSpacing(12)
        controls.addWidget(self.hint, 1)

        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(BACKGROUND)
        self.prob_plot = self.view.addPlot(row=0, col=0)
        self.weight_plot = self.view.addPlot(row=1, col=0)
        style_plot(self.prob_plot, "Expression over time")
        style_plot(self.weight_plot, "Region weights")
        self.weight_plot.setXLink(self.prob_plot)
        self.prob_plot.setLabel("left", "probability", color="#cccccc")
        self.weight_plot.setLabel("bottom", "time (s)", color="#cccccc")
        for pi in (self.prob_plot, self.weight_plot):
            pi.showGrid(y=True, alpha=0.12)  # no vertical grid: it would scroll with the traces
            pi.getAxis("left").setWidth(48)  # both plots' time axes line up
        self.prob_plot.setYRange(0, 1, padding=0.02)
        self.prob_curves: list[pg.PlotDataItem] = []
        self.weight_curves: list[pg.PlotDataItem] = []
        cursor_pen = pg.mkPen(CURSOR_COLOR, width=1, style=Qt.PenStyle.DashLine)
        self.cursors = [pg.InfiniteLine(angle=90, movable=False, pen=cursor_pen) for _ in range(2)]
        for pi, cursor in zip((self.prob_plot, self.weight_plot), self.cursors):
            cursor.setZValue(10)
            pi.addItem(cursor, ignoreBounds=True)
        self.view.scene().sigMouseClicked.connect(self._on_mouse_clicked)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(controls)
        layout.addWidget(self.view, 1)

        self.smooth_check.toggled.connect(lambda on: self.timeline.set_smoothing(enabled=on))
        self.smooth_spin.valueChanged.connect(lambda v: self.timeline.set_smoothing(window_s=v))
        self.window_spin.valueChanged.connect(self._on_window_changed)
        ev = state.events
        subscribe(
            self,
            [
                (timeline.events.changed, self._on_changed),
                (ev.weight_mode, self._on_changed),
                (ev.camera, self._on_camera),
            ],
        )
        self._on_camera()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(900, 320)

    # --- reacting --------------------------------------------------------------------------------------------------

    def _on_window_changed(self, seconds: int) -> None:
        self.window_s = float(seconds)
        self._on_changed()

    def _on_camera(self) -> None:
        cam = self.state.camera
        if cam.running and cam.seekable:
            tip = "Click the timeline to play the video from that time."
        elif cam.running:
            tip = "A live camera: clicking the timeline does nothing (it cannot go back in time)."
        else:
            tip = "Start the camera or play a video file as the camera: the selected face's expression is drawn here."
        self.hint.setText(tip)
        self.view.setToolTip(tip)
        self._on_changed()

    def _on_changed(self, *_: object) -> None:
        self._dirty = True
        if self.isVisible() and not self._timer.isActive():  # a hidden dock is drawn when shown
            self._timer.start()

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._dirty:
            self.redraw()

    # --- drawing ---------------------------------------------------------------------------------------------------

    def redraw(self) -> None:
        """Draw the followed face's series now."""
        self._dirty = False
        tl, state = self.timeline, self.state
        mode = state.weight_mode
        latest = tl.latest_time()
        s = tl.series(mode=mode, since=None if latest is None else latest - self.window_s - 1.0)
        self._ensure_curves(self.prob_plot, self.prob_curves, [class_color(c) for c in range(len(s.class_names))], 2)
        k = s.weights.shape[1]
        self._ensure_curves(self.weight_plot, self.weight_curves, [region_color(j, k) for j in range(k)], 1)
        joined = gaps_joined(s.times)
        for c, curve in enumerate(self.prob_curves):
            if c < len(s.class_names) and len(s):
                curve.setData(s.times, s.probabilities[:, c], connect=joined)
            else:
                curve.setData([], [])
        for j, curve in enumerate(self.weight_curves):
            if j < k and len(s):
                curve.setData(s.times, np.nan_to_num(s.weights[:, j]), connect=joined)
            else:
                curve.setData([], [])
        now = state.frame_time if state.frame_time is not None else (float(s.times[-1]) if len(s) else 0.0)
        first = float(s.times[0]) if len(s) else now
        latest = max(now, float(s.times[-1])) if len(s) else now
        x1 = max(latest, first + self.window_s)
        self.prob_plot.setXRange(x1 - self.window_s, x1, padding=0)
        for cursor in self.cursors:
            cursor.setPos(now)
            cursor.setVisible(len(s) > 0)
        top = float(np.nanmax(s.weights)) if len(s) and k and np.isfinite(s.weights).any() else 1.0
        self.weight_plot.setYRange(0, max(top, 1e-3) * 1.1, padding=0)
        self._titles(s, mode)

    def _titles(self, s, mode: str) -> None:
        if s.track is None or not len(s):
            what = "select a face while the camera runs" if self.state.camera.running else "no camera running"
            self.prob_plot.setTitle(f"Expression over time · {what}", color="#dddddd", size="10pt")
            self.weight_plot.setTitle("Region weights", color="#dddddd", size="10pt")
            return
        smooth = f" · smoothed over {self.timeline.smoothing_s:g} s" if self.timeline.smoothing else ""
        if not self.state.camera.running:
            smooth += " · camera stopped"
        keys = " ".join(
            f"<span style='color:{class_color(c)}'>━</span>&nbsp;{name}" for c, name in enumerate(s.class_names)
        )
        name = self._face_name(s.track)
        self.prob_plot.setTitle(f"{name} over time{smooth} &nbsp; {keys}", color="#dddddd", size="9pt")
        k = len(s.region_names)
        regions = " ".join(
            f"<span style='color:{region_color(j, k)}'>━</span>&nbsp;{name}" for j, name in enumerate(s.region_names)
        )
        label = WEIGHT_LABELS.get(mode, mode)
        text = f"Region weights ({label}) &nbsp; {regions}" if k else "Region weights: the baseline has none"
        self.weight_plot.setTitle(text, color="#dddddd", size="9pt")

    def _face_name(self, track: int) -> str:
        """``Face #2`` as the image views number it (track ids start at 0 and never come back)."""
        for i, face in enumerate(self.state.faces):
            if face.track_id == track:
                return f"Face #{i + 1}"
        return f"Face (track {track})"

    @staticmethod
    def _ensure_curves(plot: pg.PlotItem, curves: list[pg.PlotDataItem], colors: list[str], width: float) -> None:
        while len(curves) < len(colors):
            curve = pg.PlotDataItem([], [])
            plot.addItem(curve)
            curves.append(curve)
        for curve, color in zip(curves, colors):
            pen = curve.opts["pen"]
            if not isinstance(pen, QPen) or pen.color().name() != color:  # a new pen only when the colours change
                curve.setPen(pg.mkPen(color, width=width))

    # --- seeking ---------------------------------------------------------------------------------------------------

    def time_at(self, scene_pos) -> float | None:
        """The time under a scene point of either plot, or ``None`` outside them."""
        for pi in (self.prob_plot, self.weight_plot):
            vb = pi.getViewBox()
            if vb.sceneBoundingRect().contains(scene_pos):
                return float(vb.mapSceneToView(scene_pos).x())
        return None

    def _on_mouse_clicked(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            return
        cam = self.state.camera
        if not (cam.running and cam.seekable):
            return  # a live camera cannot seek (the tooltip says so)
        t = self.time_at(ev.scenePos())
        if t is not None:
            self.sig_seek.emit(max(0.0, t))
