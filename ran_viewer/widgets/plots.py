"""pyqtgraph helpers shared by the side panels: a styled plot and a pool of reusable text items."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont

from ran_viewer.widgets.common import BACKGROUND

AXIS_PEN = "#9aa0a6"


def plot_widget(title: str, invert_y: bool = True) -> pg.PlotWidget:
    """A dark plot in the panels' style; ``invert_y`` puts row 0 of a horizontal bar chart at the top."""
    pw = pg.PlotWidget()
    pw.setBackground(BACKGROUND)
    style_plot(pw.getPlotItem(), title, invert_y)
    return pw


def style_plot(pi: pg.PlotItem, title: str, invert_y: bool = False) -> None:
    """Give a plot the panels' look: title, axis colours, no context menu, no mouse pan or zoom."""
    pi.setTitle(title, color="#dddddd", size="10pt")
    pi.setMenuEnabled(False)
    pi.hideButtons()
    pi.setMouseEnabled(x=False, y=False)
    for name in ("left", "bottom"):
        ax = pi.getAxis(name)
        ax.setPen(AXIS_PEN)
        ax.setTextPen("#cccccc")
        ax.enableAutoSIPrefix(False)
    pi.getViewBox().invertY(invert_y)


class TextPool:
    """Value labels of a chart, reused between redraws (re-creating pyqtgraph items every camera frame is slow)."""

    def __init__(self, plot: pg.PlotItem, anchor: tuple[float, float] = (0, 0.5)) -> None:
        self.plot = plot
        self.anchor = anchor
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
            item = pg.TextItem("", anchor=self.anchor)
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
