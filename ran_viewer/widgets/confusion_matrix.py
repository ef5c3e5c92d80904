"""The confusion-matrix view (counts, row-normalised or RAN − baseline) and its colour maths."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPalette, QPen
from PySide6.QtWidgets import (
    QWidget,
)

from ran_viewer.widgets.gallery import is_dark

# Sequential white -> blue (ColorBrewer "Blues") for counts and row percentages: light cells keep dark text legible.
COUNT_CMAP = pg.ColorMap(
    [0.0, 0.25, 0.5, 0.75, 1.0],
    [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)],
)


# Diverging blue - white - red (ColorBrewer "RdBu", reversed) for RAN - baseline: white means no difference.
DIFF_CMAP = pg.ColorMap(
    [0.0, 0.25, 0.5, 0.75, 1.0],
    [(5, 113, 176), (146, 197, 222), (247, 247, 247), (244, 165, 130), (202, 0, 32)],
)


EMPTY_ROW_COLOR = (215, 215, 215, 255)


SOURCE_LABELS = {"ran": "RAN", "baseline": "Baseline", "difference": "RAN − baseline"}


def matrix_levels(values: np.ndarray, difference: bool, normalize: bool) -> tuple[float, float]:
    """Colour range of a matrix: ``[0, max]`` (or ``[0, 100]`` percent), symmetric ``[-m, m]`` for differences."""
    finite = values[np.isfinite(values)] if values.size else values
    if difference:
        m = float(np.abs(finite).max()) if finite.size else 0.0
        return -max(m, 1.0), max(m, 1.0)
    if normalize:
        return 0.0, 100.0
    return 0.0, max(float(finite.max()) if finite.size else 0.0, 1.0)


def cell_colors(values: np.ndarray, difference: bool, normalize: bool) -> np.ndarray:
    """``(C, C, 4)`` uint8 RGBA of every cell under the view's colormap (``nan`` cells grey)."""
    lo, hi = matrix_levels(values, difference, normalize)
    cmap = DIFF_CMAP if difference else COUNT_CMAP
    v = np.asarray(values, dtype=np.float64)
    t = np.clip((np.nan_to_num(v, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    rgba = np.asarray(cmap.map(t.ravel(), mode="byte"), dtype=np.uint8).reshape(*v.shape, 4)
    rgba[~np.isfinite(v)] = EMPTY_ROW_COLOR
    return rgba


def format_cell(value: float, difference: bool, normalize: bool) -> str:
    if not math.isfinite(value):
        return "–"
    if normalize:
        text = f"{value:+.1f}" if difference else f"{value:.1f}"
        return "0" if difference and text in ("+0.0", "-0.0") else text
    return f"{int(value):+d}" if difference and value else f"{int(value)}"


def short_name(name: str) -> str:
    """Three-letter column label (``happiness`` -> ``Hap``), as FER papers label confusion-matrix columns."""
    return name[:3].capitalize()


class QtConfusionMatrixView(pg.GraphicsLayoutWidget):
    """A confusion matrix as a pyqtgraph heatmap with the value written in each cell and a colour bar.

    Signals:
        sig_cell_clicked(true_index, predicted_index): a cell was clicked.
    """

    sig_cell_clicked = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = self.addPlot()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(False, False)
        self.vb = self.plot.getViewBox()
        self.vb.invertY(True)
        self.vb.setDefaultPadding(0.0)
        for name, label in (("left", "true class"), ("bottom", "predicted class")):
            axis = self.plot.getAxis(name)
            axis.setLabel(label)
            axis.setStyle(tickLength=0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.bar = pg.ColorBarItem(values=(0, 1), colorMap=COUNT_CMAP, interactive=False, width=14, pen="#888")
        self.plot.layout.addItem(self.bar, 2, 5)
        self.plot.layout.setColumnFixedWidth(4, 6)
        self.highlight = pg.QtWidgets.QGraphicsRectItem()
        pen = QPen(QColor(255, 170, 0))
        pen.setWidthF(3.5)
        pen.setCosmetic(True)
        self.highlight.setPen(pen)
        self.highlight.setBrush(QBrush(Qt.BrushStyle.NoBrush))
        self.highlight.setZValue(20)
        self.highlight.hide()
        self.plot.addItem(self.highlight)
        self._texts: list[pg.TextItem] = []
        self.values: np.ndarray | None = None
        self.colors: np.ndarray | None = None
        self.scene().sigMouseClicked.connect(self._on_mouse_clicked)
        self._apply_palette()

    def _apply_palette(self) -> None:
        """Canvas and axis colours from the Qt palette, so the matrix sits in a light or a dark theme alike."""
        pal = self.palette()
        bg = pal.color(QPalette.ColorRole.Base)
        fg = pal.color(QPalette.ColorRole.Text)
        self.setBackground(bg)
        for name in ("left", "bottom"):
            axis = self.plot.getAxis(name)
            axis.setPen(pg.mkPen(fg.darker(130) if is_dark(pal) else fg.lighter(250)))
            axis.setTextPen(pg.mkPen(fg))
            axis.setLabel(axis.labelText, color=fg.name())
        self.bar.getAxis("right").setTextPen(pg.mkPen(fg))
        self.bar.getAxis("right").setPen(pg.mkPen(fg.darker(130) if is_dark(pal) else fg.lighter(250)))

    def changeEvent(self, event) -> None:  # noqa: N802
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "bar"):
            self._apply_palette()
        super().changeEvent(event)

    def set_matrix(
        self, values: np.ndarray | None, class_names: list[str], difference: bool = False, normalize: bool = False
    ) -> None:
        """Draw ``values`` (rows = true, columns = predicted); ``None`` clears the view."""
        for t in self._texts:
            self.plot.removeItem(t)
        self._texts = []
        if values is None:
            self.values = self.colors = None
            self.image.clear()
            self.highlight.hide()
            return
        values = np.asarray(values, dtype=np.float64)
        c = values.shape[0]
        self.values = values
        self.colors = cell_colors(values, difference, normalize)
        self.image.setImage(self.colors, autoLevels=False, levels=(0, 255))
        self.image.setRect(QRectF(0, 0, c, c))
        lo, hi = matrix_levels(values, difference, normalize)
        self.bar.setColorMap(DIFF_CMAP if difference else COUNT_CMAP)
        self.bar.setLevels((lo, hi))
        font = pg.QtGui.QFont()
        font.setPointSizeF(9 if c <= 8 else 7)
        for i in range(c):
            for j in range(c):
                r, g, b, _ = self.colors[i, j]
                dark_bg = 0.299 * r + 0.587 * g + 0.114 * b < 140
                text = pg.TextItem(
                    format_cell(values[i, j], difference, normalize),
                    color=(255, 255, 255) if dark_bg else (20, 20, 20),
                    anchor=(0.5, 0.5),
                )
                text.setFont(font)
                if i == j:
                    bold = pg.QtGui.QFont(font)
                    bold.setBold(True)
                    text.setFont(bold)
                text.setPos(j + 0.5, i + 0.5)
                self.plot.addItem(text)
                self._texts.append(text)
        ticks_left = [[(i + 0.5, name) for i, name in enumerate(class_names)]]
        ticks_bottom = [[(i + 0.5, short_name(name)) for i, name in enumerate(class_names)]]
        self.plot.getAxis("left").setTicks(ticks_left)
        self.plot.getAxis("bottom").setTicks(ticks_bottom)
        self.vb.setRange(xRange=(0, c), yRange=(0, c), padding=0)

    def set_selected(self, cell: tuple[int, int] | None) -> None:
        """Outline the selected cell (``None`` hides the outline)."""
        if cell is None or self.values is None:
            self.highlight.hide()
            return
        i, j = cell
        self.highlight.setRect(QRectF(j, i, 1, 1))
        self.highlight.show()

    def cell_center(self, i: int, j: int, dx: float = 0.5, dy: float = 0.5) -> QPointF:
        """Widget coordinates of a point inside cell ``(i, j)`` (``dx``, ``dy`` in cell fractions)."""
        scene = self.vb.mapViewToScene(QPointF(j + dx, i + dy))
        return QPointF(self.mapFromScene(scene))

    def _on_mouse_clicked(self, event) -> None:
        if self.values is None or event.button() != Qt.MouseButton.LeftButton:
            return
        if not self.vb.sceneBoundingRect().contains(event.scenePos()):
            return
        p = self.vb.mapSceneToView(event.scenePos())
        c = self.values.shape[0]
        j, i = math.floor(p.x()), math.floor(p.y())
        if 0 <= i < c and 0 <= j < c:
            self.sig_cell_clicked.emit(i, j)
