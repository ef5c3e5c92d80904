"""What every worker thread shares (Spyder style): :func:`retire` stops, waits for and disconnects a worker before it
is replaced; :func:`describe_error` turns an exception into a readable line."""

from __future__ import annotations

import warnings

from PySide6.QtCore import QThread


def retire(worker: QThread | None, timeout_ms: int = 5000) -> None:
    """Stop a worker, wait for its thread to end and disconnect its signals, so it can be replaced safely."""
    if worker is None:
        return
    stop = getattr(worker, "stop", None)
    if callable(stop):
        stop()
    if worker.isRunning() and not worker.wait(timeout_ms):  # pragma: no cover - a stuck model call
        worker.terminate()
        worker.wait(1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # PySide warns when a signal had no connections left
        for name in dir(type(worker)):
            if name.startswith("sig_"):
                try:
                    getattr(worker, name).disconnect()
                except (RuntimeError, TypeError):
                    pass


def describe_error(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
