"""StreamPredictor on short recorded videos of a moving face: ids, tracked boxes, detection schedule, faces leaving,
and detection on a background thread (driven by a detector the test holds, never by sleeping)."""

from __future__ import annotations

import gc
import logging
import math
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ran_core import create_model, save_model
from ran_core.faces import Detection, box_iou, create_detector
from ran_core.imageio import read_image
from ran_core.predictor import Predictor
from ran_core.stream import DEFAULT_DETECT_EVERY, StreamPredictor, measure_stream_fps

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"
W, H = 640, 480


class _Counting:
    """Wraps a detector and records the size of every image it is given."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.sizes: list[tuple[int, int]] = []

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        self.sizes.append(rgb.shape[:2])
        return self.inner.detect(rgb)


def _write_video(path: Path, n: int, start: tuple[float, float], step: tuple[float, float], zoom: float) -> Path:
    """A 640x480 video of the Grace Hopper photo (320 px tall) sliding by ``step`` px and zooming to ``zoom``."""
    rgb = read_image(SAMPLES / "grace_hopper.jpg")
    photo = cv2.resize(rgb, (round(rgb.shape[1] * 320 / rgb.shape[0]), 320), interpolation=cv2.INTER_AREA)
    for fourcc, suffix in (("MJPG", ".avi"), ("mp4v", ".mp4")):
        out = path.with_suffix(suffix)
        writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*fourcc), 30.0, (W, H))
        if writer.isOpened():
            break
    else:
        pytest.skip("OpenCV cannot write MJPG or mp4v video here")
    for i in range(n):
        z = 1 + (zoom - 1) * i / max(n - 1, 1)
        m = np.array([[z, 0, start[0] + step[0] * i], [0, z, start[1] + step[1] * i]])
        frame = cv2.warpAffine(photo, m, (W, H), borderValue=(96, 96, 96))
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return out


def _read(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("model")
    save_model(create_model("ran_compact"), out)
    return out


@pytest.fixture(scope="module")
def mtcnn():
    return create_detector("mtcnn")


@pytest.fixture(scope="module")
def drifting(tmp_path_factory) -> Path:
    """40 frames: the face moves 6 px right and 2 px down a frame and grows by 15 %."""
    return _write_video(tmp_path_factory.mktemp("video") / "drift", 40, (40, 60), (6, 2), 1.15)


def _stream(model_dir: Path, detector, **kw) -> StreamPredictor:
    kw.setdefault("async_detect", False)  # the schedule tests need detections on known frames
    return StreamPredictor(Predictor(model_dir, detector=detector), tune=False, **kw)


def test_one_track_follows_the_face_between_detections(model_dir, mtcnn, drifting) -> None:
    frames = _read(drifting)
    assert len(frames) == 40
    counting = _Counting(mtcnn)
    stream = _stream(model_dir, counting, detect_every=5)
    detected, checked = [], 0
    for i, rgb in enumerate(frames):
        faces = stream(rgb)
        detected.append(stream.timings.detected)
        assert len(faces) == 1 and faces[0].track_id == 0, i
        f = faces[0]
        x1, y1, x2, y2 = f.box
        assert all(x1 <= x <= x2 and y1 <= y <= y2 for x, y in f.landmarks), i  # landmarks move with the box
        if i % 5 in (2, 4):  # frames between detections: compare with what the detector finds there
            (fresh,) = mtcnn.detect(rgb)
            assert box_iou(np.array(f.box), np.array(fresh.box))[0, 0] > 0.5, i
            checked += 1
    assert checked == 16
    assert [i for i, d in enumerate(detected) if d] == list(range(0, 40, 5))
    assert len(counting.sizes) == 8 and all(max(s) == 320 for s in counting.sizes)  # on the downscaled copy


def test_a_lost_face_is_detected_again_at_once(model_dir, mtcnn, drifting) -> None:
    frames = _read(drifting)[:6]
    jumped = np.roll(frames[2], (40, 200), axis=(0, 1))  # a cut: the face is elsewhere, no flow leads there
    stream = _stream(model_dir, mtcnn, detect_every=10)
    for rgb in frames[:2]:
        (before,) = stream(rgb)
    (face,) = stream(jumped)
    assert stream.timings.detected and stream.detections == 2
    (fresh,) = mtcnn.detect(jumped)
    # found where it is now (MTCNN's boxes on the 320 px copy and on the full frame differ by a few pixels)
    assert box_iou(np.array(face.box), np.array(fresh.box))[0, 0] > 0.7
    assert box_iou(np.array(face.box), np.array(before.box))[0, 0] == 0


def test_a_face_leaving_the_frame_is_dropped(model_dir, tmp_path) -> None:
    video = _write_video(tmp_path / "leave", 24, (300, 80), (25, 0), 1.0)
    stream = _stream(model_dir, "haar", detect_every=8)
    counts = [len(stream(rgb)) for rgb in _read(video)]
    assert counts[0] == 1
    assert counts[-6:] == [0] * 6  # the photo's left edge is past x = 640 from frame 14 on
    assert set(counts) <= {0, 1}


def test_without_tracking_the_detected_boxes_are_reused(model_dir, mtcnn, drifting) -> None:
    stream = _stream(model_dir, mtcnn, detect_every=3, track=False)
    boxes = [stream(rgb)[0].box for rgb in _read(drifting)[:4]]
    assert boxes[0] == boxes[1] == boxes[2] != boxes[3]
    assert stream.detections == 2


def test_measure_stream_fps_reports_every_stage(model_dir, drifting) -> None:
    predictor = Predictor(model_dir, detector="haar")
    r = measure_stream_fps(drifting, predictor, max_frames=12)
    assert r["frames"] == 12 and r["fps"] > 0 and r["faces_per_frame"] == 1.0
    assert set(r["ms"]) == {
        "decode", "detect", "detect_background", "track", "align_regions", "model", "other", "total"
    }  # fmt: skip
    assert all(v >= 0 for v in r["ms"].values()) and r["ms"]["total"] >= r["ms"]["model"] > 0
    assert set(r["latency_ms"]) == {"median", "p95", "max"}
    every = DEFAULT_DETECT_EVERY
    assert r["settings"] == {
        "detector": "haar", "detect_every": every, "detect_max_side": 320, "track": True, "async_detect": True,
        "backend": "torch",
    }  # fmt: skip
    assert r["detection_errors"] == 0 and r["detector_ms_per_run"] > 0
    assert r["detections"] == math.ceil(12 / every)
    # tuning kept a layout the model can run, and it still gives the same answer as a plain NCHW pass
    model = predictor.model
    assert model.region_chunk in (None, 3, 1)
    x = torch.rand(1, 6, 1, 48, 48)
    with torch.inference_mode():
        tuned = model(x).logits
        model.channels_last, model.region_chunk = False, None
        plain = model.to(memory_format=torch.contiguous_format)(x).logits
    torch.testing.assert_close(tuned, plain, atol=1e-4, rtol=1e-4)


def test_bad_settings_and_frames_are_refused(model_dir) -> None:
    predictor = Predictor(model_dir, detector="haar")
    with pytest.raises(ValueError, match="detect_every"):
        StreamPredictor(predictor, detect_every=0)
    with pytest.raises(ValueError, match="uint8"):
        StreamPredictor(predictor, tune=False)(np.zeros((48, 64, 3), np.float32))


def test_haar_min_face_skips_only_faces_too_small_to_classify() -> None:
    """Not scanning windows under 40 px keeps the sample faces' boxes exactly."""
    for name in ("grace_hopper", "astronaut"):
        rgb = read_image(SAMPLES / f"{name}.jpg")
        (fast,) = create_detector("haar").detect(rgb)
        (full,) = create_detector("haar", min_face=0).detect(rgb)
        assert fast.box == full.box


# --- detection on a background thread ---------------------------------------------------------------------------------


class _Held:
    """A detector the test holds: each call waits for ``gate``; ``script`` answers a call instead of the real detector
    (read when the call starts), ``fail`` names calls that raise. Records the thread of every call."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.script: dict[int, list[Detection]] = {}
        self.fail: set[int] = set()
        self.threads: list[threading.Thread] = []

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        self.threads.append(threading.current_thread())
        call = len(self.threads)
        self.entered.release()
        if not self.gate.wait(timeout=60):
            raise TimeoutError("the test never let the detector go")
        if call in self.fail:
            raise RuntimeError(f"detector failure on call {call}")
        return self.script[call] if call in self.script else self.inner.detect(rgb)

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def wait_entered(self) -> None:
        assert self.entered.acquire(timeout=60), "the detector was never called"


def _iou(face, detector, rgb: np.ndarray) -> float:
    (fresh,) = detector.detect(rgb)
    return float(box_iou(np.array(face.box), np.array(fresh.box))[0, 0])


def test_frames_never_wait_for_a_background_detection(model_dir, mtcnn, drifting) -> None:
    frames = _read(drifting)
    held = _Held(create_detector("haar"))
    stream = _stream(model_dir, held, detect_every=3, async_detect=True)
    (first,) = stream(frames[0])  # nothing to track yet: the first frame waits for its detection
    assert first.track_id == 0 and stream.timings.detected and stream.timings.detection_lag == 0
    held.hold()
    for rgb in frames[1:4]:
        stream(rgb)
    held.wait_entered()  # call 1 was frame 0's; frame 3 asked for the next and the detector is now stuck in it
    held.wait_entered()
    boxes = []
    for i in range(4, 14):  # the detector is held all along: had any frame waited for it, this loop would hang
        (face,) = stream(frames[i])
        assert face.track_id == 0 and not stream.timings.detected, i
        assert _iou(face, mtcnn, frames[i]) > 0.5, i  # tracking carries the face meanwhile
        boxes.append(face.box)
    assert len(held.threads) == 2 and len(set(boxes)) == len(boxes)  # one detection in flight; the box moves
    held.release()
    assert stream.wait_for_detection(timeout=60)
    (face,) = stream(frames[14])
    tm = stream.timings
    assert tm.detected and tm.detection_lag == 11 and tm.background_detection > 0
    assert face.track_id == 0 and _iou(face, mtcnn, frames[14]) > 0.5  # carried from frame 3 to 14, same id
    assert [f.track_id for f in stream(frames[15])] == [0]
    assert stream.detection_errors == 0 and stream.discarded == 0
    assert all(t is not threading.main_thread() for t in held.threads)
    stream.close()
    assert not held.threads[0].is_alive()


@pytest.mark.parametrize("how", ["reset", "new frame size"])
def test_a_detection_made_before_a_reset_is_never_applied(model_dir, drifting, how) -> None:
    frames = _read(drifting)
    held = _Held(create_detector("haar"))
    stream = _stream(model_dir, held, detect_every=3, async_detect=True)
    stream(frames[0])
    held.hold()
    held.script[2] = [Detection((8, 8, 60, 60), 0.99)]  # what the old video's detection will say: a face up left
    for rgb in frames[1:4]:
        stream(rgb)
    held.wait_entered()
    held.wait_entered()
    nxt = frames[4]
    if how == "reset":
        stream.reset()
    else:
        nxt = np.ascontiguousarray(nxt[:400, :600])
    held.release()
    faces = stream(nxt)  # the first frame after the reset waits: the old detection comes back first, then its own
    assert stream.discarded == 1 and stream.detections == 1 and len(held.threads) == 3
    assert [f.track_id for f in faces] == [0]
    old = np.array([8, 8, 60, 60]) * 2  # the corner box in frame pixels (the detector saw a half-size copy)
    assert box_iou(np.array(faces[0].box), old)[0, 0] == 0  # the face, not the old detection
    stream.close()


def test_a_failing_detector_is_counted_and_tracking_goes_on(model_dir, drifting, caplog) -> None:
    frames = _read(drifting)
    held = _Held(create_detector("haar"))
    held.fail = {2}
    stream = _stream(model_dir, held, detect_every=3, async_detect=True)
    for rgb in frames[:4]:  # frame 3 asks for detection 2, which raises
        assert [f.track_id for f in stream(rgb)] == [0]
    assert stream.wait_for_detection(timeout=60)
    with caplog.at_level(logging.WARNING, logger="ran_core.stream"):
        faces = stream(frames[4])
    assert stream.detection_errors == 1 and "detector failure on call 2" in caplog.text
    assert [f.track_id for f in faces] == [0] and not stream.timings.detected
    for rgb in frames[5:7]:  # frame 6 asks again
        stream(rgb)
    assert stream.wait_for_detection(timeout=60)
    faces = stream(frames[7])
    assert stream.timings.detected and [f.track_id for f in faces] == [0] and len(held.threads) == 3
    stream.close()


def test_the_detection_thread_stops_with_the_stream(model_dir, drifting) -> None:
    frames = _read(drifting)[:2]
    held = _Held(create_detector("haar"))
    with _stream(model_dir, held, async_detect=True) as stream:
        stream(frames[0])
    (thread,) = held.threads
    assert thread is not threading.main_thread() and thread.daemon and not thread.is_alive()
    stream(frames[1])  # a closed stream still works: the next detection starts a new thread
    stream.reset()
    stream(frames[0])
    assert len(held.threads) == 2 and held.threads[1].is_alive()
    del stream
    gc.collect()  # a stream dropped without close() stops its thread too
    assert not held.threads[1].is_alive()
    inline = _stream(model_dir, held)
    inline(frames[0])
    assert held.threads[2] is threading.current_thread()  # async_detect=False: no thread at all
