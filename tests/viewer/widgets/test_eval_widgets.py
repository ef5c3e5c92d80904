"""Evaluation view, subset browser and gallery with qtbot: state in, pixels and signals out."""

from __future__ import annotations

import numpy as np
import pytest
from eval_fixtures import CLASSES, make_analyses, make_pair, write_images
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QPixmap

from ran_viewer.model.eval_state import EvalState
from ran_viewer.widgets.common import BASELINE_COLOR, DELETION_COLORS, RAN_COLOR
from ran_viewer.widgets.confusion_matrix import COUNT_CMAP, DIFF_CMAP, cell_colors, format_cell
from ran_viewer.widgets.evaluation import QtEvaluationWidget
from ran_viewer.widgets.gallery import STATUS_COLORS, QtGalleryWidget
from ran_viewer.widgets.subsets import QtSubsetBrowserWidget


@pytest.fixture
def images(tmp_path) -> list[str]:
    return write_images(tmp_path / "imgs", 8)


@pytest.fixture
def state(images) -> EvalState:
    s = EvalState()
    s.set_results(make_pair(paths=images))
    return s


def make_eval_widget(qtbot, state: EvalState) -> QtEvaluationWidget:
    w = QtEvaluationWidget(state)
    qtbot.addWidget(w)
    w.resize(1100, 850)
    w.show()
    qtbot.waitExposed(w)
    return w


def settle(qtbot, gallery: QtGalleryWidget) -> None:
    for _ in range(3):
        qtbot.wait(20)
        gallery.wait_thumbnails()
    qtbot.wait(20)


def click_cell(qtbot, w: QtEvaluationWidget, i: int, j: int) -> None:
    view = w.matrix_view
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.cell_center(i, j).toPoint())


def test_results_fill_heatmap_and_table(qtbot, state) -> None:
    w = make_eval_widget(qtbot, state)
    assert w.matrix_stack.currentIndex() == 1
    np.testing.assert_array_equal(w.matrix_view.values, state.confusion())
    texts = [t.textItem.toPlainText() for t in w.matrix_view._texts]
    assert len(texts) == 9 and texts[0] == "3"  # neutral -> neutral by RAN: samples 0, 1, 7
    assert texts[0] == str(state.confusion()[0, 0])
    assert w.table.rowCount() == 3
    cells = [[w.table.item(r, c).text() for c in range(6)] for r in range(3)]
    assert cells[0] == ["Overall", "8", "0", "75.00", "50.00", "+25.00"]
    assert cells[2][:3] == ["Pose > 30°", "4", "2"]
    assert [w.set_combo.itemData(i) for i in range(w.set_combo.count())] == ["overall", "occlusion", "pose30"]


def test_empty_state_shows_placeholder(qtbot) -> None:
    w = make_eval_widget(qtbot, EvalState())
    assert w.matrix_stack.currentIndex() == 0
    assert w.table.rowCount() == 0 and w.gallery.count() == 0


def test_toggles_drive_state_and_view(qtbot, state) -> None:
    w = make_eval_widget(qtbot, state)
    qtbot.mouseClick(w.source_buttons["difference"], Qt.MouseButton.LeftButton)
    assert state.matrix_source == "difference"
    np.testing.assert_array_equal(w.matrix_view.values, state.confusion("ran") - state.confusion("baseline"))
    qtbot.mouseClick(w.norm_buttons[True], Qt.MouseButton.LeftButton)
    assert state.normalize and "row %" in w.matrix_title.text()
    w.set_combo.setCurrentIndex(w.set_combo.findData("occlusion"))
    assert state.matrix_set == "occlusion"
    w._on_table_clicked(2, 3)
    assert state.matrix_set == "pose30" and w.set_combo.currentData() == "pose30"
    state.set_view(source="baseline")
    assert w.source_buttons["baseline"].isChecked() and not w.source_buttons["ran"].isChecked()


def test_click_cell_fills_gallery_and_thumbnail_opens_image(qtbot, state, images) -> None:
    w = make_eval_widget(qtbot, state)
    click_cell(qtbot, w, 1, 2)  # true happiness, RAN said surprise: sample 6
    assert state.selected_cell == (1, 2)
    assert w.matrix_view.highlight.isVisible()
    assert w.gallery.count() == 1 and "1 image" in w.gallery.title.text()
    assert w.gallery.model.items()[0].path == images[6]
    settle(qtbot, w.gallery)
    with qtbot.waitSignal(w.sig_open_image, timeout=2000) as blocker:
        qtbot.mouseClick(w.gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=w.gallery.item_rect(0).center())
    assert blocker.args == [images[6]]

    click_cell(qtbot, w, 0, 0)
    assert [it.path for it in w.gallery.model.items()] == [images[0], images[1], images[7]]
    opened: list[str] = []
    w.sig_open_image.connect(opened.append)
    pos = w.gallery.item_rect(2).center()
    # A real double-click: press, release, then press reported as a double-click, release.
    qtbot.mouseClick(w.gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseDClick(w.gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseRelease(w.gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert opened == [images[7]]  # opened once, not once per click


def test_heatmap_colours_follow_colormap(qtbot, state) -> None:
    w = make_eval_widget(qtbot, state)
    view = w.matrix_view

    def pixel(i: int, j: int) -> QColor:
        # Off-centre, away from the number written in the cell.
        p = view.cell_center(i, j, 0.12, 0.15).toPoint()
        return view.viewport().grab().toImage().pixelColor(p)

    def close(c: QColor, rgb, tol: int = 4) -> bool:
        return all(abs(a - int(b)) <= tol for a, b in zip((c.red(), c.green(), c.blue()), rgb))

    counts = state.confusion()
    for i in range(3):
        for j in range(3):
            expected = COUNT_CMAP.map(counts[i, j] / counts.max(), mode="byte")[:3]
            assert close(pixel(i, j), expected), (i, j, pixel(i, j).getRgb(), expected)
    # The largest count is the darkest blue, an empty cell is near white.
    assert pixel(0, 0).lightness() < pixel(0, 2).lightness()

    state.set_view(source="difference")
    diff = state.confusion()
    m = np.abs(diff).max()
    for i, j in [(0, 0), (0, 1), (1, 1)]:
        expected = DIFF_CMAP.map((diff[i, j] + m) / (2 * m), mode="byte")[:3]
        assert close(pixel(i, j), expected), (i, j, diff[i, j])
    pos = np.argwhere(diff > 0)[0]
    neg = np.argwhere(diff < 0)[0]
    assert pixel(*pos).red() > pixel(*pos).blue() and pixel(*neg).blue() > pixel(*neg).red()


def test_cell_colours_and_labels_helpers() -> None:
    v = np.array([[np.nan, 50.0], [0.0, 100.0]])
    rgba = cell_colors(v, difference=False, normalize=True)
    assert tuple(rgba[0, 0]) == (215, 215, 215, 255)
    assert tuple(rgba[1, 1][:3]) == tuple(COUNT_CMAP.map(1.0, mode="byte")[:3])
    assert format_cell(3, True, False) == "+3" and format_cell(0, True, False) == "0"
    assert format_cell(12.345, False, True) == "12.3" and format_cell(float("nan"), False, True) == "–"


def test_gallery_loads_thumbnails_lazily_and_colours_borders(qtbot, state, images) -> None:
    g = QtGalleryWidget()
    qtbot.addWidget(g)
    g.resize(700, 300)
    g.show()
    qtbot.waitExposed(g)
    items = state.items([0, 5]) + state.items([1])
    items[2] = type(items[2])(**{**items[2].__dict__, "path": "/nonexistent/x.png"})
    g.set_items(items, ["ran", "baseline"], "three", border_role="ran")
    settle(qtbot, g)
    assert isinstance(g.model.data(g.model.index(0), Qt.ItemDataRole.DecorationRole), QPixmap)
    assert g.model.cache.failed("/nonexistent/x.png")
    img = g.view.viewport().grab().toImage()
    for row, status in ((0, "correct"), (1, "wrong")):
        r = g.item_rect(row)
        border = img.pixelColor(QPoint(r.center().x(), r.top() + 6))
        assert border == STATUS_COLORS[status], (row, border.getRgb())
    assert "Baseline: happiness" in g.model.data(g.model.index(2), Qt.ItemDataRole.ToolTipRole)


def test_subset_browser_filters_and_opens_images(qtbot, state, images) -> None:
    b = QtSubsetBrowserWidget(state)
    qtbot.addWidget(b)
    b.resize(900, 600)
    b.show()
    qtbot.waitExposed(b)
    assert b.subset_combo.currentData() == "occlusion"
    assert b.gallery.count() == 4 and "RAN 4/4 right" in b.summary.text()
    b.subset_combo.setCurrentIndex(b.subset_combo.findData("overall"))
    b.outcome_combo.setCurrentIndex(b.outcome_combo.findData("wrong"))
    assert state.browser_filter.subset == "overall" and state.browser_filter.outcome == "wrong"
    assert [it.index for it in b.gallery.model.items()] == [5, 6]
    b.disagree_combo.setCurrentIndex(b.disagree_combo.findData("baseline_wins"))
    assert [it.index for it in b.gallery.model.items()] == [6]
    b.outcome_combo.setCurrentIndex(b.outcome_combo.findData("all"))
    b.disagree_combo.setCurrentIndex(b.disagree_combo.findData("disagree"))
    b.class_combo.setCurrentIndex(b.class_combo.findText(CLASSES[1]))
    assert state.browser_filter.true_class == 1
    assert [it.index for it in b.gallery.model.items()] == [3, 6]
    b.class_combo.setCurrentIndex(0)
    assert state.browser_filter.true_class is None
    state.set_browser_filter(true_class=0)  # state -> widget
    assert b.class_combo.currentText() == CLASSES[0]
    settle(qtbot, b.gallery)
    with qtbot.waitSignal(b.sig_open_image, timeout=2000) as blocker:
        qtbot.mouseClick(b.gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=b.gallery.item_rect(0).center())
    assert blocker.args == [b.gallery.model.items()[0].path]


def test_subset_browser_without_results_says_what_to_do(qtbot) -> None:
    s = EvalState()
    b = QtSubsetBrowserWidget(s)
    qtbot.addWidget(b)
    assert b.gallery.count() == 0 and "Run an evaluation" in b.gallery.view.placeholder
    assert not b.subset_combo.isEnabled()
    s.set_results(make_pair())
    assert b.subset_combo.isEnabled() and b.gallery.count() == 4


def test_bad_form_shows_message_not_crash(qtbot, tmp_path) -> None:
    s = EvalState()
    w = make_eval_widget(qtbot, s)
    w.root_edit.setText(str(tmp_path / "missing"))
    assert s.root == str(tmp_path / "missing")
    qtbot.mouseClick(w.run_button, Qt.MouseButton.LeftButton)
    assert w.worker is None and s.status == "error"
    assert "Dataset folder not found" in w.status_label.text() and "at least one model" in w.status_label.text()
    assert w.status_label.isVisible()


def test_warnings_shown_apart_from_the_result(qtbot, state) -> None:
    w = make_eval_widget(qtbot, state)
    state.set_status("done", "Evaluated 8 images", ["No image of the Occlusion list is in this split."])
    assert w.status_label.text() == "Evaluated 8 images"
    assert w.warning_label.isVisible() and "Occlusion list" in w.warning_label.text()
    state.set_status("running", "Starting…")
    assert not w.warning_label.isVisible() and not w.root_button.isEnabled()


def test_widgets_unsubscribe_when_deleted(qtbot) -> None:
    s = EvalState()
    w = QtEvaluationWidget(s)
    b = QtSubsetBrowserWidget(s)
    assert len(s.events.results) == 5  # the evaluation view, its pose, agreement and deletion plots, the browser
    w.deleteLater()
    b.deleteLater()
    qtbot.waitUntil(lambda: len(s.events.results) == 0, timeout=2000)
    s.set_results(make_pair())  # no callback into a deleted widget


def _color_at(widget, plot_item, x: float, y: float) -> QColor:
    """The colour the grabbed ``widget`` shows at data point ``(x, y)`` of ``plot_item``."""
    scene = plot_item.getViewBox().mapViewToScene(QPointF(x, y))
    view = plot_item.scene().views()[0]
    pos = view.mapTo(widget, view.mapFromScene(scene))
    return widget.grab().toImage().pixelColor(pos)


def test_pose_bins_and_deletion_curves_are_plotted(qtbot, state) -> None:
    w = make_eval_widget(qtbot, state)
    assert not w.analysis_panel.isVisible()  # nothing to show without them
    state.set_results(make_pair(), make_analyses())
    assert w.analysis_panel.isVisible() and w.pose_widget.isVisible() and w.deletion_widget.isVisible()
    qtbot.wait(20)

    pose = w.pose_widget
    rows = state.pose_bin_rows()
    np.testing.assert_allclose(pose.values["ran"], [100.0, 50.0, 100.0, np.nan, 50.0])
    np.testing.assert_allclose(pose.values["baseline"], [200 / 3, 50.0, 0.0, np.nan, 50.0])
    assert pose.counts == [r["n"] for r in rows] == [3, 2, 1, 0, 2]
    ticks = [t[1] for t in pose.plot.getPlotItem().getAxis("bottom")._tickLevels[0]]
    assert ticks == ["< 15°\nn=3", "15–30°\nn=2", "30–45°\nn=1", "≥ 45°\nn=0", "unknown\nn=2"]
    # the bars are drawn: RAN's left of each group, the baseline's right, in their colours
    pi = pose.plot.getPlotItem()
    assert _color_at(pose, pi, 0 - 0.19, 50).name() == RAN_COLOR
    assert _color_at(pose, pi, 0 + 0.19, 30).name() == BASELINE_COLOR
    assert _color_at(pose, pi, 2 + 0.19, 30).name() != BASELINE_COLOR  # the baseline got 0 % at 30–45°

    agree = w.agreement_widget
    assert agree.isVisible()
    np.testing.assert_allclose(agree.values["ran"], [50.0, 0.0, np.nan, 100.0, 100.0])
    np.testing.assert_allclose(agree.values["baseline"], [0.0, 0.0, np.nan, 100.0, 75.0])
    ticks = [t[1] for t in agree.plot.getPlotItem().getAxis("bottom")._tickLevels[0]]
    assert ticks == ["> 50–60 %\nn=2", "60–70 %\nn=1", "70–80 %\nn=0", "80–90 %\nn=1", "90–100 %\nn=4"]
    assert "RAN: 100 % of its 2 errors" in agree.toolTip() and "Baseline: 75 % of its 4 errors" in agree.toolTip()
    assert pose.toolTip() == "landmarks for 6 of 8 faces"

    curves = w.deletion_widget.curves
    assert len(curves) == 6
    for line in state.deletion_lines():
        x, y = curves[(line["role"], line["order"])].getData()
        np.testing.assert_allclose(x, line["steps"])
        np.testing.assert_allclose(y, line["accuracy"])
    ran_fast = curves[("ran", "by_weight")].opts["pen"]
    assert ran_fast.style() == Qt.PenStyle.SolidLine and ran_fast.color().name() == DELETION_COLORS["by_weight"]
    assert curves[("baseline", "by_weight")].opts["pen"].style() == Qt.PenStyle.DashLine
    labels = w.deletion_widget.legend_labels
    auc = make_analyses().deletion["ran"].auc
    assert f"RAN: most-weighted first (AUC {auc['by_weight']:.1f})" in labels
    assert any(lab.startswith("Baseline: most-sensitive first (AUC") for lab in labels)
    dpi = w.deletion_widget.plot
    assert _color_at(w.deletion_widget, dpi, 0.5, 57.5).name() == DELETION_COLORS["by_weight"]  # on RAN's line

    state.set_results(make_pair())  # a run without them hides the plots again
    assert not w.analysis_panel.isVisible() and w.deletion_widget.curves == {}


def test_pose_and_deletion_checkboxes_drive_the_state(qtbot) -> None:
    s = EvalState()
    w = make_eval_widget(qtbot, s)
    assert not w.pose_check.isChecked() and not w.deletion_check.isChecked()  # off by default: they cost time
    qtbot.mouseClick(w.pose_check, Qt.MouseButton.LeftButton)
    assert s.compute_pose_bins and not s.compute_deletion
    s.set_options(deletion=True)  # state -> widget
    assert w.deletion_check.isChecked()
    assert not w.agreement_check.isChecked()
    qtbot.mouseClick(w.agreement_check, Qt.MouseButton.LeftButton)
    assert s.compute_agreement
    s.set_status("running", "Starting…")
    assert not w.pose_check.isEnabled() and not w.deletion_check.isEnabled() and not w.agreement_check.isEnabled()


def test_agreement_checkbox_is_greyed_out_for_datasets_without_votes(qtbot) -> None:
    s = EvalState()
    w = make_eval_widget(qtbot, s)
    s.set_options(agreement=True)
    assert w.agreement_check.isEnabled() and "Not available" not in w.agreement_check.toolTip()
    w.dataset_combo.setCurrentText("affectnet")
    assert s.dataset == "affectnet"
    assert not w.agreement_check.isEnabled() and w.agreement_check.isChecked()  # kept for a switch back
    assert "Not available for affectnet" in w.agreement_check.toolTip()
    s.set_status("done", "")
    assert not w.agreement_check.isEnabled()  # a finished run does not re-enable it
    w.dataset_combo.setCurrentText("ferplus")
    assert w.agreement_check.isEnabled() and "Not available" not in w.agreement_check.toolTip()
    s.set_status("running", "Starting…")
    assert not w.agreement_check.isEnabled()
