"""The region-weight panel: α, β and α·β of each region of the selected face, against the clean image's when
occluders are drawn."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ran_viewer.model.viewer_state import ViewerState, clean_match
from ran_viewer.model.weights import WEIGHT_LABELS
from ran_viewer.widgets.common import subscribe
from ran_viewer.widgets.image_view import weight_color, weight_colormap
from ran_viewer.widgets.plots import TextPool, plot_widget


class QtRegionWeightWidget(QWidget):
    """Horizontal bars of the selected face's region weights in the current mode, in the image's colours.

    Click a bar to select its region. While occluders are on the image, outlines show the clean image's weights.

    Attributes:
        values: the weights drawn, and ``colors`` their bar colours (for tests).
    """

    sig_region_clicked = Signal(int)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.cmap = weight_colormap()
        self.plot = plot_widget("Region weights")
        pi = self.plot.getPlotItem()
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[], brush="#888888", pen=None)
        dash = pg.mkPen("#ffffff", width=1, style=Qt.PenStyle.DashLine)
        self.clean = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[], brush=None, pen=dash)
        self.selected_bar = pg.BarGraphItem(
            x0=[], y=[], height=0.7, width=[], brush=None, pen=pg.mkPen("#ffffff", width=2.5)
        )
        self.clean.setZValue(5)
        self.selected_bar.setZValue(6)
        for item in (self.bars, self.clean, self.selected_bar):
            pi.addItem(item)
        self.message = pg.TextItem("", color="#9aa0a6", anchor=(0.5, 0.5))
        pi.addItem(self.message)
        self._texts = TextPool(pi)
        self.values: np.ndarray = np.zeros(0)
        self.colors: list[QColor] = []
        self.plot.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        ev = state.events
        subscribe(
            self,
            [
                (ev.predictions, self._on_changed),
                (ev.selection, self._on_changed),
                (ev.weight_mode, self._on_changed),
            ],
        )
        self._on_changed()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(360, 240)

    def _on_changed(self, *_: object) -> None:
        state = self.state
        pi = self.plot.getPlotItem()
        self._texts.reset()
        i = state.selected_face
        face = state.ran_faces[i] if i is not None and i < len(state.ran_faces) else None
        mode_label = WEIGHT_LABELS[state.weight_mode]
        pi.setLabel("bottom", mode_label, color="#cccccc")
        title = "Region weights" + (f" — face #{i + 1}" if face is not None else "")
        pi.setTitle(title, color="#dddddd", size="10pt")
        if face is None or not face.regions or all(not math.isfinite(r.alpha) for r in face.regions):
            self.values, self.colors = np.zeros(0), []
            for item in (self.bars, self.clean, self.selected_bar):
                item.setOpts(x0=[], y=[], width=[], brushes=None)
            pi.getAxis("left").setTicks([[]])
            self._texts.finish()
            if state.ran_faces or state.baseline_faces:
                msg = "the baseline reads the whole face: no regions" if not state.ran_faces else "no region weights"
            else:
                msg = "no face selected"
            self.message.setText(msg)
            self.message.setPos(0.5, 0.5)
            pi.setXRange(0, 1, padding=0)
            pi.setYRange(0, 1, padding=0)
            return
        self.message.setText("")
        values = state.region_values(face)
        levels = state.weight_levels()
        self.values = values
        self.colors = [weight_color(v, levels, self.cmap) for v in values]
        ys = np.arange(len(values), dtype=float)
        finite = np.nan_to_num(values, nan=0.0)
        self.bars.setOpts(x0=np.zeros(len(values)), y=ys, width=finite, brushes=self.colors, height=0.7)
        k = state.selected_region
        if k is not None and k < len(values):
            self.selected_bar.setOpts(x0=[0.0], y=[float(k)], width=[finite[k]], height=0.7)
        else:
            self.selected_bar.setOpts(x0=[], y=[], width=[])
        clean = clean_match(state.clean_ran_faces, face) if state.occluders else None
        if clean is not None and len(clean.regions) == len(values):
            cv = np.nan_to_num(state.region_values(clean), nan=0.0)
            self.clean.setOpts(x0=np.zeros(len(cv)), y=ys, width=cv, height=0.7)
        else:
            cv = np.zeros(0)
            self.clean.setOpts(x0=[], y=[], width=[])
        xmax = float(max(np.max(finite, initial=0), np.max(cv, initial=0))) * 1.22 or 1.0
        ref = cv if len(cv) == len(values) else np.zeros(len(values))
        for y, v, c in zip(ys, values, ref):  # right of the bar and of its unoccluded outline
            self._texts.put(f"{v:.3f}", "#dddddd", max(float(np.nan_to_num(v)), float(c)) + xmax * 0.01, y)
        self._texts.finish()
        names = [r.name for r in face.regions]
        pi.getAxis("left").setTicks([[(float(k), n) for k, n in enumerate(names)]])
        pi.setXRange(0, xmax, padding=0)
        pi.setYRange(-0.6, len(values) - 0.4, padding=0)

    def _on_mouse_clicked(self, ev) -> None:
        if not len(self.values):
            return
        vb = self.plot.getPlotItem().getViewBox()
        if not vb.sceneBoundingRect().contains(ev.scenePos()):
            return
        y = vb.mapSceneToView(ev.scenePos()).y()
        k = int(round(y))
        if 0 <= k < len(self.values):
            self.state.select_region(None if k == self.state.selected_region else k)
            self.sig_region_clicked.emit(k)
