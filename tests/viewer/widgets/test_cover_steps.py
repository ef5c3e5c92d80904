"""Cover regions by weight in the main window: the buttons and keys step, the view shows the patches, the status bar
and the panels show what each step did (fake models, real workers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt


def test_cover_by_weight_steps_forward_and_back(qtbot, window, image_files: list[Path]) -> None:
    state, cover, buttons = window.state, window.cover, window.cover_widget.buttons
    window.open_paths([image_files[0]])
    assert window.wait_idle(10)
    face = state.ran_faces[0]
    shares = state.region_values(face) if state.weight_mode == "alpha*beta" else None
    first = face.regions[1 + int(np.argmax(shares[1:]))]
    clean = face.probabilities.copy()
    assert not buttons["next"].isEnabled() and not buttons["back"].isEnabled()

    window.cover_widget.act_toggle.trigger()
    assert cover.active and window.cover_widget.act_toggle.isChecked() and cover.names[0] == first.name
    assert buttons["next"].isEnabled() and not buttons["back"].isEnabled()
    assert window.message_label.text().startswith(f"covered 0 of {cover.total} regions of face #1 — RAN says")

    window.activateWindow()
    qtbot.keyClick(window, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert window.wait_idle(10)
    assert len(state.occluders) == 1 and 1 in cover.readings
    text = window.message_label.text()
    assert text.startswith(f"covered 1 of {cover.total} regions: {first.name} — RAN now says")
    assert "(was " in text and ", baseline " in text
    assert not np.allclose(state.ran_faces[0].probabilities, clean)  # the models read the covered face
    assert state.ran_faces[0].box == face.box  # the same face, re-read
    assert window.prob_widget.ran_clean.isVisible()  # the uncovered probabilities stay visible beside
    x1, y1, x2, y2 = (round(v) for v in first.box)
    shown = window.ran_view.image_item.image
    assert (shown[max(y1, 0) + 2 : y2 - 2, max(x1, 0) + 2 : x2 - 2] == 128).all()  # the view shows the grey patch
    assert state.selected_region == face.regions.index(first)
    assert window.cover_widget.step_label.text().strip() == f"1/{cover.total} covered {first.name}"

    qtbot.mouseClick(buttons["next"], Qt.MouseButton.LeftButton)
    assert window.wait_idle(10) and len(state.occluders) == 2 and cover.step == 2
    assert window.message_label.text().startswith(f"covered 2 of {cover.total} regions: {first.name}, ")

    qtbot.keyClick(window, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(window, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    assert window.wait_idle(10) and cover.step == 0 and state.occluders == []
    np.testing.assert_allclose(state.ran_faces[0].probabilities, clean)
    assert state.image_name == "img_0.png"  # Shift+arrows step; they never browse to another image

    window.cover_widget.act_toggle.trigger()
    assert not cover.active and not buttons["next"].isEnabled()


def test_cover_by_weight_without_a_face_says_why(qtbot, window) -> None:
    window.cover_widget.act_toggle.trigger()
    assert not window.cover.active and not window.cover_widget.act_toggle.isChecked()
    assert "needs a face" in window.message_label.text()
