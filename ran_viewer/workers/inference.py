"""The inference thread: model loading and analysis of images, occlusion edits and camera frames.

The worker is a ``QThread`` whose ``run`` loop checks a mutex-guarded stop flag, catches every exception and emits it
as ``sig_error``; the GUI only talks to it through thread-safe methods and its ``sig_*`` signals.

It holds ONE pending request: a new image, occlusion edit or camera frame replaces the one still waiting (latest
wins; replaced camera frames are counted as dropped), so a slow model never builds a backlog. Loading models goes
through a separate FIFO and is never dropped."""

from __future__ import annotations

import collections
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QMutex, QMutexLocker, QObject, QThread, QWaitCondition, Signal

from ran_core.imageio import ImageReadError, read_image
from ran_core.structures import FaceResult
from ran_viewer.model.analysis import Analysis, ModelsInfo
from ran_viewer.model.occluders import Occluder, apply_occluders
from ran_viewer.services.analysis import Analyzer
from ran_viewer.services.camera import RateMeter
from ran_viewer.workers.base import describe_error


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
    frame_time: float | None = None


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
        self._camera_tta: str | None = None
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

    def set_camera_tta(self, tta: str | None) -> None:
        """Camera frames' test-time augmentation (``None``: each model's saved one), kept across model loads."""
        with QMutexLocker(self._mutex):
            self._camera_tta = tta
            self._control.append(("camera_tta", tta))
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

    def submit_frame(self, frame: np.ndarray, index: int, time_s: float | None = None) -> int:
        """A camera frame (called from the camera thread) taken at ``time_s`` seconds (in the video file, or since the
        camera opened); a frame still waiting is dropped in its favour."""
        with QMutexLocker(self._mutex):
            self._seq += 1
            self._put(_Request("frame", self._seq, self._seq, frame, "camera", frame_index=index, frame_time=time_s))
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

    def end_frames(self) -> None:
        """The camera stopped: close the frame stream (its detection thread) on the worker thread, between requests."""
        with QMutexLocker(self._mutex):
            self._control.append(("close_stream", None))
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
                self.analyzer.close_stream()  # its detection thread ends with this one
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
            self.analyzer.close_stream()
            self.analyzer = payload
            return
        if what == "close_stream":
            self.analyzer.close_stream()
            return
        if what == "reset_tracking":
            self.analyzer.reset_tracking()
            return
        if what == "face_mode":
            self.analyzer.set_face_mode(payload)
            return
        if what == "camera_tta":
            self.analyzer.set_camera_tta(payload)
            return
        try:
            analyzer, info = self._loader(*payload)
        except Exception as exc:  # noqa: BLE001 - reported, never raised into Qt
            analyzer, info = Analyzer(), ModelsInfo(errors=[f"Models could not be loaded: {describe_error(exc)}"])
        analyzer.detect_every = self.analyzer.detect_every
        with QMutexLocker(self._mutex):
            mode, camera_tta = self._face_mode, self._camera_tta
        analyzer.set_face_mode(mode)
        analyzer.set_camera_tta(camera_tta)
        self.analyzer.close_stream()
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
                frame_time=req.frame_time,
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
