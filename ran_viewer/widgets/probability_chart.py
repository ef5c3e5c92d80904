"""The class-probability panel: RAN's and the baseline's probabilities for the selected face, side by side."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ran_viewer.model.viewer_state import ViewerState, clean_match
from ran_viewer.widgets.common import BASELINE_COLOR, RAN_COLOR, subscribe
from ran_viewer.widgets.plots import TextPool, plot_widget


class QtProbabilityWidget(QWidget):
    """Horizontal bars of the selected face's class probabilities, RAN and baseline side by side.

    While occluders are on the image, thin outlines show each model's probabilities on the clean image.

    Attributes:
        ran_values, baseline_values: the probabilities drawn (``None`` when that model has no face), for tests.
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.plot = plot_widget("Expression probabilities")
        pi = self.plot.getPlotItem()
        pi.setLabel("bottom", "probability", color="#cccccc")
        pi.setXRange(0, 1.0, padding=0.02)
        pi.getAxis("bottom").setTicks([[(v, f"{v:.1f}") for v in np.linspace(0, 1, 6)]])
        self.ran_bars = pg.BarGraphItem(x0=[], y=[], height=0.36, width=[], brush=RAN_COLOR, pen=None, name="RAN")
        self.base_bars = pg.BarGraphItem(
            x0=[], y=[], height=0.36, width=[], brush=BASELINE_COLOR, pen=None, name="baseline"
        )
        self.ran_clean = pg.BarGraphItem(
            x0=[], y=[], height=0.36, width=[], brush=None, pen=pg.mkPen("#a8cdf5", width=1)
        )
        self.base_clean = pg.BarGraphItem(
            x0=[], y=[], height=0.36, width=[], brush=None, pen=pg.mkPen("#f7cf99", width=1)
        )
        for item in (self.ran_bars, self.base_bars):
            pi.addItem(item)
        for item in (self.ran_clean, self.base_clean):
            pi.addItem(item)
            item.setZValue(5)
        self._texts = TextPool(pi)
        self.ran_values: np.ndarray | None = None
        self.baseline_values: np.ndarray | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        ev = state.events
        subscribe(self, [(ev.predictions, self._on_changed), (ev.selection, self._on_changed)])
        self._on_changed()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(360, 300)

    def _on_changed(self, *_: object) -> None:
        state = self.state
        pi = self.plot.getPlotItem()
        self._texts.reset()
        i = state.selected_face
        ran = state.ran_faces[i] if i is not None and i < len(state.ran_faces) else None
        base = state.baseline_for(i) if i is not None else None
        names = (ran or base).class_names if (ran or base) else []
        n = len(names)
        ys = np.arange(n, dtype=float)
        self.ran_values = None if ran is None else np.asarray(ran.probabilities, dtype=float)
        self.baseline_values = None if base is None else np.asarray(base.probabilities, dtype=float)
        both = ran is not None and base is not None
        off = 0.2 if both else 0.0
        height = 0.38 if both else 0.6
        self._set_bars(self.ran_bars, ys - off, self.ran_values, height)
        self._set_bars(self.base_bars, ys + off, self.baseline_values, height)
        clean_ran = clean_match(state.clean_ran_faces, ran) if state.occluders else None
        clean_base = clean_match(state.clean_baseline_faces, base) if state.occluders else None
        self._set_bars(self.ran_clean, ys - off, None if clean_ran is None else clean_ran.probabilities, height)
        self._set_bars(self.base_clean, ys + off, None if clean_base is None else clean_base.probabilities, height)
        rows = (
            (self.ran_values, clean_ran, -off, "#bcd9f7"),
            (self.baseline_values, clean_base, off, "#f7d7a8"),
        )
        for values, clean, dy, color in rows:
            if values is None:
                continue
            ref = np.zeros(len(values)) if clean is None else np.asarray(clean.probabilities, float)
            for y, v, c in zip(ys, values, ref):  # the label goes right of the bar and of its unoccluded outline
                self._texts.put(f"{v:.0%}", color, min(max(float(v), float(c)), 0.86) + 0.01, y + dy)
        self._texts.finish()
        top = int(np.argmax(self.ran_values if self.ran_values is not None else self.baseline_values)) if n else -1
        ticks = [(float(k), ("▶ " if k == top else "") + name) for k, name in enumerate(names)]
        pi.getAxis("left").setTicks([ticks])
        pi.setYRange(-0.6, max(n, 1) - 0.4, padding=0)
        # The legend lives in the title: a legend box inside the plot would cover the longest bars.
        title = "Probabilities"
        if i is not None and (ran or base):
            title += f" · face #{i + 1}"
        keys = []
        if ran is not None:
            keys.append(f"<span style='color:{RAN_COLOR}'>■</span> RAN")
        if base is not None:
            keys.append(f"<span style='color:{BASELINE_COLOR}'>■</span> baseline")
        if clean_ran is not None or clean_base is not None:
            keys.append("□ unoccluded")
        if keys:
            title += " &nbsp; " + " &nbsp;".join(keys)
        pi.setTitle(title, color="#dddddd", size="10pt")

    @staticmethod
    def _set_bars(item: pg.BarGraphItem, ys: np.ndarray, values: np.ndarray | None, height: float) -> None:
        if values is None:
            item.setOpts(x0=[], y=[], width=[], height=height)
            item.setVisible(False)
            return
        item.setOpts(x0=np.zeros(len(values)), y=ys[: len(values)], width=np.asarray(values, float), height=height)
        item.setVisible(True)
