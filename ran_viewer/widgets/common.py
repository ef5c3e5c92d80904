"""Small Qt helpers shared by the widgets: state subscriptions that end with the widget, the colours, the dark theme."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from ran_core.timeline import CLASS_COLORS, class_color
from ran_viewer._env import prepare_qt_environment
from ran_viewer.model.events import Event

# Normally done by ``ran_viewer/__init__.py``; repeated here (idempotent, before any QApplication exists) for installs
# where the package resolves as a namespace package and its __init__ never runs.
prepare_qt_environment()


BACKGROUND = "#1e1f22"


PANEL = "#2b2d31"


TEXT = "#dcdcdc"


ACCENT = "#4c9be8"


RAN_COLOR = "#4c9be8"


BASELINE_COLOR = "#f0a040"


# The deletion curves' orders, in the hues of ``ran-core eval --deletion``'s figure, lightened for the dark canvas.
DELETION_COLORS: dict[str, str] = {"by_weight": "#ef5b50", "reverse": "#5cc05c", "random": "#a8acb0"}


__all__ = [
    "ACCENT",
    "BACKGROUND",
    "BASELINE_COLOR",
    "CLASS_COLORS",
    "DELETION_COLORS",
    "PANEL",
    "RAN_COLOR",
    "TEXT",
    "apply_dark_theme",
    "class_color",
    "subscribe",
]


def subscribe(widget: QWidget, pairs: list[tuple[Event, Callable[..., Any]]]) -> None:
    """Connect state events to a widget's slots, and disconnect them when the widget is destroyed.

    Without this, a state that outlives a closed widget would call into a deleted C++ object.
    """
    for event, callback in pairs:
        event.connect(callback)

    def _disconnect(*_: object) -> None:
        for event, callback in pairs:
            event.disconnect(callback)

    widget.destroyed.connect(_disconnect)


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style with a dark palette, so Qt panels match the dark pyqtgraph canvases."""
    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor("#232427"), QColor(PANEL), QColor(TEXT)
    for role, color in (
        (QPalette.ColorRole.Window, window),
        (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base),
        (QPalette.ColorRole.AlternateBase, QColor("#2f3136")),
        (QPalette.ColorRole.ToolTipBase, QColor("#3a3d42")),
        (QPalette.ColorRole.ToolTipText, text),
        (QPalette.ColorRole.PlaceholderText, QColor("#8a8d91")),
        (QPalette.ColorRole.Text, text),
        (QPalette.ColorRole.Button, QColor("#35373c")),
        (QPalette.ColorRole.ButtonText, text),
        (QPalette.ColorRole.BrightText, QColor("#ff6b6b")),
        (QPalette.ColorRole.Link, QColor(ACCENT)),
        (QPalette.ColorRole.Highlight, QColor("#3d6fa8")),
        (QPalette.ColorRole.HighlightedText, QColor("#ffffff")),
    ):
        pal.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6c6f73"))
    app.setPalette(pal)
    app.setStyleSheet(
        "QToolTip { color: #dcdcdc; background: #3a3d42; border: 1px solid #55585d; }"
        "QDockWidget::title { background: #313338; padding: 4px; }"
        "QStatusBar QLabel { padding: 0 6px; }"
    )
