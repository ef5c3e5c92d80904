"""Is the attention faithful? The region deletion curves: accuracy as the regions are covered one by one, in RAN's
weight order, the reverse and at random, RAN solid and the baseline dashed, the area under each curve in the legend."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ran_viewer.model.eval_state import ROLE_LABELS, EvalState
from ran_viewer.widgets.common import BACKGROUND, DELETION_COLORS, subscribe
from ran_viewer.widgets.plots import style_plot

ROLE_STYLES = {"ran": Qt.PenStyle.SolidLine, "baseline": Qt.PenStyle.DashLine}


class QtDeletionCurveWidget(QWidget):
    """Accuracy (%) after covering 0, 1, …, K−1 regions: one line per order and model, the legend beneath the plot
    (so it never hides a curve) naming each with its AUC (the mean of the curve: lower falls faster).

    Attributes:
        curves: ``(role, order)`` -> the line drawn, for tests; ``legend_labels`` the legend's texts.
    """

    def __init__(self, state: EvalState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground(BACKGROUND)
        self.plot = self.view.addPlot(row=0, col=0)
        style_plot(self.plot, "Region deletion curves")
        self.plot.setLabel("left", "accuracy (%)", color="#cccccc")
        self.plot.setLabel("bottom", "regions covered (region 0, the whole face, never)", color="#cccccc")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.legend = pg.LegendItem(colCount=2, labelTextColor="#dddddd", labelTextSize="8pt", frame=False)
        self.view.addItem(self.legend, row=1, col=0)
        self.curves: dict[tuple[str, str], pg.PlotDataItem] = {}
        self.legend_labels: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        subscribe(self, [(state.events.results, self._on_results)])
        self._on_results()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(480, 300)

    def _on_results(self, *_: object) -> None:
        for item in self.curves.values():
            self.plot.removeItem(item)
        self.curves = {}
        self.legend.clear()
        self.legend_labels = []
        lines = self.state.deletion_lines()
        # Legend in two columns, RAN's then the baseline's: add row by row (the legend fills rows first).
        by_role: dict[str, list[dict]] = {}
        for line in lines:
            by_role.setdefault(line["role"], []).append(line)
        for line in lines:
            pen = pg.mkPen(DELETION_COLORS[line["order"]], width=2, style=ROLE_STYLES[line["role"]])
            item = pg.PlotDataItem(
                line["steps"],
                line["accuracy"],
                pen=pen,
                symbol="o",
                symbolSize=5,
                symbolPen=None,
                symbolBrush=DELETION_COLORS[line["order"]],
            )
            self.plot.addItem(item)
            self.curves[(line["role"], line["order"])] = item
        roles = list(by_role)
        for k in range(max((len(v) for v in by_role.values()), default=0)):
            for role in roles:
                if k < len(by_role[role]):
                    line = by_role[role][k]
                    label = f"{ROLE_LABELS[role]}: {line['label']} (AUC {line['auc']:.1f})"
                    self.legend.addItem(self.curves[(role, line["order"])], label)
                    self.legend_labels.append(label)
        steps = max((len(line["steps"]) for line in lines), default=2)
        self.plot.setXRange(-0.2, steps - 0.8, padding=0)
        self.plot.getAxis("bottom").setTicks([[(float(k), str(k)) for k in range(steps)]])
        self.plot.setYRange(0, 100, padding=0.02)
        n = lines[0]["n"] if lines else 0
        title = "Region deletion curves" + (f" · {n:,} faces" if n else "")
        style = " &nbsp; <span style='color:#cccccc'>━ RAN &nbsp; ╍ baseline</span>" if len(roles) == 2 else ""
        self.plot.setTitle(title + style, color="#dddddd", size="10pt")
