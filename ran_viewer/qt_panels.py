"""Side panels: class probabilities (RAN vs baseline), region weights, the region crops as the model saw them, and
the thumbnail strip. Each takes the :class:`~ran_viewer.state.ViewerState` and redraws on its events.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPixmap
from PySide6.QtWidgets import QListView, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ran_core.structures import FaceResult
from ran_viewer.qt_common import BACKGROUND, BASELINE_COLOR, RAN_COLOR, subscribe
from ran_viewer.qt_image_view import weight_color, weight_colormap
from ran_viewer.state import WEIGHT_LABELS, ViewerState, match_face
from ran_viewer.workers import ThumbnailWorker, retire

AXIS_PEN = "#9aa0a6"


def _plot_widget(title: str) -> pg.PlotWidget:
    pw = pg.PlotWidget()
    pw.setBackground(BACKGROUND)
    pi = pw.getPlotItem()
    pi.setTitle(title, color="#dddddd", size="10pt")
    pi.setMenuEnabled(False)
    pi.hideButtons()
    pi.setMouseEnabled(x=False, y=False)
    for name in ("left", "bottom"):
        ax = pi.getAxis(name)
        ax.setPen(AXIS_PEN)
        ax.setTextPen("#cccccc")
        ax.enableAutoSIPrefix(False)
    pi.getViewBox().invertY(True)
    return pw


class _TextPool:
    """Value labels of a chart, reused between redraws (re-creating pyqtgraph items every camera frame is slow)."""

    def __init__(self, plot: pg.PlotItem) -> None:
        self.plot = plot
        self.items: list[pg.TextItem] = []
        self.used = 0
        self.font = QFont()
        self.font.setPointSizeF(7.5)

    def reset(self) -> None:
        """Start a redraw: every label becomes free."""
        self.used = 0

    def put(self, text: str, color: str, x: float, y: float) -> pg.TextItem:
        """Show one label at ``(x, y)``."""
        if self.used == len(self.items):
            item = pg.TextItem("", anchor=(0, 0.5))
            item.setFont(self.font)
            self.plot.addItem(item)
            self.items.append(item)
        item = self.items[self.used]
        self.used += 1
        item.setText(text, color=QColor(color))
        item.setPos(x, y)
        item.setVisible(True)
        return item

    def finish(self) -> None:
        """Hide the labels this redraw did not use."""
        for item in self.items[self.used :]:
            item.setVisible(False)


class QtProbabilityWidget(QWidget):
    """Horizontal bars of the selected face's class probabilities, RAN and baseline side by side.

    While occluders are on the image, thin outlines show each model's probabilities on the clean image.

    Attributes:
        ran_values, baseline_values: the probabilities drawn (``None`` when that model has no face), for tests.
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.plot = _plot_widget("Expression probabilities")
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
        self._texts = _TextPool(pi)
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
        clean_ran = _clean_match(state.clean_ran_faces, ran) if state.occluders else None
        clean_base = _clean_match(state.clean_baseline_faces, base) if state.occluders else None
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


def _clean_match(clean: list[FaceResult], face: FaceResult | None) -> FaceResult | None:
    if face is None or not clean:
        return None
    return match_face(face, clean)


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
        self.plot = _plot_widget("Region weights")
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
        self._texts = _TextPool(pi)
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
        clean = _clean_match(state.clean_ran_faces, face) if state.occluders else None
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


class QtRegionCropWidget(QWidget):
    """The selected region as the backbone saw it (its crop, resized to the model's input), above a strip of all the
    face's region crops framed in their weight colours. Without a selected region it shows the aligned face crop."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.cmap = weight_colormap()
        self.canvas = pg.GraphicsLayoutWidget()
        self.canvas.setBackground(BACKGROUND)
        self.title = pg.LabelItem("Region crop", size="10pt", color="#dddddd")
        self.canvas.addItem(self.title, row=0, col=0)
        self.big_vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
        self.big = pg.ImageItem(axisOrder="row-major")
        self.big_vb.addItem(self.big)
        self.canvas.addItem(self.big_vb, row=1, col=0)
        self.strip = self.canvas.addLayout(row=2, col=0)
        self.canvas.ci.layout.setRowStretchFactor(1, 4)
        self.canvas.ci.layout.setRowStretchFactor(2, 1)
        self.thumbs: list[tuple[pg.ViewBox, pg.ImageItem]] = []
        self.shown: np.ndarray | None = None
        self._big_shape: tuple[int, ...] | None = None
        self.canvas.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.canvas)
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
        return QSize(360, 300)

    def _on_changed(self, *_: object) -> None:
        state = self.state
        face = state.selected_face_result
        k = state.selected_region
        crops = None if face is None else face.region_crops
        n = 0 if crops is None else len(crops)
        self._ensure_thumbs(n if n > 1 else 0)  # a strip of one (the baseline's whole face) repeats the big view
        levels = state.weight_levels()
        values = state.region_values(face) if face is not None and face.regions else np.zeros(0)
        for j, (vb, img) in enumerate(self.thumbs):
            img.setImage(_display_crop(crops[j]), levels=(0, 255), autoLevels=False)
            color = weight_color(values[j], levels, self.cmap) if j < len(values) else QColor("#888888")
            vb.setBorder(pg.mkPen("#ffffff" if j == k else color, width=3 if j == k else 2))
            if crops[j].shape != getattr(vb, "_shown_shape", None):
                vb._shown_shape = crops[j].shape
                vb.autoRange(padding=0.04)
        if face is None:
            self._show(None, "Region crop — no face selected")
        elif k is not None and crops is not None and k < n:
            region = face.regions[k]
            parts = [f"<b>{region.name}</b>"]
            if math.isfinite(region.alpha):
                parts.append(f"α {region.alpha:.3f}  β {region.beta:.3f}")
            parts.append(f"{crops.shape[1]}×{crops.shape[2]} px as the model saw it")
            self._show(crops[k], " · ".join(parts))
        elif face.crop is not None:
            self._show(face.crop, f"Aligned face #{state.selected_face + 1} · click a region to see its crop")
        elif crops is not None and n:
            self._show(crops[0], "Whole face as the model saw it · click a region")
        else:
            self._show(None, "Region crop — the predictor returned no crops")

    def _show(self, crop: np.ndarray | None, title: str) -> None:
        self.title.setText(title)
        if crop is None:
            self.big.clear()
            self.shown = None
            return
        self.shown = _display_crop(crop)
        self.big.setImage(self.shown, levels=(0, 255), autoLevels=False)
        if self.shown.shape != self._big_shape:
            self._big_shape = self.shown.shape
            self.big_vb.autoRange(padding=0.02)

    def _ensure_thumbs(self, n: int) -> None:
        if len(self.thumbs) == n:
            return
        self.strip.clear()
        self.thumbs = []
        for j in range(n):
            vb = pg.ViewBox(lockAspect=True, invertY=True, enableMouse=False, enableMenu=False)
            img = pg.ImageItem(axisOrder="row-major")
            vb.addItem(img)
            self.strip.addItem(vb, row=0, col=j)
            self.thumbs.append((vb, img))

    def _on_mouse_clicked(self, ev) -> None:
        for j, (vb, _) in enumerate(self.thumbs):
            if vb.sceneBoundingRect().contains(ev.scenePos()):
                self.state.select_region(None if j == self.state.selected_region else j)
                return


def _display_crop(crop: np.ndarray) -> np.ndarray:
    """A region crop ready for an ImageItem: ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8."""
    crop = np.asarray(crop)
    if crop.ndim == 3 and crop.shape[2] == 1:
        crop = crop[..., 0]
    if crop.dtype != np.uint8:
        crop = np.clip(crop, 0, 255).astype(np.uint8)
    return crop


class QtThumbnailStripWidget(QListWidget):
    """A horizontal strip of the source images; thumbnails load on a worker thread; the current one is selected."""

    THUMB = 84

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setIconSize(QSize(self.THUMB, self.THUMB))
        self.setGridSize(QSize(self.THUMB + 26, self.THUMB + 30))
        self.setUniformItemSizes(True)
        self.setHorizontalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.setFixedHeight(self.THUMB + 52)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self._paths: list[str] = []
        self._worker: ThumbnailWorker | None = None
        self._placeholder = self._make_placeholder()
        self.currentRowChanged.connect(self._on_current_row_changed)
        subscribe(self, [(state.events.sources, self._on_sources)])
        self._on_sources()

    def _make_placeholder(self) -> QIcon:
        pm = QPixmap(self.THUMB, self.THUMB)
        pm.fill(QColor("#3a3d42"))
        return QIcon(pm)

    def _on_sources(self, *_: object) -> None:
        if self.state.sources != self._paths:
            self._paths = list(self.state.sources)
            self.blockSignals(True)
            self.clear()
            for p in self._paths:
                item = QListWidgetItem(self._placeholder, Path(p).name)
                item.setToolTip(p)
                self.addItem(item)
            self.blockSignals(False)
            self._start_worker()
        idx = self.state.source_index
        if idx != self.currentRow() and 0 <= idx < self.count():
            self.blockSignals(True)
            self.setCurrentRow(idx)
            self.blockSignals(False)
        if 0 <= idx < self.count():
            self.scrollToItem(self.item(idx))

    def _start_worker(self) -> None:
        retire(self._worker)
        self._worker = None
        if not self._paths:
            return
        self._worker = ThumbnailWorker(self._paths, self.THUMB)
        self._worker.sig_thumbnail.connect(self._on_thumbnail)
        self._worker.start()

    def _on_thumbnail(self, index: int, image: QImage) -> None:
        if index < self.count() and not image.isNull():
            self.item(index).setIcon(QIcon(QPixmap.fromImage(image)))

    def _on_current_row_changed(self, row: int) -> None:
        if row >= 0:
            self.state.go_to(row)

    def shutdown(self) -> None:
        """Stop the thumbnail thread (call before the application quits)."""
        retire(self._worker)
        self._worker = None

    @property
    def loading(self) -> bool:
        """Whether thumbnails are still being decoded."""
        return self._worker is not None and self._worker.isRunning()
