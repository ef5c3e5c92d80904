"""Binned accuracy as grouped bars, RAN beside the baseline: by estimated head pose (|yaw| bins) and by annotator
agreement (the share of FERPlus annotators who chose the label)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize
from PySide6.QtWidgets import QVBoxLayout, QWidget

from ran_viewer.model.eval_state import DISPUTED_BINS, ROLE_LABELS, ROLES, EvalState
from ran_viewer.widgets.common import BASELINE_COLOR, RAN_COLOR, subscribe
from ran_viewer.widgets.plots import TextPool, plot_widget

ROLE_COLORS = {"ran": RAN_COLOR, "baseline": BASELINE_COLOR}


class QtBinnedAccuracyWidget(QWidget):
    """Grouped bars of the accuracy per bin, RAN beside the baseline, the number of images of each bin under its
    group and each accuracy above its bar. Subclasses name the bins' rows (an :class:`EvalState` method) and axis.

    Attributes:
        values: role -> the accuracies drawn, one per bin (NaN for an empty bin), for tests.
        counts: the images per bin, as labelled.
    """

    BAR_WIDTH = 0.38
    TITLE = ""
    AXIS = ""

    def __init__(self, state: EvalState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.plot = plot_widget(self.TITLE, invert_y=False)
        pi = self.plot.getPlotItem()
        pi.setLabel("left", "accuracy (%)", color="#cccccc")
        pi.setLabel("bottom", self.AXIS, color="#cccccc")
        pi.showGrid(y=True, alpha=0.15)
        self.bars = {
            role: pg.BarGraphItem(x=[], height=[], width=self.BAR_WIDTH, brush=ROLE_COLORS[role], pen=None)
            for role in ROLES
        }
        for item in self.bars.values():
            pi.addItem(item)
        self._texts = TextPool(pi, anchor=(0.5, 1.0))
        self.values: dict[str, np.ndarray] = {}
        self.counts: list[int] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        subscribe(self, [(state.events.results, self._on_results)])
        self._on_results()

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt API
        return QSize(480, 260)

    def _on_results(self, *_: object) -> None:
        pi = self.plot.getPlotItem()
        rows = self.rows()
        roles = [r for r in ROLES if rows and r in rows[0]["acc"]]
        self._texts.reset()
        self.values = {}
        self.counts = [r["n"] for r in rows]
        xs = np.arange(len(rows), dtype=float)
        offsets = {r: (k - (len(roles) - 1) / 2) * self.BAR_WIDTH for k, r in enumerate(roles)}
        for role, item in self.bars.items():
            if role not in roles:
                item.setOpts(x=[], height=[])
                item.setVisible(False)
                continue
            acc = np.array([np.nan if r["acc"][role] is None else r["acc"][role] for r in rows], dtype=float)
            self.values[role] = acc
            keep = np.isfinite(acc)
            item.setOpts(x=xs[keep] + offsets[role], height=acc[keep], width=self.BAR_WIDTH)
            item.setVisible(True)
            for x, v in zip(xs[keep] + offsets[role], acc[keep]):
                self._texts.put(f"{v:.0f}", "#dddddd", float(x), float(v) + 1.0)
        self._texts.finish()
        ticks = [(float(k), f"{r['label']}\nn={r['n']:,}") for k, r in enumerate(rows)]
        pi.getAxis("bottom").setTicks([ticks])
        pi.getAxis("bottom").setHeight(46)
        pi.setXRange(-0.6, max(len(rows), 1) - 0.4, padding=0)
        pi.setYRange(0, 112, padding=0)
        pi.getAxis("left").setTicks([[(v, str(v)) for v in range(0, 101, 20)]])
        keys = [f"<span style='color:{ROLE_COLORS[r]}'>■</span> {ROLE_LABELS[r]}" for r in roles]
        title = self.TITLE + (" &nbsp; " + " &nbsp;".join(keys) if keys else "")
        pi.setTitle(title, color="#dddddd", size="10pt")
        self.setToolTip(self.tooltip())

    def rows(self) -> list[dict]:
        """The bins to draw: ``label``, ``n`` and ``acc`` (role -> percent or ``None``) each."""
        raise NotImplementedError

    def tooltip(self) -> str:
        return ""


class QtPoseBinWidget(QtBinnedAccuracyWidget):
    """Accuracy per estimated |yaw| bin (``< 15°`` … ``≥ 45°``, ``unknown``)."""

    TITLE = "Accuracy by head pose"
    AXIS = "estimated |yaw| (n: images in the bin)"

    def rows(self) -> list[dict]:
        return self.state.pose_bin_rows()

    def tooltip(self) -> str:
        return self.state.analyses.landmarks


class QtAgreementBinWidget(QtBinnedAccuracyWidget):
    """Accuracy by the share of annotators who chose each face's label (FERPlus: 10 people a face)."""

    TITLE = "Accuracy by annotator agreement"
    AXIS = "annotators who chose the label (n: images in the bin)"

    def rows(self) -> list[dict]:
        return self.state.agreement_bin_rows()

    def tooltip(self) -> str:
        rows = self.rows()
        errors = {r: sum(row["errors"].get(r, 0) for row in rows) for r in ROLES if rows and r in rows[0]["errors"]}
        lines = ["Where fewer annotators agreed, people too read the face differently."]
        for role, total in errors.items():
            if total:
                low = sum(row["errors"].get(role, 0) for row in rows if row["bin"] in DISPUTED_BINS)
                lines.append(
                    f"{ROLE_LABELS[role]}: {100 * low / total:.0f} % of its {total:,} errors are on faces where fewer "
                    "than 80 % of the annotators agreed."
                )
        return "\n".join(lines)
