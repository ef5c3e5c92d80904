"""Background evaluation: open a dataset split, load its subset lists and evaluate the RAN and baseline models, and
on request their accuracy by head pose or by annotator agreement and their region deletion curves.

:class:`EvalWorker` is a Spyder-style ``QThread``: it reports through ``sig_*`` signals, stops when asked (a
mutex-guarded flag polled between batches), and turns every exception into a readable ``sig_error`` message, so the
GUI thread never loads a model, reads a label file or runs a forward pass."""

from __future__ import annotations

import os
import traceback
from typing import Any

from PySide6.QtCore import QMutex, QMutexLocker, QObject, QThread, Signal

from ran_viewer.model.eval_state import ROLE_LABELS, EvalAnalyses, EvalRequest
from ran_viewer.services.evaluation import CoreBackend


class _Cancelled(Exception):
    pass


class EvalWorker(QThread):
    """Evaluates every model of an :class:`EvalRequest` on one dataset split, off the GUI thread.

    Signals:
        sig_progress(done, total, stage): images done / total in the current stage (``total`` 0 = indeterminate).
        sig_finished(results): ``dict`` role (``ran`` / ``baseline``) -> ``EvalResult``.
        sig_analyses(analyses): the :class:`EvalAnalyses` (pose bins, deletion curves) of the run, emitted just
            before ``sig_finished`` when the request asked for any.
        sig_error(message): what went wrong, written for the user.
        sig_cancelled(): :meth:`stop` was honoured before the run finished.
        sig_warning(message): something was left out (skipped images, unmatched list entries) but results follow.
    """

    sig_progress = Signal(int, int, str)
    sig_finished = Signal(object)
    sig_analyses = Signal(object)
    sig_error = Signal(str)
    sig_cancelled = Signal()
    sig_warning = Signal(str)

    def __init__(self, request: EvalRequest, backend: Any | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.request = request
        self.backend = backend if backend is not None else CoreBackend()
        self._mutex = QMutex()
        self._stop = False

    def stop(self) -> None:
        """Ask the run to stop at the next batch (returns at once; ``wait()`` to block until it has)."""
        with QMutexLocker(self._mutex):
            self._stop = True

    def stopped(self) -> bool:
        with QMutexLocker(self._mutex):
            return self._stop

    def _check(self) -> None:
        if self.stopped():
            raise _Cancelled

    def run(self) -> None:
        try:
            results, analyses = self._run()
        except _Cancelled:
            self.sig_cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a crashed thread
            if self.backend.is_cancelled(exc):
                self.sig_cancelled.emit()
            else:
                self.sig_error.emit(_describe(exc))
        else:
            if analyses:
                self.sig_analyses.emit(analyses)
            self.sig_finished.emit(results)

    def _progress(self, stage: str):
        """A ``(done, total)`` callback that reports ``stage``."""

        def progress(done: int, total: int) -> None:
            self.sig_progress.emit(int(done), int(total), stage)

        return progress

    def _run(self) -> tuple[dict[str, Any], EvalAnalyses]:
        req = self.request
        if not os.path.isdir(req.root):
            raise _UserError(f"Dataset folder not found: {req.root}")
        self.sig_progress.emit(0, 0, f"Reading the {req.dataset} {req.split} split")
        try:
            split = self.backend.open_dataset(req)
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise _UserError(f"Could not open {req.dataset} ({req.split}) in {req.root}:\n{_text(exc)}") from None
        if not len(split.samples):
            raise _UserError(f"The {req.dataset} {req.split} split in {req.root} has no usable images.")
        self._check()
        landmarks = ""
        if req.pose_bins:
            landmarks = self._find_landmarks(split)
        subsets = None
        if req.lists_dir:
            self.sig_progress.emit(0, 0, "Reading subset lists")
            try:
                subsets = self.backend.load_subset_lists(req)
            except (FileNotFoundError, ValueError, OSError) as exc:
                raise _UserError(f"Could not read the subset lists in {req.lists_dir}:\n{_text(exc)}") from None
            if not subsets:
                self.sig_warning.emit(f"No {req.dataset} subset lists found in {req.lists_dir}; overall metrics only.")
        self._check()
        results: dict[str, Any] = {}
        deletion: dict[str, Any] = {}
        regions = None  # RAN's regions: the baseline's deletion curve covers the same boxes
        for role, name in req.models.items():
            label = ROLE_LABELS.get(role, role)
            self.sig_progress.emit(0, 0, f"Loading the {label} model")
            try:
                model = self.backend.load_model(name)
            except (FileNotFoundError, ValueError, OSError, RuntimeError) as exc:
                raise _UserError(f"{label} model {name!r} could not be loaded:\n{_text(exc)}") from None
            self._check()
            total = len(split.samples)
            self.sig_progress.emit(0, total, f"Evaluating {label}")
            try:
                results[role] = self.backend.evaluate(
                    model, split, subsets, req, self._progress(f"Evaluating {label}"), self.stopped
                )
            except ValueError as exc:
                raise _UserError(f"{label} model cannot be evaluated on {req.dataset}:\n{_text(exc)}") from None
            if req.deletion:
                if regions is None:
                    regions = self.backend.regions_of(model)
                self.sig_progress.emit(0, 0, f"Deletion curves of {label}: decoding the faces")
                deletion[role] = self.backend.deletion(
                    model, split, regions, req, self._progress(f"Deletion curves of {label}"), self.stopped
                )
            del model
        pose_bins = {}
        if req.pose_bins:
            self.sig_progress.emit(0, 0, "Accuracy by head pose")
            pose_bins = {role: self.backend.pose_bins(res, split) for role, res in results.items()}
        agreement_bins = {}
        if req.agreement:
            self.sig_progress.emit(0, 0, "Accuracy by annotator agreement")
            try:
                agreement_bins = {role: self.backend.agreement_bins(res, split) for role, res in results.items()}
            except ValueError as exc:  # a dataset without votes: the rest of the run stands
                self.sig_warning.emit(f"No accuracy by annotator agreement: {_text(exc)}")
        skipped = getattr(getattr(split, "skipped", None), "total", 0)
        if skipped:
            self.sig_warning.emit(f"Left out of the {req.split} split: {split.skipped.summary()}")
        return results, EvalAnalyses(
            pose_bins=pose_bins, deletion=deletion, landmarks=landmarks, agreement_bins=agreement_bins
        )

    def _find_landmarks(self, split: Any) -> str:
        """Landmarks for the pose bins (found once per split, cached); returns the report's summary."""
        stage = "Finding landmarks for the head pose (cached for the next run)"
        self.sig_progress.emit(0, 0, stage)
        try:
            report = self.backend.attach_landmarks(split, self.request, self._progress(stage), self.stopped)
        except Exception as exc:
            if self.backend.is_detector_unavailable(exc):
                raise _UserError(f"Accuracy by head pose needs facial landmarks:\n{_text(exc)}") from None
            raise
        self._check()  # a stopped search returns what it found so far
        missing = len(getattr(report, "missing", ()))
        if missing:
            self.sig_warning.emit(
                f"No face (so no head pose) found in {missing} of {report.total} images: they form the "
                "'unknown' pose bin."
            )
        return report.summary()


class _UserError(Exception):
    """A failure whose message is already written for the user."""


def _text(exc: BaseException) -> str:
    msg = str(exc).strip()
    return msg if msg else type(exc).__name__


def _describe(exc: BaseException) -> str:
    if isinstance(exc, _UserError):
        return str(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({tb[-1].filename.rsplit(os.sep, 1)[-1]}:{tb[-1].lineno})" if tb else ""
    return f"Evaluation failed: {type(exc).__name__}: {_text(exc)}{where}"
