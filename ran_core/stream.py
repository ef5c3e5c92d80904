"""Live video: faces with stable track ids at camera frame rates, by running the face detector only now and then.

On a CPU a detector costs 50-300 ms a frame and the model about 10 ms a face, so a camera loop that detects on every
frame runs at 3-10 FPS. :class:`StreamPredictor` detects every ``detect_every`` frames on a copy no larger than
``detect_max_side`` and, in between, follows each face with sparse optical flow: corners inside the face are tracked
from the previous frame (pyramidal Lucas-Kanade, kept only when tracking them back lands where they started), and a
similarity transform fitted to them (RANSAC) moves the box and the landmarks, so the aligned crops the model sees stay
framed as at detection. A face whose points cannot be followed asks for a detection on that very frame; a face that
leaves the frame is dropped; a new face appears at the next detection.

By default the detector runs off the frame loop (``async_detect``), on a thread of its own, so no frame waits for it:
a frame hands the detector a downscaled copy and goes on with the tracked faces; when the detection comes back a few
frames later, its boxes are carried forward to the current frame with the same optical flow and matched to the tracks.
``async_detect=False`` detects inline, for results that must not depend on timing (tests, offline video).

Example::

    with StreamPredictor(Predictor("ran-ferplus", detector="mtcnn")) as stream:
        for rgb in frames:
            for face in stream(rgb):
                print(face.track_id, face.label, face.box)

:func:`measure_stream_fps` times the whole path (decode -> detect or track -> regions -> model) on a video file.
"""

from __future__ import annotations

import itertools
import logging
import statistics
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ran_core.faces.detectors import Detection
from ran_core.faces.tracking import IoUTracker
from ran_core.predictor import Predictor
from ran_core.structures import FaceResult

logger = logging.getLogger(__name__)

# Detection every 10 frames at 320 px: on a 640x480 one-face video on a loaded 2-core CPU (measure_stream_fps, median
# of 6 runs) MTCNN ran at 59 FPS, against 34 every 5 frames (29-50: too close to 30 when the machine is busy) and 13
# every frame. A new face shows up within 1/3 s at 30 FPS, a lost one is looked for at once, and tracked boxes were
# as close to a fresh detection as with every 5 frames.
DEFAULT_DETECT_EVERY = 10
DEFAULT_DETECT_MAX_SIDE = 320
# Optical flow runs on a gray copy this large: a face of a webcam frame is still 60+ px there, plenty of corners.
TRACK_MAX_SIDE = 320
_LK = {
    "winSize": (15, 15),
    "maxLevel": 3,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
}
_MAX_CORNERS = 40
# A point is trusted when tracking it forward then back returns within this many pixels of the tracking copy.
_FB_MAX_PX = 1.0
_RANSAC_PX = 1.0
_MIN_POINTS = 6
# A face does not grow or shrink by a quarter between two camera frames; a fit that says so has latched onto clutter.
_MAX_ZOOM_STEP = 1.25
# Share of a box that must stay inside the frame; less and the face has left.
_MIN_VISIBLE = 0.5
# Tracking copies kept while a background detection runs (4 s at 30 FPS, 9 MB at 320x240): a detection that comes back
# later than this is too old to carry forward and is dropped; the next one is asked for at once.
_MAX_CARRY_FRAMES = 120


@dataclass
class StreamTimings:
    """Wall-clock seconds spent on the last frame, per stage.

    Attributes:
        detection: time the frame loop spent on detection: the detector itself when detecting inline; with
            ``async_detect`` only handing a copy to the detection thread and carrying a finished detection forward
            (about 0), except on the first frame after a reset, which waits for its detection.
        background_detection: with ``async_detect``, the detector's time on the detection thread for the result
            applied on this frame (0 on other frames), so the detector's cost stays visible.
        tracking: the gray copy and optical flow of every face.
        alignment: alignment, region boxes, crops and normalisation.
        model: the forward pass.
        detected: a fresh detection was applied on this frame (inline: the detector ran on it).
        detection_lag: frames between the frame that detection was made on and this one (0 when inline).
        faces: faces returned.
    """

    detection: float = 0.0
    background_detection: float = 0.0
    tracking: float = 0.0
    alignment: float = 0.0
    model: float = 0.0
    detected: bool = False
    detection_lag: int = 0
    faces: int = 0

    @property
    def total(self) -> float:
        """Seconds the frame loop spent (the background detection is not part of it)."""
        return self.detection + self.tracking + self.alignment + self.model


@dataclass
class _Track:
    id: int
    box: np.ndarray  # (4,) XYXY in frame pixels
    landmarks: np.ndarray | None  # (N, 2) in frame pixels
    score: float
    quality: float = 1.0  # share of its points followed into the current frame (1 right after a detection)


class StreamPredictor:
    """Faces of consecutive video frames with stable ``track_id``s, detecting only every ``detect_every`` frames.

    Call it from one thread (the frame loop); :meth:`reset` and :meth:`close` from that thread too.

    Args:
        predictor: the :class:`~ran_core.predictor.Predictor` whose detector and model are used. On first use its
            model is tuned in place (channels_last and ``region_chunk``, whichever measures fastest for one face).
        detect_every: run the detector on every N-th frame (and whenever a face is lost); 1 detects every frame.
        detect_max_side: longest side of the copy the detector sees (``None``: the full frame). A face must be
            about as large as the detector's smallest face times ``frame side / detect_max_side`` to be found: with
            the defaults, 80 px of a 640x480 frame for Haar and 40 px for MTCNN.
        track: follow faces between detections with optical flow; ``False`` reuses the last detected boxes.
        min_quality: share of a face's points that must be followed for the tracked box to be trusted; below it the
            detector runs on that frame.
        max_missed: detections in a row that may miss a face that is still followed well before it is dropped.
        num_threads: torch CPU threads, set process-wide on first use (``None``: leave torch's setting). One face is
            six 48 px crops, too little work to share between threads, and on a CPU shared with other work OpenMP
            threads waiting for each other made the model 5-200x slower (measured on 2 cores).
        tune: time the model layouts on first use and keep the fastest.
        detector: the detector for the frames (a name or a detector; ``None``: the predictor's). ``"camera"`` picks
            the fastest one that keeps recall (:func:`ran_core.faces.detectors.resolve_camera_auto`: BlazeFace when
            installed).
        async_detect: run the detector on a background thread so that no frame waits for it (see
            :meth:`_detect_async`); the first frame after a reset still waits, as there is nothing to track yet.
            ``False`` detects inline: the faces of every frame then depend only on the frames, never on timing.
            The thread starts on first use; :meth:`close` (or a ``with`` block) stops it.
    """

    def __init__(
        self,
        predictor: Predictor,
        detect_every: int = DEFAULT_DETECT_EVERY,
        detect_max_side: int | None = DEFAULT_DETECT_MAX_SIDE,
        track: bool = True,
        min_quality: float = 0.5,
        max_missed: int = 1,
        num_threads: int | None = 1,
        tune: bool = True,
        detector: Any = None,
        async_detect: bool = True,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        if detect_max_side is not None and detect_max_side < 32:
            raise ValueError(f"detect_max_side must be at least 32 px, got {detect_max_side}")
        if not 0.0 <= min_quality <= 1.0:
            raise ValueError(f"min_quality must be in [0, 1], got {min_quality}")
        self.predictor = predictor
        if detector == "camera":
            from ran_core.faces.detectors import create_detector, resolve_camera_auto

            name = resolve_camera_auto()
            same = name == getattr(predictor.detector, "name", None)
            detector = None if same else create_detector(name, max_side=None)  # frames come downscaled already
        elif isinstance(detector, str):
            from ran_core.faces.detectors import create_detector

            detector = create_detector(detector)
        self.detector = detector if detector is not None else predictor.detector
        self.detect_every = detect_every
        self.detect_max_side = detect_max_side
        self.track = track
        self.min_quality = min_quality
        self.max_missed = max_missed
        self.num_threads = num_threads
        self.tune = tune
        self.async_detect = async_detect
        self.timings = StreamTimings()
        self.detections = 0  # detector runs started since the last reset
        self.detection_errors = 0  # background detections that raised, since construction
        self.discarded = 0  # background results dropped: made before a reset, or too old to carry forward
        self.tuning: dict[str, Any] = {}  # what warmup() chose: channels_last, region_chunk, ms per face
        self._warm = False
        self._worker: _DetectionWorker | None = None
        self._stop_worker: weakref.finalize | None = None
        self._tokens = itertools.count()
        self.reset()

    def reset(self) -> None:
        """Forget all faces (a new video or camera); the next frame is detected and ids start again at 0.

        A background detection still running is left to finish, and its result is thrown away: it was made on a
        frame of the old video.
        """
        self._tracks: list[_Track] = []
        self._ids = IoUTracker(max_missed=self.max_missed)
        self._prev_gray: np.ndarray | None = None
        self._frame_shape: tuple[int, ...] | None = None
        self._since_detection: int | None = None  # frames since the last detection; None before the first
        self._frame_index = -1  # frames since the reset, the current one included, minus one
        self._pending: int | None = None  # token of the background detection whose result this stream awaits
        self._carry: list[np.ndarray] | None = None  # tracking copies from that detection's frame to the current one
        self.detections = 0

    def warmup(self) -> None:
        """Set the thread count and tune the model now rather than on the first frame (about a second)."""
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        if self.tune:
            self.tuning = _tune_model(self.predictor)
        self._warm = True

    def close(self, timeout: float | None = None) -> None:
        """Stop the detection thread, after the detection it is running (if any) ends; a later frame starts a new one.

        Args:
            timeout: seconds to wait for the thread (``None``: until it ends). It is a daemon thread, so a detector
                that never returns cannot hold up the interpreter's exit.
        """
        if self._stop_worker is not None:
            self._stop_worker.detach()
            self._stop_worker = None
        if self._worker is not None:
            self._worker.close(timeout)
            self._worker = None
        self._pending, self._carry = None, None

    def __enter__(self) -> StreamPredictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_for_detection(self, timeout: float | None = None) -> bool:
        """Block until the background detection in flight, if any, has finished; the next frame applies its result.

        For tests and callers that want a known point; the frame loop never needs it. Returns ``False`` on timeout.
        """
        if self._pending is None or self._worker is None:
            return True
        return self._worker.wait_idle(timeout)

    def __call__(self, frame_rgb: np.ndarray) -> list[FaceResult]:
        """Faces in the next frame, an ``(H, W, 3)`` uint8 RGB array, each with its ``track_id``."""
        frame = np.asarray(frame_rgb)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be (H, W, 3) uint8 RGB arrays, got {frame.shape} {frame.dtype}")
        if not self._warm:
            self.warmup()
        if frame.shape != self._frame_shape:  # another camera or resolution: nothing carries over
            self.reset()
            self._frame_shape = frame.shape
        self._frame_index += 1
        timings = StreamTimings()
        t0 = time.perf_counter()
        gray, scale = None, (1.0, 1.0)
        if self.track:
            gray, scale = _downscaled(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), TRACK_MAX_SIDE)
            if self._tracks and self._prev_gray is not None:
                _follow(self._tracks, self._prev_gray, gray, scale)
            self._drop_outside(frame.shape)
        t1 = time.perf_counter()
        if self.async_detect:
            self._detect_async(frame, gray, scale, timings)
        else:
            due = self._since_detection is None or self._since_detection + 1 >= self.detect_every
            due = due or any(t.quality < self.min_quality for t in self._tracks)
            if due:
                self._detect(frame)
                self._since_detection = 0
            else:
                self._since_detection += 1
            timings.detected = due
        t2 = time.perf_counter()
        self._prev_gray = gray
        dets = [Detection(tuple(t.box), t.score, t.landmarks) for t in self._tracks]
        faces = self.predictor.predict_faces(frame, dets)
        for face, t in zip(faces, self._tracks):
            face.track_id = t.id
        pt = self.predictor.timings
        timings.detection, timings.tracking = t2 - t1, t1 - t0
        timings.alignment, timings.model, timings.faces = pt.alignment, pt.model, len(faces)
        self.timings = timings
        return faces

    # --- detection and tracking -------------------------------------------------------------------------------------

    def _detect(self, frame: np.ndarray) -> None:
        small, (sx, sy) = _downscaled(frame, self.detect_max_side)
        found = [_rescaled(d, sx, sy) for d in self.detector.detect(small)]
        self.detections += 1
        self._apply(_new_tracks(found))

    def _detect_async(
        self, frame: np.ndarray, gray: np.ndarray | None, scale: tuple[float, float], timings: StreamTimings
    ) -> None:
        """Detection off the frame loop: take a finished detection, carry it to this frame, ask for the next one.

        At most one detection is in flight. Its result describes the frame it was made on, some frames back; the
        loop keeps the tracking copies of the frames since then (only while a detection is in flight) and moves the
        detected boxes and landmarks through them with the same optical flow that moves the tracks, frame by frame,
        then matches them to the tracks as an inline detection would be. Carrying the boxes, rather than replaying
        each track's motion, also places faces the tracks did not know yet. A box whose points cannot be followed
        keeps its last place and asks for a new detection at once, as a lost track does.
        """
        if self._carry is not None and gray is not None:
            if len(self._carry) < _MAX_CARRY_FRAMES:
                self._carry.append(gray)
            else:  # the detection is too old to carry forward: forget it (counted when it comes), ask again
                self._pending, self._carry = None, None
        if self._since_detection is None:  # nothing to track yet: this frame waits for its detection
            self._submit(frame, gray)
            self._since_detection = 0
            result = self._collect(block=True)
        else:
            self._since_detection += 1
            result = self._collect(block=False)
        if result is not None:
            self._apply_result(result, scale, timings)
        due = self._since_detection >= self.detect_every or any(t.quality < self.min_quality for t in self._tracks)
        if due and self._pending is None:
            self._submit(frame, gray)
            self._since_detection = 0

    def _submit(self, frame: np.ndarray, gray: np.ndarray | None) -> None:
        small, _ = _downscaled(frame, self.detect_max_side)
        if np.shares_memory(small, frame):  # the caller may reuse its frame buffer while the detector reads
            small = small.copy()
        if self._worker is None:
            self._worker = _DetectionWorker(self.detector.detect)
            # A stream dropped without close() stops its thread when it is collected (not at exit: it is a daemon).
            self._stop_worker = weakref.finalize(self, self._worker.close, 1.0)
            self._stop_worker.atexit = False
        self._pending = next(self._tokens)
        self._carry = [gray] if gray is not None else None
        self._worker.submit(_DetectionJob(self._pending, self._frame_index, small))
        self.detections += 1

    def _collect(self, block: bool) -> _DetectionResult | None:
        """The result of the detection this stream awaits once it has finished (waiting for it when ``block``)."""
        while self._pending is not None and self._worker is not None:
            results = self._worker.take(block)
            for r in results:
                if r.token == self._pending:
                    self._pending = None
                    return r
                self.discarded += 1  # submitted before a reset, or given up as too old
            if not results:
                if block:  # the worker holds no job of ours (it was closed): nothing will come
                    self._pending, self._carry = None, None
                return None
        return None

    def _apply_result(self, result: _DetectionResult, scale: tuple[float, float], timings: StreamTimings) -> None:
        carry, self._carry = self._carry, None
        timings.background_detection = result.seconds
        if result.error is not None:
            self.detection_errors += 1
            logger.warning(
                "face detection failed on a background thread (%s: %s); the faces are tracked until the next one",
                type(result.error).__name__,
                result.error,
                exc_info=result.error if self.detection_errors == 1 else None,
            )
            return
        (h, w), (small_h, small_w) = self._frame_shape[:2], result.image_shape
        fresh = _new_tracks([_rescaled(d, w / small_w, h / small_h) for d in result.found])
        if carry is not None and len(carry) > 1 and fresh:
            lowest = np.ones(len(fresh))
            for prev, gray in itertools.pairwise(carry):
                _follow(fresh, prev, gray, scale)
                lowest = np.minimum(lowest, [t.quality for t in fresh])
            for t, q in zip(fresh, lowest):
                t.quality = float(q)
        self._apply(fresh)
        timings.detected = True
        timings.detection_lag = self._frame_index - result.frame_index

    def _apply(self, fresh: list[_Track]) -> None:
        """Make ``fresh`` detections (in the current frame) the tracks, keeping the ids of the faces they continue."""
        # Match against where the faces are now (tracked), not where they were at the last detection.
        by_id = {t.id: t for t in self._tracks}
        for tr in self._ids.tracks:
            if tr.id in by_id:
                tr.box = by_id[tr.id].box.copy()
        ids = self._ids.update([t.box for t in fresh])
        kept_ids = {tr.id for tr in self._ids.tracks}
        tracks = []
        for tid, t in zip(ids, fresh):
            t.id = tid
            tracks.append(t)
            by_id.pop(tid, None)
        # A face the detector missed stays while it is still followed well (a blink, motion blur), up to max_missed.
        for t in by_id.values():
            if self.track and t.id in kept_ids and t.quality >= self.min_quality:
                tracks.append(t)
        tracks.sort(key=lambda t: t.id)
        self._set_tracks(tracks)

    def _drop_outside(self, shape: tuple[int, ...]) -> None:
        h, w = shape[:2]
        self._set_tracks([t for t in self._tracks if _visible_share(t.box, w, h) >= _MIN_VISIBLE])

    def _set_tracks(self, tracks: list[_Track]) -> None:
        self._tracks = tracks
        alive = {t.id for t in tracks}
        self._ids.tracks = [tr for tr in self._ids.tracks if tr.id in alive]


# --- the detection thread -----------------------------------------------------------------------------------------


@dataclass
class _DetectionJob:
    token: int
    frame_index: int
    image: np.ndarray  # the downscaled copy the detector sees


@dataclass
class _DetectionResult:
    token: int
    frame_index: int
    image_shape: tuple[int, int]  # (H, W) of the copy the boxes are in
    found: list[Detection]
    seconds: float
    error: Exception | None = None


class _DetectionWorker:
    """A daemon thread that runs ``detect`` on one submitted image at a time and keeps the results until taken.

    It holds no reference to its stream, so a stream dropped without ``close()`` can be collected and its finalizer
    stop the thread. A job submitted while another waits to start replaces it.
    """

    def __init__(self, detect: Callable[[np.ndarray], list[Detection]]) -> None:
        self._detect = detect
        self._cond = threading.Condition()
        self._job: _DetectionJob | None = None
        self._running = False
        self._done: list[_DetectionResult] = []
        self._stop = False
        self.thread = threading.Thread(target=self._run, name="ran-core-detect", daemon=True)
        self.thread.start()

    def submit(self, job: _DetectionJob) -> None:
        with self._cond:
            self._job = job
            self._cond.notify_all()

    def take(self, block: bool) -> list[_DetectionResult]:
        """Finished results, oldest first; with ``block``, waits for one while a job is queued or running."""
        with self._cond:
            if block:
                self._cond.wait_for(lambda: self._done or self._stop or (self._job is None and not self._running))
            done, self._done = self._done, []
            return done

    def wait_idle(self, timeout: float | None = None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._stop or (self._job is None and not self._running), timeout)

    def close(self, timeout: float | None = None) -> None:
        with self._cond:
            self._stop, self._job = True, None
            self._cond.notify_all()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._job is not None or self._stop)
                if self._stop:
                    return
                job, self._job, self._running = self._job, None, True
            t0 = time.perf_counter()
            found, error = [], None
            try:
                found = list(self._detect(job.image))
            except Exception as exc:  # noqa: BLE001 - reported to the frame loop, which carries on tracking
                error = exc
            result = _DetectionResult(
                job.token, job.frame_index, job.image.shape[:2], found, time.perf_counter() - t0, error
            )
            with self._cond:
                self._running = False
                self._done.append(result)
                self._cond.notify_all()


def _follow(tracks: list[_Track], prev: np.ndarray, gray: np.ndarray, scale: tuple[float, float]) -> None:
    """Move ``tracks`` from ``prev`` to ``gray`` (tracking copies, ``scale`` = frame px per copy px), in place."""
    sx, sy = scale
    seeds, owners = [], []
    for i, t in enumerate(tracks):
        pts = _corners(prev, t.box / [sx, sy, sx, sy])
        seeds.append(pts)
        owners.append(np.full(len(pts), i))
    p0 = np.concatenate(seeds).astype(np.float32).reshape(-1, 1, 2)
    owner = np.concatenate(owners)
    if len(p0) == 0:
        for t in tracks:
            t.quality = 0.0
        return
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, gray, p0, None, **_LK)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev, p1, None, **_LK)
    fb = np.linalg.norm((p0 - back).reshape(-1, 2), axis=1)
    good = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < _FB_MAX_PX)
    to_copy = np.diag([1 / sx, 1 / sy])
    for i, t in enumerate(tracks):
        sel = owner == i
        ok = sel & good
        t.quality = 0.0
        if ok.sum() < _MIN_POINTS:
            continue
        m, inliers = cv2.estimateAffinePartial2D(
            p0[ok].reshape(-1, 2), p1[ok].reshape(-1, 2), method=cv2.RANSAC, ransacReprojThreshold=_RANSAC_PX
        )
        if m is None:
            continue
        zoom = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
        if not 1 / _MAX_ZOOM_STEP < zoom < _MAX_ZOOM_STEP:
            continue
        # The same motion in frame pixels: copy = D @ frame, so frame' = D^-1 (A D p + b).
        lin = np.linalg.inv(to_copy) @ m[:, :2] @ to_copy
        shift = np.linalg.inv(to_copy) @ m[:, 2]
        centre = lin @ ((t.box[:2] + t.box[2:]) / 2) + shift
        half = (t.box[2:] - t.box[:2]) / 2 * zoom
        t.box = np.concatenate([centre - half, centre + half])
        if t.landmarks is not None:
            t.landmarks = t.landmarks @ lin.T + shift
        t.quality = float(inliers.sum()) / float(sel.sum())


def _new_tracks(found: list[Detection]) -> list[_Track]:
    """Detections in frame pixels as tracks without an id yet."""
    return [_Track(-1, np.array(d.box, dtype=np.float64), d.landmarks, d.score) for d in found]


def _downscaled(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, tuple[float, float]]:
    """``image`` shrunk to at most ``max_side`` and the per-axis ratio (original px per copy px)."""
    h, w = image.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return np.ascontiguousarray(image), (1.0, 1.0)
    f = max_side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return small, (w / size[0], h / size[1])


def _rescaled(det: Detection, sx: float, sy: float) -> Detection:
    box = (det.box[0] * sx, det.box[1] * sy, det.box[2] * sx, det.box[3] * sy)
    lm = None if det.landmarks is None else det.landmarks * np.array([sx, sy])
    return Detection(box, det.score, lm)


def _corners(gray: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``(N, 2)`` points to follow inside ``box``: strong corners, or a grid where the face has too few."""
    h, w = gray.shape
    bw, bh = box[2] - box[0], box[3] - box[1]
    # The inner 80 % of the box: its border holds background, which does not move with the face.
    x0, y0 = int(max(0, box[0] + 0.1 * bw)), int(max(0, box[1] + 0.1 * bh))
    x1, y1 = int(min(w, box[2] - 0.1 * bw)), int(min(h, box[3] - 0.1 * bh))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return np.zeros((0, 2), np.float32)
    roi = gray[y0:y1, x0:x1]
    min_dist = max(2.0, min(x1 - x0, y1 - y0) / 12)
    pts = cv2.goodFeaturesToTrack(roi, _MAX_CORNERS, 0.01, min_dist)
    if pts is None or len(pts) < 2 * _MIN_POINTS:
        gx, gy = np.meshgrid(np.linspace(0, x1 - x0 - 1, 6), np.linspace(0, y1 - y0 - 1, 6))
        grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
        pts = grid if pts is None else np.concatenate([pts.reshape(-1, 2), grid])
    return (pts.reshape(-1, 2) + [x0, y0]).astype(np.float32)


def _visible_share(box: np.ndarray, w: int, h: int) -> float:
    area = max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
    iw = max(0.0, min(box[2], w) - max(box[0], 0.0))
    ih = max(0.0, min(box[3], h) - max(box[1], 0.0))
    return iw * ih / area if area > 0 else 0.0


def _tune_model(predictor: Predictor, repeats: int = 10) -> dict[str, Any]:
    """Keep the fastest of NCHW / channels_last (each with its best ``region_chunk``) for one face, in place."""
    model = predictor.model
    if not hasattr(model, "channels_last"):
        return {}
    cfg = predictor.config
    k = getattr(model, "num_regions", 1)
    x = torch.randn(1, k, cfg.in_chans, cfg.input_size, cfg.input_size, device=predictor.device)
    results = {}
    for channels_last in (False, True):
        model.channels_last = channels_last
        model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
        chunk = model.autotune_region_chunk(batch_size=1, repeats=repeats, device=predictor.device)
        with torch.inference_mode():
            model(x)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
        results[channels_last] = (statistics.median(times), chunk)
    best = min(results, key=lambda c: results[c][0])
    model.channels_last = best
    model.to(memory_format=torch.channels_last if best else torch.contiguous_format)
    model.region_chunk = results[best][1]
    return {"channels_last": best, "region_chunk": results[best][1], "ms": 1000 * results[best][0]}


# --- measuring --------------------------------------------------------------------------------------------------------


def measure_stream_fps(
    video_path: str | Path, predictor_or_stream: Predictor | StreamPredictor, max_frames: int | None = 300
) -> dict[str, Any]:
    """Run the live path over a video file and time every stage, frame by frame.

    Each frame is decoded (``cv2.VideoCapture``, BGR -> RGB) and given to a :class:`StreamPredictor` (built with
    its defaults from a plain :class:`~ran_core.predictor.Predictor`, so detecting on a background thread, and closed
    at the end; a given stream is reset first and left open). Thread setup and model tuning happen before the clock
    starts; every frame after that is timed, the first detection included.

    Args:
        video_path: any video OpenCV can read.
        predictor_or_stream: what to run.
        max_frames: stop after this many frames (``None``: the whole video).

    Returns:
        ``fps``: frames per second end to end (frames / total seconds); ``frames``: frames timed;
        ``faces_per_frame``: mean faces returned; ``detections``: detector runs; ``detection_errors``: detector
        runs that raised (background only); ``detector_ms_per_run``: median milliseconds of one detector run, in the
        loop or on the background thread; ``max_detection_lag``: most frames between the frame a detection was made
        on and the frame it was applied to (0 when inline); ``ms``: mean milliseconds per frame of ``decode``,
        ``detect`` (the loop's share, amortised over all frames), ``detect_background`` (the detector on its thread,
        amortised likewise; not part of ``total``), ``track``, ``align_regions``, ``model``, ``other`` (the rest of
        the path: result objects, bookkeeping) and ``total``; ``latency_ms``: ``median``, ``p95`` and ``max`` of one
        frame's total; ``settings``: the stream's detector name, ``detect_every``, ``detect_max_side``, ``track``,
        ``async_detect`` and the model's ``backend`` (``torch`` or ``onnx``).

    Raises:
        ValueError: the video cannot be opened or has no frames.
    """
    stream = predictor_or_stream
    owned = isinstance(stream, Predictor)
    if owned:
        stream = StreamPredictor(stream)
    stream.reset()
    stream.warmup()
    cap = cv2.VideoCapture(str(video_path))
    if not cap.isOpened():
        raise ValueError(f"cannot open video {video_path}")
    keys = ("decode", "detect", "detect_background", "track", "align_regions", "model", "other", "total")
    per_frame: dict[str, list[float]] = {k: [] for k in keys}
    faces: list[int] = []
    runs: list[float] = []  # seconds of each detector run applied
    lags: list[int] = []
    try:
        while max_frames is None or len(faces) < max_frames:
            t0 = time.perf_counter()
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            t1 = time.perf_counter()
            result = stream(rgb)
            t2 = time.perf_counter()
            tm = stream.timings
            parts = (t1 - t0, tm.detection, tm.background_detection, tm.tracking, tm.alignment, tm.model)
            for key, value in zip(keys, parts):
                per_frame[key].append(value)
            per_frame["other"].append(max(0.0, (t2 - t1) - tm.total))
            per_frame["total"].append(t2 - t0)
            faces.append(len(result))
            if tm.detected:
                runs.append(tm.background_detection if stream.async_detect else tm.detection)
                lags.append(tm.detection_lag)
    finally:
        cap.release()
        if owned:
            stream.close()
    if not faces:
        raise ValueError(f"no frames could be read from {video_path}")
    total = np.asarray(per_frame["total"])
    detector = stream.detector
    return {
        "fps": len(faces) / float(total.sum()),
        "frames": len(faces),
        "faces_per_frame": float(np.mean(faces)),
        "detections": stream.detections,
        "detection_errors": stream.detection_errors,
        "detector_ms_per_run": 1000 * float(np.median(runs)) if runs else None,
        "max_detection_lag": max(lags, default=0),
        "ms": {k: 1000 * float(np.mean(v)) for k, v in per_frame.items()},
        "latency_ms": {
            "median": 1000 * float(np.median(total)),
            "p95": 1000 * float(np.percentile(total, 95)),
            "max": 1000 * float(total.max()),
        },
        "settings": {
            "detector": getattr(detector, "name", type(detector).__name__),
            "detect_every": stream.detect_every,
            "detect_max_side": stream.detect_max_side,
            "track": stream.track,
            "async_detect": stream.async_detect,
            "backend": getattr(stream.predictor, "backend", "torch"),
        },
    }
