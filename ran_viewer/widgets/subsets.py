"""The subset browser: the occlusion and pose > 30° / > 45° images of an evaluated split as a thumbnail gallery, with
both models' predictions, filtered by class, by correctness and by where the two models disagree."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from ran_viewer.model.eval_state import (
    DISAGREEMENT_LABELS,
    DISAGREEMENTS,
    OVERALL,
    ROLE_LABELS,
    BrowserFilter,
    EvalState,
    subset_label,
)
from ran_viewer.widgets.common import subscribe
from ran_viewer.widgets.gallery import QtGalleryWidget

_ALL = -1  # the class combo's "All classes" entry (a combo cannot look up None)


_OUTCOME_LABELS = {"all": "Right or wrong", "correct": "Correct", "wrong": "Wrong"}


class QtSubsetBrowserWidget(QWidget):
    """Browse the images of one evaluation subset, filtered, with true and predicted labels of both models.

    Signals:
        sig_open_image(path): the user clicked a thumbnail; the main window opens it with its attention.
    """

    sig_open_image = Signal(str)

    def __init__(self, state: EvalState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.subset_combo = QComboBox()
        self.class_combo = QComboBox()
        self.outcome_combo = QComboBox()
        for key, label in _OUTCOME_LABELS.items():
            self.outcome_combo.addItem(label, key)
        self.judge_combo = QComboBox()
        self.judge_combo.setToolTip("Whose prediction 'Correct' / 'Wrong' refers to")
        self.disagree_combo = QComboBox()
        for key in DISAGREEMENTS:
            self.disagree_combo.addItem(DISAGREEMENT_LABELS[key], key)
        self.summary = QLabel()
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.gallery = QtGalleryWidget()
        self.gallery.sig_open_image.connect(self.sig_open_image)

        bar = QHBoxLayout()
        for label, w in (
            ("Subset", self.subset_combo),
            ("True class", self.class_combo),
            ("Outcome", self.outcome_combo),
            ("of", self.judge_combo),
            ("Models", self.disagree_combo),
        ):
            bar.addWidget(QLabel(label))
            bar.addWidget(w)
            bar.addSpacing(6)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.summary)
        layout.addWidget(self.gallery, 1)

        self.subset_combo.currentIndexChanged.connect(lambda _i: self._on_combo_changed("subset", self.subset_combo))
        self.class_combo.currentIndexChanged.connect(lambda _i: self._on_combo_changed("true_class", self.class_combo))
        self.outcome_combo.currentIndexChanged.connect(lambda _i: self._on_combo_changed("outcome", self.outcome_combo))
        self.judge_combo.currentIndexChanged.connect(lambda _i: self._on_combo_changed("judge", self.judge_combo))
        self.disagree_combo.currentIndexChanged.connect(
            lambda _i: self._on_combo_changed("disagreement", self.disagree_combo)
        )

        ev = state.events
        subscribe(self, [(ev.results, self._on_results_changed), (ev.browser, self._on_filter_changed)])
        self._on_results_changed(state.results)

    def _on_combo_changed(self, field: str, combo: QComboBox) -> None:
        if combo.signalsBlocked() or combo.currentIndex() < 0:
            return
        value = combo.currentData()
        self.state.set_browser_filter(**{field: None if value == _ALL else value})

    def _on_results_changed(self, _results: dict) -> None:
        s = self.state
        subsets = [n for n in s.subset_names if n != OVERALL] + ([OVERALL] if s.has_results else [])
        _refill(self.subset_combo, [(subset_label(n) if n != OVERALL else "All images", n) for n in subsets])
        _refill(self.class_combo, [("All classes", _ALL)] + [(c, i) for i, c in enumerate(s.class_names)])
        _refill(self.judge_combo, [(ROLE_LABELS[r], r) for r in s.roles])
        both = len(s.roles) == 2
        self.disagree_combo.setEnabled(both)
        self.disagree_combo.setToolTip("" if both else "Evaluate both models to compare them")
        for w in (self.subset_combo, self.class_combo, self.outcome_combo, self.judge_combo):
            w.setEnabled(s.has_results)
        self._on_filter_changed(s.browser_filter)

    def _on_filter_changed(self, f: BrowserFilter) -> None:
        s = self.state
        for combo, value in (
            (self.subset_combo, f.subset),
            (self.class_combo, _ALL if f.true_class is None else f.true_class),
            (self.outcome_combo, f.outcome),
            (self.judge_combo, f.judge),
            (self.disagree_combo, f.disagreement),
        ):
            idx = combo.findData(value)
            if idx >= 0 and idx != combo.currentIndex():
                combo.blockSignals(True)
                combo.setCurrentIndex(idx)
                combo.blockSignals(False)
        if not s.has_results:
            self.summary.setText("")
            self.gallery.set_items([], [], "")
            self.gallery.set_placeholder(
                "No results yet. Run an evaluation in the Evaluation tab — with a subset-list folder (e.g. "
                "FERplus_dir) — to browse the occlusion and pose subsets."
            )
            return
        if len(s.subset_names) == 1:
            self.gallery.set_placeholder(
                "This evaluation has no subsets (no subset-list folder was given); showing all images."
            )
        else:
            self.gallery.set_placeholder("No image passes these filters.")
        items = s.browser_items()
        counts = s.subset_counts(f.subset)
        parts = [
            f"<b>{subset_label(f.subset) if f.subset != OVERALL else 'All images'}</b>: {counts.get('n', 0)} images"
        ]
        for r in s.roles:
            n = counts.get("n", 0)
            ok = counts.get(f"{r}_correct", 0)
            parts.append(f"{ROLE_LABELS[r]} {ok}/{n} right ({100 * ok / n:.1f}%)" if n else f"{ROLE_LABELS[r]} –")
        if "disagree" in counts:
            parts.append(f"models disagree on {counts['disagree']}")
        self.summary.setText(" · ".join(parts))
        shown = f"<b>{len(items)}</b> image{'s' if len(items) != 1 else ''} shown"
        self.gallery.set_items(items, s.roles, shown, border_role=None if len(s.roles) == 2 else s.roles[0])

    def closeEvent(self, event) -> None:  # noqa: N802
        self.gallery.close()
        super().closeEvent(event)


def _refill(combo: QComboBox, entries: list[tuple[str, object]]) -> None:
    combo.blockSignals(True)
    combo.clear()
    for label, data in entries:
        combo.addItem(label, data)
    combo.blockSignals(False)
