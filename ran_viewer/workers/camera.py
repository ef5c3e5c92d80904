"""The camera thread: opens a frame source and hands every frame, with its time, to the inference worker, as fast as
the source gives them (the inference worker keeps only the newest one). A video file can be sought while it plays
or is paused."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QMutex, QMutexLocker, QObject, QThread, Signal

from ran_viewer.services.camera import CameraError, FrameSource, RateMeter
from ran_viewer.workers.base import describe_error, retire


class CameraWorker(QThread):
    """Reads frames from a :class:`~ran_viewer.services.camera.FrameSource` and hands each to
    ``sink(frame, index, time_s)`` (latest wins there): ``index`` counts the frames read in this session, ``time_s`` is
    the frame's time in the file for a video, else seconds since the camera opened (a monotonic clock).

    Signals:
        sig_opened(name): the source opened.
        sig_source(fps, frame_count, seekable): what the source is: a video file's frame rate and length (0 for a
            live camera) and whether :meth:`request_seek` works.
        sig_error(message): the source could not be opened or stopped delivering frames.
        sig_stats(capture_fps): about twice a second.
        sig_ended(): a finite source (video file) reached its end.
        sig_paused(bool): the loop stopped reading frames (True) or started again (False) after :meth:`set_paused`.
    """

    sig_opened = Signal(str)
    sig_source = Signal(float, int, bool)
    sig_paused = Signal(bool)
    sig_error = Signal(str)
    sig_stats = Signal(float)
    sig_ended = Signal()

    #: consecutive empty reads before a camera counts as unplugged (about 2 s at the 20 ms retry interval).
    MAX_FAILED_READS = 100

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        sink: Callable[[np.ndarray, int, float], Any],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._factory = source_factory
        self._sink = sink
        self._mutex = QMutex()
        self._stop = False
        self._paused = False
        self._source: FrameSource | None = None
        self.frames_read = 0

    def stop(self) -> None:
        """Ask the loop to end (thread-safe)."""
        with QMutexLocker(self._mutex):
            self._stop = True

    def set_paused(self, paused: bool) -> None:
        """Pause or resume reading frames (thread-safe)."""
        with QMutexLocker(self._mutex):
            self._paused = bool(paused)

    def request_seek(self, frame: int) -> bool:
        """Ask a video file to jump to ``frame`` (thread-safe; honoured by the next read, even while paused).
        Returns ``False`` when the source cannot seek (a live camera) or is not open."""
        with QMutexLocker(self._mutex):
            source = self._source
        if source is None or not getattr(source, "seekable", False):
            return False
        source.request_seek(frame)
        return True

    def _flags(self) -> tuple[bool, bool]:
        with QMutexLocker(self._mutex):
            return self._stop, self._paused

    def run(self) -> None:
        """The thread loop (never raises: errors are emitted as ``sig_error``)."""
        source: FrameSource | None = None
        try:
            source = self._factory()
            source.open()
            seekable = bool(getattr(source, "seekable", False))
            with QMutexLocker(self._mutex):
                self._source = source
            self.sig_opened.emit(source.name)
            self.sig_source.emit(
                float(getattr(source, "fps", 0.0) if seekable else 0.0),
                int(getattr(source, "frame_count", 0) if seekable else 0),
                seekable,
            )
            opened_at = time.monotonic()
            meter, last_stats, failures = RateMeter(), time.perf_counter(), 0
            was_paused = False
            while True:
                stop, paused = self._flags()
                if stop:
                    break
                if paused != was_paused:
                    was_paused = paused
                    self.sig_paused.emit(paused)
                if paused and not (seekable and source.seek_pending):  # a seek shows its frame while paused
                    self.msleep(20)
                    continue
                frame = source.read()
                if frame is None:
                    if getattr(source, "ended", False):
                        self.sig_stats.emit(meter.rate)
                        self.sig_ended.emit()
                        break
                    failures += 1
                    if failures >= self.MAX_FAILED_READS:
                        raise CameraError(
                            f"{source.name} stopped delivering frames: it was unplugged, or another application took "
                            "it over."
                        )
                    self.msleep(20)
                    continue
                failures = 0
                self.frames_read += 1
                t = source.frame_time if seekable else None
                self._sink(frame, self.frames_read, time.monotonic() - opened_at if t is None else t)
                meter.tick()
                now = time.perf_counter()
                if now - last_stats > 0.5:
                    last_stats = now
                    self.sig_stats.emit(meter.rate)
        except CameraError as exc:
            self.sig_error.emit(str(exc))
        except Exception as exc:  # noqa: BLE001
            self.sig_error.emit(f"Camera error: {describe_error(exc)}")
        finally:
            with QMutexLocker(self._mutex):
                self._source = None
            if source is not None:
                try:
                    source.close()
                except Exception:  # noqa: BLE001, S110 - closing a broken device must not mask the real error
                    pass


class RunningCamera:
    """A started :class:`CameraWorker` as the controller's camera session: its signals go to the given callbacks,
    ``stop`` retires it (stop, wait, disconnect), ``set_paused`` pauses it and ``seek`` asks a video for a frame.

    Args:
        worker: the camera thread, not started yet; it is started here.
        opened, error, stats, ended: called (on the GUI thread) with ``sig_opened``'s name, ``sig_error``'s message,
            ``sig_stats``'s capture rate and on ``sig_ended``.
        source: called with ``sig_source``'s ``(fps, frame_count, seekable)``.
    """

    def __init__(
        self,
        worker: CameraWorker,
        opened: Callable[[str], None],
        error: Callable[[str], None],
        stats: Callable[[float], None],
        ended: Callable[[], None],
        source: Callable[[float, int, bool], None] | None = None,
    ) -> None:
        self.worker = worker
        worker.sig_opened.connect(opened)
        if source is not None:
            worker.sig_source.connect(source)
        worker.sig_error.connect(error)
        worker.sig_stats.connect(stats)
        worker.sig_ended.connect(ended)
        worker.start()

    def stop(self) -> None:
        retire(self.worker)

    def set_paused(self, paused: bool) -> None:
        self.worker.set_paused(paused)

    def seek(self, frame: int) -> bool:
        return self.worker.request_seek(frame)
