"""The worker threads: inference (latest request wins), camera capture (stale frames dropped), thumbnails."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from viewer_fixtures import FakePredictor, face_image

from ran_viewer.model.analysis import ModelsInfo
from ran_viewer.model.occluders import RectOccluder
from ran_viewer.services.analysis import Analyzer
from ran_viewer.services.camera import CameraError, OpenCVCamera, VideoFileSource
from ran_viewer.workers.base import retire
from ran_viewer.workers.camera import CameraWorker
from ran_viewer.workers.inference import InferenceWorker
from ran_viewer.workers.thumbnails import ThumbnailWorker, load_thumbnail


def collect(worker: InferenceWorker) -> list:
    """Take every result the worker delivers (as the main window does)."""
    got: list = []

    def take() -> None:
        result = worker.take_result()
        if result is not None:
            got.append(result)

    worker.sig_result_ready.connect(take)
    return got


@pytest.fixture
def make_worker(qtbot):
    """Start an InferenceWorker around the given predictors; retire it after the test."""
    workers = []

    def make(ran=None, baseline=None, **kw) -> InferenceWorker:
        w = InferenceWorker(Analyzer(ran, baseline), **kw)
        w.start()
        workers.append(w)
        return w

    yield make
    for w in workers:
        retire(w)


def test_image_request_loads_then_analyses(qtbot, make_worker, image_files: list[Path]) -> None:
    w = make_worker(FakePredictor("ran"), FakePredictor("baseline"))
    loaded, results = [], collect(w)
    w.sig_image_loaded.connect(lambda *a: loaded.append(a))
    seq = w.submit_image(str(image_files[0]), "img_0.png", str(image_files[0]))
    qtbot.waitUntil(lambda: len(results) == 1, timeout=5000)
    a = results[0]
    assert a.kind == "image" and a.seq == seq and a.name == "img_0.png"
    assert len(a.ran_faces) == len(a.baseline_faces) == 1 and a.image.shape == (240, 320, 3)
    assert loaded and loaded[0][0] == seq and loaded[0][1].shape == (240, 320, 3)


def test_unreadable_image_and_model_errors_are_signals(qtbot, make_worker, image_files: list[Path]) -> None:
    broken = FakePredictor("ran")
    broken.predict_faces = lambda *a: (_ for _ in ()).throw(RuntimeError("boom"))
    w = make_worker(broken)
    with qtbot.waitSignal(w.sig_error, timeout=5000) as blocker:
        seq = w.submit_image(str(image_files[-1]))
    assert blocker.args[0] == seq and "broken.jpg" in blocker.args[1]
    with qtbot.waitSignal(w.sig_error, timeout=5000) as blocker:
        w.submit_image(face_image())
    assert "Could not analyse" in blocker.args[1] and "boom" in blocker.args[1]
    assert w.isRunning()  # the thread survived both


class _Gated(Analyzer):
    """An analyzer that holds every request until the test lets it go, so what is replaced is decided by the test,
    not by timing. ``entered`` is released once per request reaching the model; ``seen`` lists what it analysed."""

    def __init__(self) -> None:
        super().__init__(FakePredictor("ran"))
        self.entered = threading.Semaphore(0)
        self.go = threading.Semaphore(0)
        self.seen: list[int] = []
        self._in_frame = False

    def _hold(self, tag: int) -> None:
        self.seen.append(tag)
        self.entered.release()
        if not self.go.acquire(timeout=10):
            raise RuntimeError("the test never let the request go")

    def analyze(self, rgb):
        if not self._in_frame:  # a frame's analysis may call analyze() itself: hold it once
            self._hold(int(rgb[0, 0, 0]))
        return super().analyze(rgb)

    def analyze_frame(self, rgb, index):
        self._hold(index)
        self._in_frame = True
        try:
            return super().analyze_frame(rgb, index)
        finally:
            self._in_frame = False


def _tagged(tag: int) -> np.ndarray:
    img = face_image(seed=tag)
    img[0, 0] = tag  # which request this is, readable by the analyzer
    return img


def test_latest_request_wins(qtbot) -> None:
    gated = _Gated()
    w = InferenceWorker(gated)
    got = collect(w)
    w.start()
    try:
        first = w.submit_image(_tagged(1))
        assert gated.entered.acquire(timeout=5)  # request 1 is in the model
        seqs = [w.submit_image(_tagged(i)) for i in range(2, 7)]  # 2..5 replace each other while it runs; 6 waits
        with qtbot.waitSignal(w.sig_busy, timeout=5000, check_params_cb=lambda busy: not busy):
            gated.go.release()
            assert gated.entered.acquire(timeout=5)
            gated.go.release()
        assert gated.seen == [1, 6]  # 2..5 never ran
        qtbot.waitUntil(lambda: bool(got) and got[-1].seq == seqs[-1], timeout=5000)
        assert {a.seq for a in got} <= {first, seqs[-1]}
    finally:
        gated.go.release(10)
        retire(w)


def test_occlusion_request_applies_occluders_and_keeps_boxes(qtbot, make_worker) -> None:
    w = make_worker(FakePredictor("ran"))
    img = face_image()
    faces = FakePredictor("ran")(img)
    occ = RectOccluder(x1=0, y1=0, x2=320, y2=120)
    got = collect(w)
    w.submit_occlusion(img, [occ], faces, image_seq=3)
    qtbot.waitUntil(lambda: len(got) == 1, timeout=5000)
    a = got[0]
    assert a.kind == "occlusion" and a.image_seq == 3 and (a.image[:120] == 0).all()
    assert (
        a.ran_faces[0].box == faces[0].box and a.ran_faces[0].probabilities.tolist() != faces[0].probabilities.tolist()
    )


def test_model_loading_is_queued_and_reported(qtbot) -> None:
    calls = []

    def loader(ran, baseline, detector, device):
        calls.append((ran, baseline, detector))
        return Analyzer(FakePredictor("ran")), ModelsInfo(ran_name="fake", errors=["baseline missing"])

    w = InferenceWorker(loader=loader)
    results = collect(w)
    w.set_camera_tta("flip")
    w.start()
    try:
        with qtbot.waitSignal(w.sig_models_loaded, timeout=5000) as blocker:
            w.load_models("ran-x", "base-y", "haar")
            w.submit_image(face_image())  # queued behind the load, not dropping it
        assert blocker.args[0].errors == ["baseline missing"] and calls == [("ran-x", "base-y", "haar")]
        assert w.analyzer.camera_tta == "flip"  # the camera's TTA outlives a model load
        qtbot.waitUntil(lambda: len(results) == 1, timeout=5000)
        assert results[0].ran_faces  # analysed with the freshly loaded model
    finally:
        retire(w)


def test_camera_frames_latest_only_stale_frames_dropped(qtbot) -> None:
    """Frames that arrive while the model is busy replace each other (counted as dropped) instead of queueing, and a
    result the GUI has not taken yet is replaced by a newer one: what is analysed and shown is always the newest."""
    gated = _Gated()
    w = InferenceWorker(gated)
    w.start()
    try:
        w.submit_frame(face_image(), 1)
        assert gated.entered.acquire(timeout=5)  # frame 1 is in the model
        for i in range(2, 11):  # frames 2..9 replace each other while it runs; frame 10 waits
            w.submit_frame(face_image(seed=i), i)
        assert w.dropped_frames == 8
        with qtbot.waitSignal(w.sig_busy, timeout=5000, check_params_cb=lambda busy: not busy):
            gated.go.release()  # frame 1 done: its result waits, untaken (a GUI slower than the model)
            assert gated.entered.acquire(timeout=5)
            gated.go.release()
        assert gated.seen == [1, 10]  # the newest frame is never dropped, never older after newer
        shown = w.take_result()
        assert shown.frame_index == 10 and shown.dropped == 8 and w.take_result() is None  # frame 1's was replaced
    finally:
        gated.go.release(10)
        retire(w)


def test_camera_reads_every_frame_of_a_video_in_order(qtbot, fake_camera_video: Path) -> None:
    got: list[int] = []
    seen: list[float] = []
    times: list[float] = []
    cam = CameraWorker(
        lambda: VideoFileSource(fake_camera_video, fps=300),
        lambda f, i, t: (got.append(i), seen.append(f.mean()), times.append(t)),
    )
    stats, sources = [], []
    cam.sig_stats.connect(stats.append)
    cam.sig_source.connect(lambda *a: sources.append(a))
    with qtbot.waitSignal(cam.sig_ended, timeout=10000):
        cam.start()
    cam.wait(2000)
    assert cam.frames_read == 60 and got == list(range(1, 61)) and stats
    assert seen[-1] > seen[0]  # brightness grows 4 per frame: the frames come in file order
    assert sources == [(30.0, 60, True)]  # the file's own rate, whatever the playback rate
    assert times == pytest.approx([k / 30 for k in range(60)])  # frame times in the file, not the wall clock


def test_camera_pause_and_resume(qtbot, fake_camera_video: Path) -> None:
    got = []
    cam = CameraWorker(lambda: VideoFileSource(fake_camera_video, fps=100), lambda f, i, t: got.append(i))
    cam.start()
    try:
        qtbot.waitUntil(lambda: len(got) >= 3, timeout=5000)
        with qtbot.waitSignal(cam.sig_paused, timeout=5000, check_params_cb=lambda paused: paused):
            cam.set_paused(True)
        n = len(got)  # the loop said it stopped reading: nothing may arrive from here on
        qtbot.waitUntil(lambda: cam.isRunning(), timeout=1000)
        assert len(got) == n and got == list(range(1, n + 1))
        with qtbot.waitSignal(cam.sig_paused, timeout=5000, check_params_cb=lambda paused: not paused):
            cam.set_paused(False)
        qtbot.waitUntil(lambda: len(got) > n, timeout=5000)
        assert got[n] == n + 1  # it continues with the next frame: pausing lost none
    finally:
        retire(cam)
    assert not cam.isRunning()


def test_a_paused_video_seeks_to_the_asked_frame(qtbot, fake_camera_video: Path) -> None:
    """A seek asked from the GUI thread is honoured by the camera thread, even while paused: exactly that frame
    comes, with its time in the file."""
    got: list[tuple[float, float]] = []
    cam = CameraWorker(
        lambda: VideoFileSource(fake_camera_video, fps=100), lambda f, i, t: got.append((t, float(f[5, 150, 0])))
    )
    cam.start()
    try:
        qtbot.waitUntil(lambda: len(got) >= 3, timeout=5000)
        with qtbot.waitSignal(cam.sig_paused, timeout=5000, check_params_cb=lambda paused: paused):
            cam.set_paused(True)
        n = len(got)
        assert cam.request_seek(40)
        qtbot.waitUntil(lambda: len(got) == n + 1, timeout=5000)
        t, value = got[-1]
        assert t == pytest.approx(40 / 30) and abs(value - 4 * 40) <= 3  # frame 40 has brightness 160
        assert cam.request_seek(10)
        qtbot.waitUntil(lambda: len(got) == n + 2, timeout=5000)
        assert got[-1][0] == pytest.approx(10 / 30) and abs(got[-1][1] - 40) <= 3  # backwards too
    finally:
        retire(cam)


def test_a_live_camera_stamps_frames_with_a_clock_and_cannot_seek(qtbot) -> None:
    class Live:
        name = "camera 0"
        ended = False

        def open(self):
            pass

        def read(self):
            return np.zeros((8, 8, 3), np.uint8)

        def close(self):
            pass

    times: list[float] = []
    sources: list[tuple] = []
    cam = CameraWorker(Live, lambda f, i, t: times.append(t))
    cam.sig_source.connect(lambda *a: sources.append(a))
    cam.start()
    try:
        qtbot.waitUntil(lambda: len(times) >= 5, timeout=5000)
        assert not cam.request_seek(3) and sources == [(0.0, 0, False)]
        snapshot = list(times[:5])
        assert snapshot == sorted(snapshot) and snapshot[0] >= 0.0
    finally:
        retire(cam)


def test_missing_camera_reports_clearly(qtbot) -> None:
    class Missing:
        name = "camera 7"
        ended = False

        def open(self):
            raise CameraError("Camera 7 could not be opened: it is missing")

        def read(self):
            return None

        def close(self):
            pass

    cam = CameraWorker(Missing, lambda f, i, t: None)
    with qtbot.waitSignal(cam.sig_error, timeout=5000) as blocker:
        cam.start()
    assert "could not be opened" in blocker.args[0]
    retire(cam)


def test_real_missing_camera_index(qtbot) -> None:
    cam = CameraWorker(lambda: OpenCVCamera(97), lambda f, i, t: None)
    with qtbot.waitSignal(cam.sig_error, timeout=10000) as blocker:
        cam.start()
    assert "Camera 97 could not be opened" in blocker.args[0]
    retire(cam)


def test_unplugged_camera_reports_and_stops(qtbot) -> None:
    class Unplugged:
        name = "camera 0"
        ended = False
        reads = 0

        def open(self):
            pass

        def read(self):
            Unplugged.reads += 1
            return np.zeros((8, 8, 3), np.uint8) if Unplugged.reads < 3 else None

        def close(self):
            pass

    cam = CameraWorker(Unplugged, lambda f, i, t: None)
    cam.MAX_FAILED_READS = 5
    with qtbot.waitSignal(cam.sig_error, timeout=5000) as blocker:
        cam.start()
    assert "stopped delivering frames" in blocker.args[0] and cam.frames_read == 2
    retire(cam)


def test_thumbnails_load_off_thread(qtbot, image_files: list[Path]) -> None:
    w = ThumbnailWorker([str(p) for p in image_files], size=32)
    got = {}
    w.sig_thumbnail.connect(lambda i, img: got.__setitem__(i, img))
    with qtbot.waitSignal(w.finished, timeout=5000):
        w.start()
    qtbot.waitUntil(lambda: len(got) == 4, timeout=2000)
    assert max(got[0].width(), got[0].height()) == 32 and got[3].isNull()  # the broken file: empty thumbnail
    assert load_thumbnail("/no/such/file.png").isNull()


def test_retire_stops_a_busy_worker(qtbot) -> None:
    gate = threading.Event()
    w = InferenceWorker(Analyzer(FakePredictor("ran", gate=gate)))
    stop = w.stop
    w.stop = lambda: (stop(), gate.set())  # the model call ends once the stop is asked for, not before
    w.start()
    with qtbot.waitSignal(w.sig_busy, timeout=5000, check_params_cb=lambda busy: busy):
        w.submit_image(face_image())  # the request is being worked on once the worker says it is busy
    retire(w)
    assert not w.isRunning()


def test_reset_frame_stats_never_resets_tracking_beside_a_running_frame(qtbot, make_worker) -> None:
    """The tracker and stream belong to the worker thread: a reset from the GUI thread waits for the frame."""
    import threading

    class _Blocking(Analyzer):
        def __init__(self) -> None:
            super().__init__(FakePredictor("ran"))
            self.inside = threading.Event()
            self.release = threading.Event()
            self.resets: list[bool] = []  # for each reset: was a frame being analysed?

        def analyze_frame(self, rgb, index):
            self.inside.set()
            self.release.wait(10)
            try:
                return super().analyze_frame(rgb, index)
            finally:
                self.inside.clear()

        def reset_tracking(self) -> None:
            self.resets.append(self.inside.is_set())
            super().reset_tracking()

    analyzer = _Blocking()
    w = InferenceWorker(analyzer)
    w.start()
    try:
        w.submit_frame(face_image(), 0)
        assert analyzer.inside.wait(5)
        w.reset_frame_stats()  # from this (the GUI) thread, while the frame is being analysed
        assert analyzer.resets == [] and w.dropped_frames == 0
        analyzer.release.set()
        qtbot.waitUntil(lambda: analyzer.resets == [False], timeout=5000)
    finally:
        analyzer.release.set()
        retire(w)


def test_whole_face_mode_reads_a_crop_the_detector_cannot_find(qtbot, tiny_models) -> None:
    analyzer, info = Analyzer.load(str(tiny_models["ran"]), str(tiny_models["baseline"]), detector="haar")
    assert not info.errors
    assert info.ran_mean == tuple(analyzer.ran.config.mean)  # what "cover regions by weight" fills with
    w = InferenceWorker(analyzer)
    got = collect(w)
    w.start()
    try:
        crop = np.full((48, 48, 3), 128, np.uint8)  # a flat "face crop": no detector finds a face in it
        w.submit_image(crop, "crop")
        qtbot.waitUntil(lambda: len(got) == 1, timeout=10000)
        assert got[0].ran_faces == []
        w.set_face_mode("whole")
        w.submit_image(crop, "crop")
        qtbot.waitUntil(lambda: len(got) == 2, timeout=10000)
        assert len(got[1].ran_faces) == 1 and len(got[1].baseline_faces) == 1
        assert got[1].ran_faces[0].box == (0.0, 0.0, 48.0, 48.0)
    finally:
        retire(w)
