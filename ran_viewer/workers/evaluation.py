"""Background evaluation: open a dataset split, load its subset lists and evaluate the RAN and baseline models.

:class:`EvalWorker` is a Spyder-style ``QThread``: it reports through ``sig_*`` signals, stops when asked (a
mutex-guarded flag polled between batches), and turns every exception into a readable ``sig_error`` message, so the
GUI thread never loads a model, reads a label file or runs a forward pass."""

from __future__ import annotations

import os
import traceback
from typing import Any

from PySide6.QtCore import QMutex, QMutexLocker, QObject, QThread, Signal

from ran_viewer.model.eval_state import ROLE_LABELS, EvalRequest
from ran_viewer.services.evaluation import CoreBackend


class _Cancelled(Exception):
    pass


class EvalWorker(QThread):
    """Evaluates every model of an :class:`EvalRequest` on one dataset split, off the GUI thread.

    Signals:
        sig_progress(done, total, stage): images done / total in the current stage (``total`` 0 = indeterminate).
        sig_finished(results): ``dict`` role (``ran`` / ``baseline``) -> ``EvalResult``.
        sig_error(message): what went wrong, written for the user.
        sig_cancelled(): :meth:`stop` was honoured before the run finished.
        sig_warning(message): something was left out (skipped images, unmatched list entries) but results follow.
    """

    sig_progress = Signal(int, int, str)
    sig_finished = Signal(object)
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
            results = self._run()
        except _Cancelled:
            self.sig_cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a message, never a crashed thread
            if self.backend.is_cancelled(exc):
                self.sig_cancelled.emit()
            else:
                self.sig_error.emit(_describe(exc))
        else:
            self.sig_finished.emit(results)

    def _run(self) -> dict[str, Any]:
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

            def progress(done: int, total: int, _label: str = label) -> None:
                self.sig_progress.emit(int(done), int(total), f"Evaluating {_label}")

            try:
                results[role] = self.backend.evaluate(model, split, subsets, req, progress, self.stopped)
            except ValueError as exc:
                raise _UserError(f"{label} model cannot be evaluated on {req.dataset}:\n{_text(exc)}") from None
            del model
        skipped = getattr(getattr(split, "skipped", None), "total", 0)
        if skipped:
            self.sig_warning.emit(f"Left out of the {req.split} split: {split.skipped.summary()}")
        return results


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
