"""The evaluation view: run RAN and the baseline on a dataset split, compare confusion matrices and accuracies per set
(overall, occlusion, pose > 30°, pose > 45°), browse the images behind any confusion cell, and on request see the
accuracy by estimated head pose or by annotator agreement and the region deletion curves."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QSplitter,
    QStackedWidget,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ran_viewer.model.eval_state import (
    DEFAULT_DATASETS,
    DEFAULT_SPLITS,
    ROLE_LABELS,
    ROLES,
    EvalAnalyses,
    EvalState,
    subset_label,
)
from ran_viewer.services.evaluation import CoreBackend
from ran_viewer.widgets.binned_accuracy import QtAgreementBinWidget, QtPoseBinWidget
from ran_viewer.widgets.common import subscribe
from ran_viewer.widgets.confusion_matrix import SOURCE_LABELS, QtConfusionMatrixView
from ran_viewer.widgets.deletion_curves import QtDeletionCurveWidget
from ran_viewer.widgets.gallery import QtGalleryWidget, is_dark, outcome_color
from ran_viewer.workers.evaluation import EvalWorker

AGREEMENT_TIP = (
    "Also compute the accuracy by how many annotators chose each face's label (FERPlus: 10 people a face;\n"
    "50–60 %, …, 90–100 % of their votes), to tell errors on faces people read alike from errors on\n"
    "faces people dispute. Costs nothing extra; FERPlus only (ran-core eval --by-agreement)."
)


class QtEvaluationWidget(QWidget):
    """Evaluate RAN and the baseline on a dataset split and compare them.

    Signals:
        sig_open_image(path): the user clicked a thumbnail; the main window opens it with its attention.
    """

    sig_open_image = Signal(str)

    def __init__(self, state: EvalState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.backend = CoreBackend()
        self.worker: EvalWorker | None = None
        self._warnings: list[str] = []
        self._analyses: EvalAnalyses | None = None
        self._build_form()
        self._build_results()
        layout = QVBoxLayout(self)
        layout.addWidget(self.form_box)
        layout.addWidget(self.body_splitter, 1)

        ev = state.events
        subscribe(
            self,
            [
                (ev.form, self._on_form_changed),
                (ev.options, self._on_form_changed),
                (ev.status, self._on_status_changed),
                (ev.progress, self._on_progress_changed),
                (ev.results, self._on_results_changed),
                (ev.view, self._on_view_changed),
                (ev.cell, self._on_cell_changed),
            ],
        )
        app = QCoreApplication.instance()
        if app is not None:
            # A QThread destroyed while running aborts the process: never let the app quit under a running worker.
            app.aboutToQuit.connect(self.shutdown)
        self._on_form_changed()
        self._on_status_changed(state.status, state.message)
        self._on_results_changed(state.results)

    # ---- building -------------------------------------------------------------------------------------------
    def _build_form(self) -> None:
        try:
            from ran_core.data import DATASET_NAMES

            datasets = list(DATASET_NAMES)
        except Exception:  # noqa: BLE001 - the form still works; running reports the real error
            datasets = list(DEFAULT_DATASETS)
        try:
            from ran_core import list_bundled_models

            bundled = list_bundled_models()
        except Exception:  # noqa: BLE001
            bundled = []
        box = QGroupBox("Dataset and models")
        grid = QGridLayout(box)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(4, 1)
        grid.setHorizontalSpacing(8)

        self.dataset_combo = QComboBox()
        self.dataset_combo.addItems(datasets)
        self.split_combo = QComboBox()
        self.split_combo.addItems(list(DEFAULT_SPLITS))
        self.root_edit = QLineEdit()
        self.root_edit.setPlaceholderText("folder of the dataset (e.g. …/ferplus)")
        self.root_button = QToolButton(text="…")
        self.root_button.setToolTip("Choose the dataset folder")
        self.lists_edit = QLineEdit()
        self.lists_edit.setPlaceholderText("optional: folder of the RAN occlusion / pose lists (e.g. …/FERplus_dir)")
        self.lists_button = QToolButton(text="…")
        self.lists_button.setToolTip("Choose the subset-list folder")
        self.model_combos: dict[str, QComboBox] = {}
        self.model_buttons: dict[str, QToolButton] = {}
        for role in ROLES:
            combo = QComboBox()
            combo.setEditable(True)
            combo.addItems(bundled)
            combo.setCurrentText("")
            combo.lineEdit().setPlaceholderText("bundled model name or saved model folder")
            combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
            self.model_combos[role] = combo
            button = QToolButton(text="…")
            button.setToolTip(f"Choose a saved {ROLE_LABELS[role]} model")
            self.model_buttons[role] = button
        self.limit_spin = QSpinBox()
        self.limit_spin.setRange(0, 10_000_000)
        self.limit_spin.setSpecialValueText("all")
        self.limit_spin.setSingleStep(100)
        self.limit_spin.setToolTip("Evaluate at most this many images (a class-balanced sample), for a quick look")

        def row(*widgets: QWidget) -> QHBoxLayout:
            h = QHBoxLayout()
            h.setSpacing(2)
            for w in widgets:
                h.addWidget(w, 0 if isinstance(w, QToolButton) else 1)
            return h

        grid.addWidget(QLabel("Dataset"), 0, 0)
        dh = QHBoxLayout()
        dh.addWidget(self.dataset_combo)
        dh.addSpacing(10)
        dh.addWidget(QLabel("Split"))
        dh.addWidget(self.split_combo)
        dh.addSpacing(10)
        dh.addWidget(QLabel("Images"))
        dh.addWidget(self.limit_spin)
        dh.addStretch(1)
        grid.addLayout(dh, 0, 1)
        grid.addWidget(QLabel("Folder"), 1, 0)
        grid.addLayout(row(self.root_edit, self.root_button), 1, 1)
        grid.addWidget(QLabel("Subset lists"), 2, 0)
        grid.addLayout(row(self.lists_edit, self.lists_button), 2, 1)
        self.pose_check = QCheckBox("Accuracy by head pose")
        self.pose_check.setToolTip(
            "Also compute the accuracy in bins of estimated |yaw| (< 15°, 15–30°, 30–45°, ≥ 45°) for both models.\n"
            "The head pose comes from facial landmarks, found with a face detector on every image the first time\n"
            "(slow: about as long as evaluating) and cached for the next runs (ran-core eval --pose-bins)."
        )
        self.agreement_check = QCheckBox("By annotator agreement")
        self.agreement_check.setToolTip(AGREEMENT_TIP)
        self.deletion_check = QCheckBox("Region deletion curves")
        self.deletion_check.setToolTip(
            "Also measure whether the attention is faithful: cover the regions one by one in decreasing order of\n"
            "RAN's weight, in increasing order and at random, and record the accuracy after each step, for both\n"
            "models (ran-core eval --deletion). Costs about 25 evaluations' worth of forward passes."
        )
        grid.addWidget(QLabel("Also"), 3, 0)
        oh = QHBoxLayout()
        oh.addWidget(self.pose_check)
        oh.addSpacing(12)
        oh.addWidget(self.agreement_check)
        oh.addSpacing(12)
        oh.addWidget(self.deletion_check)
        oh.addStretch(1)
        grid.addLayout(oh, 3, 1)
        grid.addWidget(QLabel("RAN model"), 0, 3)
        grid.addLayout(row(self.model_combos["ran"], self.model_buttons["ran"]), 0, 4)
        grid.addWidget(QLabel("Baseline model"), 1, 3)
        grid.addLayout(row(self.model_combos["baseline"], self.model_buttons["baseline"]), 1, 4)

        self.run_button = QPushButton("Run evaluation")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.progress_bar = QProgressBar()
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setMinimumWidth(160)
        run_row = QHBoxLayout()
        run_row.addWidget(self.run_button)
        run_row.addWidget(self.cancel_button)
        run_row.addWidget(self.progress_bar, 1)
        grid.addLayout(run_row, 2, 3, 1, 2)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid.addWidget(self.status_label, 4, 0, 1, 5)
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        grid.addWidget(self.warning_label, 5, 0, 1, 5)
        self.form_box = box

        self.dataset_combo.currentTextChanged.connect(lambda t: self.state.set_form(dataset=t))
        self.split_combo.currentTextChanged.connect(lambda t: self.state.set_form(split=t))
        self.root_edit.textChanged.connect(lambda t: self.state.set_form(root=t))
        self.lists_edit.textChanged.connect(lambda t: self.state.set_form(lists_dir=t))
        for role, combo in self.model_combos.items():
            combo.currentTextChanged.connect(lambda t, r=role: self.state.set_model(r, t))
            self.model_buttons[role].clicked.connect(lambda *_, r=role: self._on_browse_model(r))
        self.limit_spin.valueChanged.connect(self._on_limit_changed)
        self.pose_check.toggled.connect(lambda on: self.state.set_options(pose_bins=on))
        self.agreement_check.toggled.connect(lambda on: self.state.set_options(agreement=on))
        self.deletion_check.toggled.connect(lambda on: self.state.set_options(deletion=on))
        self.root_button.clicked.connect(self._on_browse_root)
        self.lists_button.clicked.connect(self._on_browse_lists)
        self.run_button.clicked.connect(self._on_run_clicked)
        self.cancel_button.clicked.connect(self._on_cancel_clicked)

    def _build_results(self) -> None:
        # Confusion matrix panel: source selector, counts / row-% toggle, set chooser, heatmap.
        self.source_group = QButtonGroup(self)
        self.source_buttons: dict[str, QToolButton] = {}
        bar = QHBoxLayout()
        bar.setSpacing(0)
        for k, (source, label) in enumerate(SOURCE_LABELS.items()):
            b = QToolButton(text=label)
            b.setCheckable(True)
            b.setAutoRaise(False)
            b.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
            self.source_group.addButton(b, k)
            self.source_buttons[source] = b
            bar.addWidget(b)
            b.clicked.connect(lambda *_, s=source: self._on_source_clicked(s))
        bar.addSpacing(12)
        self.norm_group = QButtonGroup(self)
        self.norm_buttons: dict[bool, QToolButton] = {}
        for normalize, label in ((False, "Counts"), (True, "Row %")):
            b = QToolButton(text=label)
            b.setCheckable(True)
            b.setToolTip("Row %: each row divided by its total (per-class recall on the diagonal)" if normalize else "")
            self.norm_group.addButton(b)
            self.norm_buttons[normalize] = b
            bar.addWidget(b)
            b.clicked.connect(lambda *_, n=normalize: self.state.set_view(normalize=n))
        bar.addSpacing(12)
        bar.addWidget(QLabel("Set "))
        self.set_combo = QComboBox()
        self.set_combo.currentIndexChanged.connect(self._on_set_combo_changed)
        bar.addWidget(self.set_combo)
        bar.addStretch(1)

        self.matrix_view = QtConfusionMatrixView()
        self.matrix_view.setMinimumSize(360, 320)
        self.matrix_view.sig_cell_clicked.connect(lambda i, j: self.state.select_cell((i, j)))
        self.matrix_title = QLabel()
        self.matrix_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.matrix_placeholder = QLabel(
            "No results yet.\nChoose a dataset folder and at least one model, then press Run evaluation."
        )
        self.matrix_placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.matrix_placeholder.setStyleSheet("color: gray;")
        self.matrix_stack = QStackedWidget()
        self.matrix_stack.addWidget(self.matrix_placeholder)
        page = QWidget()
        pv = QVBoxLayout(page)
        pv.setContentsMargins(0, 0, 0, 0)
        pv.addWidget(self.matrix_title)
        pv.addWidget(self.matrix_view, 1)
        self.matrix_stack.addWidget(page)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addLayout(bar)
        lv.addWidget(self.matrix_stack, 1)

        # Accuracy table.
        self.table = QTableWidget(0, 6)
        self.table.setHorizontalHeaderLabels(["Set", "n", "missing", "RAN acc", "Baseline acc", "Δ (RAN − base)"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.cellClicked.connect(self._on_table_clicked)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.setContentsMargins(0, 0, 0, 0)
        acc_label = QLabel("<b>Accuracy per set</b>")
        rv.addWidget(acc_label)
        rv.addWidget(self.table, 1)
        hint = QLabel(
            "Accuracy in percent. n: images evaluated; missing: list entries not found in the split. "
            "Click a row for its confusion matrix; hover an accuracy for the mean class accuracy."
        )
        hint.setWordWrap(True)
        hint.setStyleSheet("color: gray;")
        rv.addWidget(hint)

        self.gallery = QtGalleryWidget()
        self.gallery.set_placeholder("Click a cell of the confusion matrix to see its images here.")
        self.gallery.sig_open_image.connect(self.sig_open_image)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(left)
        top.addWidget(right)
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 2)
        top.setSizes([620, 420])
        self.results_splitter = QSplitter(Qt.Orientation.Vertical)
        self.results_splitter.addWidget(top)
        self.results_splitter.addWidget(self.gallery)
        self.results_splitter.setStretchFactor(0, 3)
        self.results_splitter.setStretchFactor(1, 2)
        self.results_splitter.setSizes([560, 330])
        self.results_splitter.setChildrenCollapsible(False)

        # Pose bins and deletion curves: a column of the full results height, shown when the run computed them.
        self.pose_widget = QtPoseBinWidget(self.state)
        self.agreement_widget = QtAgreementBinWidget(self.state)
        self.deletion_widget = QtDeletionCurveWidget(self.state)
        self.analysis_panel = QSplitter(Qt.Orientation.Vertical)
        self.analysis_panel.addWidget(self.pose_widget)
        self.analysis_panel.addWidget(self.agreement_widget)
        self.analysis_panel.addWidget(self.deletion_widget)
        self.analysis_panel.setChildrenCollapsible(False)
        self.analysis_panel.setStretchFactor(0, 2)
        self.analysis_panel.setStretchFactor(1, 2)
        self.analysis_panel.setStretchFactor(2, 3)  # the deletion plot carries its legend beneath
        self.analysis_panel.setSizes([300, 300, 420])
        self.body_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.body_splitter.addWidget(self.results_splitter)
        self.body_splitter.addWidget(self.analysis_panel)
        self.body_splitter.setStretchFactor(0, 2)
        self.body_splitter.setStretchFactor(1, 1)
        self.body_splitter.setSizes([1040, 520])
        self.body_splitter.setChildrenCollapsible(False)

    # ---- the form -------------------------------------------------------------------------------------------
    def _on_form_changed(self) -> None:
        s = self.state
        _set_combo_text(self.dataset_combo, s.dataset)
        _set_combo_text(self.split_combo, s.split)
        _set_line_text(self.root_edit, s.root)
        _set_line_text(self.lists_edit, s.lists_dir)
        for role, combo in self.model_combos.items():
            if combo.currentText() != s.models[role]:
                combo.blockSignals(True)
                combo.setCurrentText(s.models[role])
                combo.blockSignals(False)
        self.limit_spin.blockSignals(True)
        self.limit_spin.setValue(s.max_samples or 0)
        self.limit_spin.blockSignals(False)
        for check, on in (
            (self.pose_check, s.compute_pose_bins),
            (self.agreement_check, s.compute_agreement),
            (self.deletion_check, s.compute_deletion),
        ):
            if check.isChecked() != on:
                check.blockSignals(True)
                check.setChecked(on)
                check.blockSignals(False)
        self._update_agreement_check()

    def _update_agreement_check(self) -> None:
        # Only datasets with annotator votes have an agreement to bin by: the box stays as the user left it (it
        # applies again on switching back to FERPlus) but is greyed out and says why.
        available = self.state.agreement_available
        self.agreement_check.setEnabled(available and self.state.status != "running")
        name = self.state.dataset or "this dataset"
        note = "" if available else f"\n\nNot available for {name}: its labels come without the annotators' votes."
        self.agreement_check.setToolTip(AGREEMENT_TIP + note)

    def _on_limit_changed(self, value: int) -> None:
        self.state.max_samples = value or None

    def _on_browse_root(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Dataset folder", self.state.root)
        if path:
            self.state.set_form(root=path)

    def _on_browse_lists(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Subset-list folder (e.g. FERplus_dir)", self.state.lists_dir)
        if path:
            self.state.set_form(lists_dir=path)

    def _on_browse_model(self, role: str) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            f"Saved {ROLE_LABELS[role]} model",
            self.state.models[role],
            "ran_core saved models (config.json model.safetensors);;All files (*)",
        )
        if path:
            self.state.set_model(role, path)

    # ---- running --------------------------------------------------------------------------------------------
    def _on_run_clicked(self) -> None:
        self.run_evaluation()

    def run_evaluation(self) -> bool:
        """Start evaluating the form's models in the background; ``False`` (with a message shown) if the form is
        not ready."""
        try:
            request = self.state.make_request()
        except ValueError as exc:
            self.state.set_status("error", str(exc))
            return False
        self._stop_worker()
        worker = EvalWorker(request, backend=self.backend)
        worker.sig_progress.connect(self._on_worker_progress)
        worker.sig_finished.connect(self._on_worker_finished)
        worker.sig_analyses.connect(self._on_worker_analyses)
        worker.sig_error.connect(self._on_worker_error)
        worker.sig_cancelled.connect(self._on_worker_cancelled)
        worker.sig_warning.connect(self._on_worker_warning)
        self.worker = worker
        self._warnings = []
        self._analyses = None
        self.state.set_progress(0, 0, "Starting")
        self.state.set_status("running", "Starting…")
        worker.start()
        return True

    def cancel_evaluation(self) -> None:
        """Ask the running evaluation to stop (it stops after the current batch)."""
        if self.worker is not None and self.worker.isRunning():
            self.worker.stop()
            self.state.set_status("running", "Cancelling…")

    def _on_cancel_clicked(self) -> None:
        self.cancel_evaluation()

    def _stop_worker(self) -> None:
        """Stop, wait for and disconnect the current worker before it is replaced or the widget closes."""
        worker, self.worker = self.worker, None
        if worker is None:
            return
        worker.stop()
        worker.wait()
        for sig in (
            worker.sig_progress,
            worker.sig_finished,
            worker.sig_analyses,
            worker.sig_error,
            worker.sig_cancelled,
            worker.sig_warning,
        ):
            try:
                sig.disconnect()
            except (RuntimeError, TypeError):
                pass
        worker.deleteLater()

    def _is_current(self) -> bool:
        return self.sender() is not None and self.sender() is self.worker

    def _on_worker_progress(self, done: int, total: int, stage: str) -> None:
        if self._is_current():
            self.state.set_progress(done, total, stage)

    def _on_worker_warning(self, message: str) -> None:
        if self._is_current():
            self._warnings.append(message)

    def _on_worker_analyses(self, analyses: EvalAnalyses) -> None:
        if self._is_current():
            self._analyses = analyses  # shown with the results that follow

    def _on_worker_finished(self, results: dict) -> None:
        if not self._is_current():
            return
        self._stop_worker()
        analyses, self._analyses = self._analyses, None
        try:
            self.state.set_results(results, analyses)
        except ValueError as exc:
            self.state.set_status("error", str(exc))
            return
        parts = []
        for role in self.state.roles:
            res = results[role]
            parts.append(f"{ROLE_LABELS[role]} {res.overall.accuracy:.2f}%")
        n = next(iter(results.values())).overall.n if results else 0
        msg = f"Evaluated {n} images: " + ", ".join(parts)
        warnings = list(self._warnings)
        unreadable = max((getattr(r, "unreadable", 0) for r in results.values()), default=0)
        if unreadable:
            warnings.append(f"{unreadable} images could not be read and were left out.")
        empty = self.state.empty_subsets()
        if empty:
            names = ", ".join(subset_label(e) for e in empty)
            hint = ""
            if self.state.dataset == "ferplus" and self.state.split != "test":
                hint = " The authors' FERPlus lists name test-split images: choose split 'test'."
            warnings.append(f"No image of the {names} list{'s' if len(empty) > 1 else ''} is in this split.{hint}")
        self.state.set_status("done", msg, warnings)

    def _on_worker_error(self, message: str) -> None:
        if self._is_current():
            self._stop_worker()
            self.state.set_status("error", message)

    def _on_worker_cancelled(self) -> None:
        if self._is_current():
            self._stop_worker()
            self.state.set_status("cancelled", "Evaluation cancelled.")

    def _on_status_changed(self, status: str, message: str) -> None:
        running = status == "running"
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        for w in (
            self.dataset_combo,
            self.split_combo,
            self.root_edit,
            self.lists_edit,
            self.limit_spin,
            self.pose_check,
            self.deletion_check,
        ):
            w.setEnabled(not running)
        self._update_agreement_check()
        for w in (*self.model_combos.values(), *self.model_buttons.values(), self.root_button, self.lists_button):
            w.setEnabled(not running)
        self.progress_bar.setVisible(running)
        pal = self.palette()
        colors = {
            "error": outcome_color(False, pal).name(),
            "done": outcome_color(True, pal).name(),
            "cancelled": "#e0a030" if is_dark(pal) else "#9a6700",
        }
        self.status_label.setStyleSheet(f"color: {colors[status]};" if status in colors else "")
        self.status_label.setText(message)
        self.status_label.setVisible(bool(message))
        self.warning_label.setStyleSheet(f"color: {colors['cancelled']};")
        self.warning_label.setText("\n".join(f"⚠ {w}" for w in self.state.warnings))
        self.warning_label.setVisible(bool(self.state.warnings))

    def _on_progress_changed(self, done: int, total: int, stage: str) -> None:
        if total > 0:
            self.progress_bar.setRange(0, total)
            self.progress_bar.setValue(min(done, total))
            self.progress_bar.setFormat(f"{stage}: %v / %m")
        else:
            self.progress_bar.setRange(0, 0)  # busy indicator while loading
            self.progress_bar.setFormat(stage)
        self.progress_bar.setToolTip(stage)
        if self.state.status == "running" and stage:
            self.status_label.setStyleSheet("")
            self.status_label.setText(f"{stage}…")
            self.status_label.setVisible(True)

    def shutdown(self) -> None:
        """Stop the running evaluation and thumbnail loading, and wait for them (call before the app quits)."""
        self._stop_worker()
        self.gallery.model.cache.shutdown()

    def closeEvent(self, event) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    # ---- results --------------------------------------------------------------------------------------------
    def _on_results_changed(self, results: dict) -> None:
        s = self.state
        self.matrix_stack.setCurrentIndex(1 if s.has_results else 0)
        available = s.available_sources
        for source, b in self.source_buttons.items():
            b.setEnabled(source in available)
            b.setVisible(source in available or not s.has_results)
        self.set_combo.blockSignals(True)
        self.set_combo.clear()
        for name in s.subset_names:
            self.set_combo.addItem(subset_label(name), name)
        self.set_combo.blockSignals(False)
        self._fill_table()
        self._on_view_changed()
        self.pose_widget.setVisible(bool(s.analyses.pose_bins))
        self.agreement_widget.setVisible(bool(s.analyses.agreement_bins))
        self.deletion_widget.setVisible(bool(s.analyses.deletion))
        self.analysis_panel.setVisible(bool(s.analyses))

    def _fill_table(self) -> None:
        rows = self.state.accuracy_rows()
        self.table.setRowCount(len(rows))
        roles = self.state.roles
        for r, row in enumerate(rows):
            cells = [
                row["label"],
                "" if row["n"] is None else str(row["n"]),
                "" if row["missing"] is None else str(row["missing"]),
                _pct(row["acc"].get("ran")),
                _pct(row["acc"].get("baseline")),
                _diff_text(row["diff"], len(roles) == 2),
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, row["set"])
                if c > 0:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c in (3, 4):
                    role = ROLES[c - 3]
                    if role in row["mca"]:
                        item.setToolTip(f"mean class accuracy {row['mca'][role]:.2f}%")
                if c == 5 and row["diff"] is not None and abs(row["diff"]) >= 0.005:
                    item.setForeground(outcome_color(row["diff"] > 0, self.table.palette()))
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                if c == 2 and row["missing"]:
                    item.setToolTip("entries of the subset list not found in this split")
                self.table.setItem(r, c, item)
        self.table.setColumnHidden(3, "ran" not in roles and bool(roles))
        self.table.setColumnHidden(4, "baseline" not in roles and bool(roles))
        self.table.setColumnHidden(5, len(roles) < 2 and bool(roles))

    def _on_view_changed(self) -> None:
        s = self.state
        for source, b in self.source_buttons.items():
            b.setChecked(source == s.matrix_source)
        for normalize, b in self.norm_buttons.items():
            b.setChecked(normalize == s.normalize)
        idx = self.set_combo.findData(s.matrix_set)
        if idx >= 0 and idx != self.set_combo.currentIndex():
            self.set_combo.blockSignals(True)
            self.set_combo.setCurrentIndex(idx)
            self.set_combo.blockSignals(False)
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 0)
            if item is not None and item.data(Qt.ItemDataRole.UserRole) == s.matrix_set:
                self.table.selectRow(r)
        values = s.confusion()
        difference = s.matrix_source == "difference"
        self.matrix_view.set_matrix(values, s.class_names, difference, s.normalize)
        self.matrix_view.set_selected(s.selected_cell)
        if values is not None:
            unit = "row %" if s.normalize else "counts"
            what = "RAN − baseline" if difference else SOURCE_LABELS[s.matrix_source]
            self.matrix_title.setText(f"<b>{what}</b> · {subset_label(s.matrix_set)} · {unit}")

    def _on_source_clicked(self, source: str) -> None:
        if source in self.state.available_sources:
            self.state.set_view(source=source)
        else:
            self._on_view_changed()

    def _on_set_combo_changed(self, index: int) -> None:
        name = self.set_combo.itemData(index)
        if name is not None:
            self.state.set_view(matrix_set=name)

    def _on_table_clicked(self, row: int, _col: int) -> None:
        item = self.table.item(row, 0)
        if item is not None:
            self.state.set_view(matrix_set=item.data(Qt.ItemDataRole.UserRole))

    def _on_cell_changed(self, cell: tuple[int, int] | None) -> None:
        s = self.state
        self.matrix_view.set_selected(cell)
        if cell is None:
            self.gallery.set_placeholder("Click a cell of the confusion matrix to see its images here.")
            self.gallery.set_items([], s.roles, "")
            return
        self.gallery.set_placeholder("No image in this cell.")
        items = s.cell_items()
        i, j = cell
        names = s.class_names
        where = subset_label(s.matrix_set)
        if s.matrix_source == "difference":
            n_ran = sum(1 for it in items if it.preds.get("ran") == j)
            title = (
                f"<b>true</b> {names[i]} · <b>predicted</b> {names[j]} by only one model ({where}): "
                f"{n_ran} by RAN, {len(items) - n_ran} by the baseline"
            )
            border = None
        else:
            title = (
                f"<b>true</b> {names[i]} · <b>predicted by {ROLE_LABELS[s.matrix_source]}</b> {names[j]} "
                f"({where}): {len(items)} image{'s' if len(items) != 1 else ''}"
            )
            border = s.matrix_source
        self.gallery.set_items(items, s.roles, title, border_role=border)


def _diff_text(diff: float | None, both: bool) -> str:
    if diff is None:
        return "–" if both else ""
    return f"{diff:+.2f}"


def _pct(v: float | None) -> str:
    if v is None:
        return ""
    return "–" if v != v else f"{v:.2f}"


def _set_combo_text(combo: QComboBox, text: str) -> None:
    if combo.currentText() == text:
        return
    combo.blockSignals(True)
    if combo.findText(text) < 0 and text:
        combo.addItem(text)
    combo.setCurrentText(text)
    combo.blockSignals(False)


def _set_line_text(edit: QLineEdit, text: str) -> None:
    if edit.text() != text:
        edit.blockSignals(True)
        edit.setText(text)
        edit.blockSignals(False)
