"""Background threads (Spyder style): model inference, camera capture and thumbnail loading.

Each worker is a ``QThread`` whose ``run`` loop checks a mutex-guarded stop flag, catches every exception and emits it
as ``sig_error``; the GUI only talks to it through thread-safe methods and its ``sig_*`` signals. Before replacing a
worker, call :func:`retire` (stop, wait, disconnect).

The inference worker holds ONE pending request: a new image, occlusion edit or camera frame replaces the one still
waiting (latest wins; replaced camera frames are counted as dropped), so a slow model never builds a backlog. Loading
models goes through a separate FIFO and is never dropped.
"""

from __future__ import annotations

import collections
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QMutex, QMutexLocker, QObject, QThread, QWaitCondition, Signal
from PySide6.QtGui import QImage

from ran_core.imageio import ImageReadError, read_image
from ran_core.structures import FaceResult
from ran_viewer.analysis import Analysis, Analyzer, ModelsInfo
from ran_viewer.camera import CameraError, FrameSource, RateMeter
from ran_viewer.occlusion import Occluder, apply_occluders


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


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


@dataclass
class _Request:
    kind: str  # image | occlusion | frame
    seq: int
    image_seq: int
    source: Any  # path, bytes or array
    name: str = ""
    path: str | None = None
    occluders: tuple[Occluder, ...] = ()
    faces: tuple[FaceResult, ...] = ()
    frame_index: int = -1


class InferenceWorker(QThread):
    """Runs the models on the latest request (one-slot queue) and loads models (FIFO), off the GUI thread.

    Signals:
        sig_models_loaded(ModelsInfo): models (re)loaded; ``errors`` lists what failed.
        sig_image_loaded(seq, rgb, name, path): a still image was decoded, before it is analysed.
        sig_result_ready(): a result waits in the result slot; fetch it with :meth:`take_result`. Results are
            delivered latest-only too: one signal is outstanding at a time and a newer result replaces an untaken
            one, so a GUI that redraws slower than the camera never builds a backlog of queued results.
        sig_error(seq, message): a request failed (unreadable image, model error).
        sig_busy(bool): work started / the queue ran empty.
        sig_stats(analysed_fps, dropped): about twice a second while camera frames arrive.
    """

    sig_models_loaded = Signal(object)
    sig_image_loaded = Signal(int, object, str, str)
    sig_result_ready = Signal()
    sig_error = Signal(int, str)
    sig_busy = Signal(bool)
    sig_stats = Signal(float, int)

    def __init__(
        self,
        analyzer: Analyzer | None = None,
        loader: Callable[..., tuple[Analyzer, ModelsInfo]] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.analyzer = analyzer or Analyzer()
        self._loader = loader or Analyzer.load
        self._mutex = QMutex()
        self._cond = QWaitCondition()
        self._stop = False
        self._control: collections.deque[tuple[str, Any]] = collections.deque()
        self._pending: _Request | None = None
        self._seq = 0
        self._image_seq = 0
        self._frame_occluders: tuple[Occluder, ...] = ()
        self._face_mode = "detect"
        self.dropped_frames = 0
        self._fps = RateMeter()
        self._result: Analysis | None = None
        self._last_stats = 0.0

    # --- thread-safe API -------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end after the current request."""
        with QMutexLocker(self._mutex):
            self._stop = True
            self._cond.wakeAll()

    def load_models(self, ran: Any, baseline: Any, detector: str = "auto", device: str = "cpu") -> None:
        """Load new models in the background (queued, never dropped)."""
        with QMutexLocker(self._mutex):
            self._control.append(("load", (ran, baseline, detector, device)))
            self._cond.wakeAll()

    def set_face_mode(self, mode: str) -> None:
        """Still images: ``detect`` faces, or each image is one ``whole`` cropped face (applied between requests)."""
        with QMutexLocker(self._mutex):
            self._face_mode = mode
            self._control.append(("face_mode", mode))
            self._cond.wakeAll()

    def set_analyzer(self, analyzer: Analyzer) -> None:
        """Swap the predictors between two requests."""
        with QMutexLocker(self._mutex):
            self._control.append(("analyzer", analyzer))
            self._cond.wakeAll()

    def submit_image(self, source: Any, name: str = "", path: str | None = None) -> int:
        """Decode and analyse a still image (a path, bytes or an RGB array); returns its request number."""
        with QMutexLocker(self._mutex):
            self._seq += 1
            self._image_seq = self._seq
            self._put(_Request("image", self._seq, self._seq, source, name, path))
            return self._seq

    def submit_occlusion(
        self, image: np.ndarray, occluders: list[Occluder], faces: list[FaceResult], image_seq: int
    ) -> int:
        """Re-read ``faces`` on ``image`` with ``occluders`` burned in; returns the request number."""
        with QMutexLocker(self._mutex):
            self._seq += 1
            self._put(
                _Request("occlusion", self._seq, image_seq, image, occluders=tuple(occluders), faces=tuple(faces))
            )
            return self._seq

    def submit_frame(self, frame: np.ndarray, index: int) -> int:
        """A camera frame (called from the camera thread); a frame still waiting is dropped in its favour."""
        with QMutexLocker(self._mutex):
            self._seq += 1
            self._put(_Request("frame", self._seq, self._seq, frame, "camera", frame_index=index))
            return self._seq

    def set_frame_occluders(self, occluders: list[Occluder]) -> None:
        """Occluders burned into every following camera frame."""
        with QMutexLocker(self._mutex):
            self._frame_occluders = tuple(occluders)

    def reset_frame_stats(self) -> None:
        """Zero the frame counters and forget tracked faces (a new camera session).

        The analyzer's tracker and stream belong to the worker thread, which uses them without the lock while it
        analyses a frame: their reset is queued and done there, between two requests, never beside a running one.
        """
        with QMutexLocker(self._mutex):
            self.dropped_frames = 0
            self._fps = RateMeter()
            self._control.append(("reset_tracking", None))
            self._cond.wakeAll()

    def take_result(self) -> Analysis | None:
        """The newest undelivered result (GUI thread, on ``sig_result_ready``), or ``None`` if already taken."""
        with QMutexLocker(self._mutex):
            result, self._result = self._result, None
            return result

    def _deliver(self, analysis: Analysis) -> None:
        with QMutexLocker(self._mutex):
            signal_needed = self._result is None
            self._result = analysis
        if signal_needed:
            self.sig_result_ready.emit()

    @property
    def pending(self) -> bool:
        """A request, a model load or an untaken result is waiting."""
        with QMutexLocker(self._mutex):
            return self._pending is not None or bool(self._control) or self._result is not None

    def _put(self, request: _Request) -> None:  # caller holds the mutex
        if self._pending is not None and self._pending.kind == "frame":
            self.dropped_frames += 1
        self._pending = request
        self._cond.wakeAll()

    # --- the loop --------------------------------------------------------------------------------------------------

    def run(self) -> None:
        """The thread loop (never raises: errors are emitted as ``sig_error``)."""
        busy = False
        while True:
            self._mutex.lock()
            if busy and not (self._stop or self._control or self._pending is not None):
                self._mutex.unlock()
                busy = False
                self.sig_busy.emit(False)
                self._mutex.lock()
            while not (self._stop or self._control or self._pending is not None):
                self._cond.wait(self._mutex)
            if self._stop:
                self._mutex.unlock()
                return
            item: Any = None
            request: _Request | None = None
            if self._control:
                item = self._control.popleft()
            else:
                request, self._pending = self._pending, None
            self._mutex.unlock()
            if not busy:
                busy = True
                self.sig_busy.emit(True)
            if item is not None:
                self._do_control(*item)
            elif request is not None:
                self._do_request(request)

    def _do_control(self, what: str, payload: Any) -> None:
        if what == "analyzer":
            self.analyzer = payload
            return
        if what == "reset_tracking":
            self.analyzer.reset_tracking()
            return
        if what == "face_mode":
            self.analyzer.set_face_mode(payload)
            return
        try:
            analyzer, info = self._loader(*payload)
        except Exception as exc:  # noqa: BLE001 - reported, never raised into Qt
            analyzer, info = Analyzer(), ModelsInfo(errors=[f"Models could not be loaded: {_describe(exc)}"])
        analyzer.detect_every = self.analyzer.detect_every
        with QMutexLocker(self._mutex):
            mode = self._face_mode
        analyzer.set_face_mode(mode)
        self.analyzer = analyzer
        self.sig_models_loaded.emit(info)

    def _do_request(self, req: _Request) -> None:
        occluders = req.occluders
        try:
            t0 = time.perf_counter()
            if req.kind == "image":
                rgb = read_image(req.source)
                self.sig_image_loaded.emit(req.seq, rgb, req.name, req.path or "")
                ran_faces, base_faces = self.analyzer.analyze(rgb)
            elif req.kind == "occlusion":
                rgb = apply_occluders(req.source, req.occluders)
                ran_faces, base_faces = self.analyzer.reanalyze(rgb, list(req.faces))
            else:
                with QMutexLocker(self._mutex):
                    occluders = self._frame_occluders
                rgb = apply_occluders(req.source, occluders)
                ran_faces, base_faces = self.analyzer.analyze_frame(rgb, req.frame_index)
            analysis = Analysis(
                kind=req.kind,
                seq=req.seq,
                image_seq=req.image_seq,
                image=rgb,
                clean_image=req.source if req.kind == "frame" else None,
                occluded=bool(occluders) if req.kind == "frame" else bool(req.occluders),
                name=req.name,
                path=req.path,
                ran_faces=ran_faces,
                baseline_faces=base_faces,
                seconds=time.perf_counter() - t0,
                frame_index=req.frame_index,
                dropped=self.dropped_frames,
                models_loaded=self.analyzer.loaded,
            )
            self._deliver(analysis)
            if req.kind == "frame":
                self._fps.tick()
                now = time.perf_counter()
                if now - self._last_stats > 0.5:
                    self._last_stats = now
                    self.sig_stats.emit(self._fps.rate, self.dropped_frames)
        except ImageReadError as exc:
            self.sig_error.emit(req.seq, str(exc))
        except Exception as exc:  # noqa: BLE001 - a model error must not kill the thread
            detail = traceback.format_exception_only(type(exc), exc)[-1].strip()
            what = "this camera frame" if req.kind == "frame" else (req.name or "this image")
            self.sig_error.emit(
                req.seq, f"Could not analyse {what}: {detail}. The viewer keeps running; other images are not affected."
            )


class CameraWorker(QThread):
    """Reads frames from a :class:`~ran_viewer.camera.FrameSource` and hands each to ``sink`` (latest wins there).

    Signals:
        sig_opened(name): the source opened.
        sig_error(message): the source could not be opened or stopped delivering frames.
        sig_stats(capture_fps): about twice a second.
        sig_ended(): a finite source (video file) reached its end.
        sig_paused(bool): the loop stopped reading frames (True) or started again (False) after :meth:`set_paused`.
    """

    sig_opened = Signal(str)
    sig_paused = Signal(bool)
    sig_error = Signal(str)
    sig_stats = Signal(float)
    sig_ended = Signal()

    #: consecutive empty reads before a camera counts as unplugged (about 2 s at the 20 ms retry interval).
    MAX_FAILED_READS = 100

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        sink: Callable[[np.ndarray, int], Any],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._factory = source_factory
        self._sink = sink
        self._mutex = QMutex()
        self._stop = False
        self._paused = False
        self.frames_read = 0

    def stop(self) -> None:
        """Ask the loop to end (thread-safe)."""
        with QMutexLocker(self._mutex):
            self._stop = True

    def set_paused(self, paused: bool) -> None:
        """Pause or resume reading frames (thread-safe)."""
        with QMutexLocker(self._mutex):
            self._paused = bool(paused)

    def _flags(self) -> tuple[bool, bool]:
        with QMutexLocker(self._mutex):
            return self._stop, self._paused

    def run(self) -> None:
        """The thread loop (never raises: errors are emitted as ``sig_error``)."""
        source: FrameSource | None = None
        try:
            source = self._factory()
            source.open()
            self.sig_opened.emit(source.name)
            meter, last_stats, failures = RateMeter(), time.perf_counter(), 0
            was_paused = False
            while True:
                stop, paused = self._flags()
                if stop:
                    break
                if paused != was_paused:
                    was_paused = paused
                    self.sig_paused.emit(paused)
                if paused:
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
                self._sink(frame, self.frames_read)
                meter.tick()
                now = time.perf_counter()
                if now - last_stats > 0.5:
                    last_stats = now
                    self.sig_stats.emit(meter.rate)
        except CameraError as exc:
            self.sig_error.emit(str(exc))
        except Exception as exc:  # noqa: BLE001
            self.sig_error.emit(f"Camera error: {_describe(exc)}")
        finally:
            if source is not None:
                try:
                    source.close()
                except Exception:  # noqa: BLE001, S110 - closing a broken device must not mask the real error
                    pass


class ThumbnailWorker(QThread):
    """Decodes small previews of a list of images (fast JPEG draft mode) for the thumbnail strip.

    Signals:
        sig_thumbnail(index, QImage): one preview ready (a null QImage when the file is not readable).
    """

    sig_thumbnail = Signal(int, QImage)

    def __init__(self, paths: list[str], size: int = 96, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.paths = list(paths)
        self.size = size
        self._mutex = QMutex()
        self._stop = False

    def stop(self) -> None:
        """Ask the loop to end (thread-safe)."""
        with QMutexLocker(self._mutex):
            self._stop = True

    def _stopped(self) -> bool:
        with QMutexLocker(self._mutex):
            return self._stop

    def run(self) -> None:
        """The thread loop (never raises: errors are emitted as ``sig_error``)."""
        for i, path in enumerate(self.paths):
            if self._stopped():
                return
            self.sig_thumbnail.emit(i, load_thumbnail(path, self.size))


def load_thumbnail(path: str | Path, size: int = 96) -> QImage:
    """A ``size``-pixel preview of an image file, or a null QImage when it cannot be read."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size * 2, size * 2))  # JPEG: decode at 1/2..1/8 scale, much faster than full size
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((size, size))
            data = img.tobytes()
            qimg = QImage(data, img.width, img.height, 3 * img.width, QImage.Format.Format_RGB888)
            return qimg.copy()  # own the pixels: ``data`` is freed when this function returns
    except Exception:  # noqa: BLE001 - a bad file gets an empty thumbnail; opening it reports the reason
        return QImage()
