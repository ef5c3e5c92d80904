"""Frame sources for the live view: an OpenCV camera, or a video file (the fake camera of the tests). No Qt here.

:class:`~ran_viewer.workers.camera.CameraWorker` opens a source on its own thread and reads frames as fast as the
source gives them; the inference worker keeps only the newest one (a one-slot queue), so a slow model never builds a
backlog. A video file also says where in the file each frame is (:attr:`VideoFileSource.frame_time`) and can be
asked, from any thread, to jump to another frame (:meth:`VideoFileSource.request_seek`)."""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np


class CameraError(RuntimeError):
    """A camera or video could not be opened or stopped delivering frames; the message says what to check."""


class FrameSource(Protocol):
    """What the camera worker reads from.

    Optional, for sources that are files: ``seekable`` (True), ``fps`` and ``frame_count`` of the file, ``frame_time``
    (seconds into the file of the frame last read), ``request_seek(frame)`` and ``seek_pending``. Without them the
    worker stamps frames with a monotonic clock and cannot seek.
    """

    name: str
    ended: bool  # True once a finite source (a video file) has no more frames

    def open(self) -> None:
        """Open the source; raises :class:`CameraError` with a user-facing message when it cannot."""

    def read(self) -> np.ndarray | None:
        """The next frame as (H, W, 3) uint8 RGB, or ``None`` when none is available right now."""

    def close(self) -> None:
        """Release the device or file (safe to call twice)."""


class OpenCVCamera:
    """A webcam through ``cv2.VideoCapture``."""

    def __init__(self, index: int = 0, width: int | None = None, height: int | None = None) -> None:
        self.index = int(index)
        self.name = f"camera {self.index}"
        self.ended = False
        self._size = (width, height)
        self._cap = None

    def open(self) -> None:
        try:
            import cv2
        except ImportError as exc:  # pragma: no cover - opencv is a dependency
            raise CameraError(f"OpenCV is not available, so no camera can be opened ({exc})") from None
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise CameraError(
                f"Camera {self.index} could not be opened: it is missing, unplugged, busy in another application, or "
                "this user may not access it. Check the cable, close other camera apps, or choose another camera."
            )
        w, h = self._size
        if w:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
        if h:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        self._cap = cap

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        return np.ascontiguousarray(bgr[..., ::-1])

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoFileSource:
    """A video file played as if it were a camera.

    Args:
        path: the video.
        fps: playback rate; ``None`` uses the file's own rate, ``0`` reads as fast as possible.
        loop: start again at the end (the app's demo mode); otherwise :attr:`ended` becomes True.
    """

    def __init__(self, path: str | Path, fps: float | None = None, loop: bool = False) -> None:
        self.path = Path(path)
        self.name = self.path.name
        self.ended = False
        self.loop = loop
        self.seekable = True
        self._fps = fps
        self._cap = None
        self._next_t = 0.0
        self.frames_read = 0
        self.fps = 0.0  # the file's own frame rate (frame times come from it, whatever the playback rate)
        self.frame_count = 0
        self.position = -1  # index in the file of the frame last read
        self._seek_lock = threading.Lock()
        self._seek_to: int | None = None

    @property
    def frame_time(self) -> float | None:
        """Seconds into the file of the frame last read (``None`` before the first)."""
        if self.position < 0:
            return None
        return self.position / self.fps

    def request_seek(self, frame: int) -> None:
        """Ask for ``frame`` (0-based, clamped to the file) to be the next frame read. Thread-safe: the GUI asks,
        the camera thread's next :meth:`read` honours it; a newer request replaces one not yet honoured."""
        with self._seek_lock:
            self._seek_to = max(0, int(frame))

    @property
    def seek_pending(self) -> bool:
        """A seek was asked for and the next :meth:`read` will honour it (the worker reads even while paused)."""
        with self._seek_lock:
            return self._seek_to is not None

    def open(self) -> None:
        import cv2

        if not self.path.is_file():
            raise CameraError(f"Video {self.path} not found.")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"Video {self.path} could not be opened (not a video, or a codec OpenCV lacks).")
        file_fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = file_fps if file_fps and file_fps > 0 else 25.0
        self.frame_count = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        if self._fps is None:
            self._fps = self.fps
        self._cap = cap
        self._next_t = time.perf_counter()

    def _apply_seek(self) -> None:
        with self._seek_lock:
            frame, self._seek_to = self._seek_to, None
        if frame is None or self._cap is None:
            return
        import cv2

        if self.frame_count:
            frame = min(frame, self.frame_count - 1)
        self._cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        self.position = frame - 1
        self.ended = False
        self._next_t = time.perf_counter()  # play on from here at the playback rate, no catching up

    def read(self) -> np.ndarray | None:
        if self._cap is None:
            return None
        self._apply_seek()
        if self.ended:
            return None
        if self._fps:
            delay = self._next_t - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self._next_t = max(self._next_t + 1.0 / self._fps, time.perf_counter() - 1.0)
        ok, bgr = self._cap.read()
        if not ok and self.loop and self.frames_read:
            import cv2

            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self.position = -1
            ok, bgr = self._cap.read()
        if not ok or bgr is None:
            self.ended = True
            return None
        self.frames_read += 1
        self.position += 1
        return np.ascontiguousarray(bgr[..., ::-1])

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def make_source(spec: int | str) -> FrameSource:
    """A camera index (``0``, ``"1"``) or a video file path -> a frame source (video files loop)."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        return OpenCVCamera(int(spec))
    return VideoFileSource(spec, loop=True)


class RateMeter:
    """Events per second over a sliding window of the last ``window`` seconds."""

    def __init__(self, window: float = 2.0) -> None:
        self.window = window
        self._times: collections.deque[float] = collections.deque()

    def tick(self, now: float | None = None) -> None:
        """Record one event (now, or at ``now`` seconds)."""
        now = time.perf_counter() if now is None else now
        self._times.append(now)
        while self._times and now - self._times[0] > self.window:
            self._times.popleft()

    @property
    def rate(self) -> float:
        """Events per second over the window."""
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / span if span > 0 else 0.0
