"""The buttons of "cover regions by weight": start on the selected face, cover the next region, uncover the last.

The stepping itself is :class:`~ran_viewer.model.cover_by_weight.CoverByWeight` (no Qt); this widget holds its three
actions (the window puts them in the Occlusion menu too, with their shortcuts) and shows which step is on."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QWidget

from ran_viewer.model.cover_by_weight import CoverByWeight
from ran_viewer.widgets.common import subscribe


class QtCoverStepsWidget(QWidget):
    """``[Cover by weight] [◀] [▶] 2/5 center_down``: the covering steps of one face, for a toolbar.

    Attributes:
        act_toggle: start / stop covering (D); ``act_next`` covers the next region (Shift+→), ``act_back`` uncovers
            the last one (Shift+←).
    """

    def __init__(self, cover: CoverByWeight, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cover = cover
        self.act_toggle = self._action(
            "Cover regions by weight",
            "D",
            "Cover the selected face's regions one by one, the one RAN weighs most (α·β share) first, and watch both "
            "models' predictions after each step (ran-core eval --deletion on this face)",
            checkable=True,
        )
        self.act_back = self._action("Uncover the last region", "Shift+Left", "Uncover the region covered last")
        self.act_next = self._action(
            "Cover the next region", "Shift+Right", "Cover the next region, in decreasing weight"
        )
        # The menu says what they do; the toolbar buttons are short.
        self.act_toggle.setIconText("Cover by weight")
        self.act_back.setIconText("◀")
        self.act_next.setIconText("▶")
        self.act_toggle.toggled.connect(self._on_toggled)
        self.act_back.triggered.connect(cover.back)
        self.act_next.triggered.connect(cover.forward)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.buttons: dict[str, QToolButton] = {}
        for key, act in (("toggle", self.act_toggle), ("back", self.act_back), ("next", self.act_next)):
            b = QToolButton()
            b.setDefaultAction(act)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            layout.addWidget(b)
            self.buttons[key] = b
        self.step_label = QLabel("")
        self.step_label.setMinimumWidth(120)
        layout.addWidget(self.step_label)
        subscribe(self, [(cover.events.changed, self._on_changed)])
        self._on_changed()

    def _action(self, text: str, keys: str, tip: str, checkable: bool = False) -> QAction:
        act = QAction(text, self)
        act.setShortcut(QKeySequence(keys))
        act.setCheckable(checkable)
        shown = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        act.setToolTip(f"{tip} ({shown})")
        act.setStatusTip(tip)
        return act

    @property
    def actions_for_menu(self) -> list[QAction]:
        """The three actions, for the window's Occlusion menu (their menu texts say what they do)."""
        return [self.act_toggle, self.act_next, self.act_back]

    def _on_toggled(self, on: bool) -> None:
        if on and not self.cover.active:
            if not self.cover.start():
                self._on_changed()  # it could not start: the button pops back out
        elif not on and self.cover.active:
            self.cover.stop()

    def _on_changed(self) -> None:
        c = self.cover
        self.act_toggle.blockSignals(True)
        self.act_toggle.setChecked(c.active)
        self.act_toggle.blockSignals(False)
        self.act_next.setEnabled(c.can_forward)
        self.act_back.setEnabled(c.can_back)
        if c.active:
            last = f" {c.names[c.step - 1]}" if c.step else ""
            self.step_label.setText(f" {c.step}/{c.total} covered{last}")
            self.step_label.setToolTip(c.status_text())
        else:
            self.step_label.setText("")
            self.step_label.setToolTip("")
