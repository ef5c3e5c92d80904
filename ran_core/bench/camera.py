"""(d) The live camera path on a recorded 640x480 one-face video: a generated test video, every detector alone, and
decode -> detect -> align + regions -> model -> overlay per stage and end to end."""

from __future__ import annotations

import copy
import math
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ran_core.bench._common import CAMERA_SAMPLE, SAMPLES_DIR, progress_bar, skipped


def write_camera_video(path: Path, frames: int, sample: Path | None = None, fps: float = 30.0) -> Path:
    """A 640x480 video of one face: a sample photo drifting and slightly zooming, like a person before a webcam.

    Raises:
        RuntimeError: OpenCV cannot write a video here (no codec).
    """
    import cv2

    from ran_core.imageio import read_image

    rgb = read_image(sample or SAMPLES_DIR / CAMERA_SAMPLE)
    scale = 440 / rgb.shape[0]  # the photo's height -> 440 of the frame's 480 rows
    photo = cv2.resize(rgb, (round(rgb.shape[1] * scale), 440), interpolation=cv2.INTER_AREA)
    h, w = photo.shape[:2]
    for fourcc, suffix in (("mp4v", ".mp4"), ("MJPG", ".avi")):
        out_path = path.with_suffix(suffix)
        writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*fourcc), fps, (640, 480))
        if writer.isOpened():
            break
    else:
        raise RuntimeError("OpenCV cannot write mp4v or MJPG video here")
    try:
        for i in range(frames):
            phase = 2 * math.pi * i / max(frames, 1)
            zoom = 1 + 0.04 * math.sin(2 * phase)
            dx, dy = 320 - w / 2 + 20 * math.sin(phase), 240 - h / 2 + 8 * math.cos(phase)
            matrix = np.array([[zoom, 0, dx - (zoom - 1) * w / 2], [0, zoom, dy - (zoom - 1) * h / 2]])
            frame = cv2.warpAffine(photo, matrix, (640, 480), borderValue=(96, 96, 96))
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return out_path


_STAGES = ("decode", "detection", "alignment_regions", "model", "overlay", "total")


def _camera_pass(
    predictor: Any, video: Path, frames: int, detect_every: int, progress: bool
) -> tuple[dict[str, list[float]], list[int]]:
    """One pass over the video; returns per-frame seconds per stage and faces per frame (first frame untimed)."""
    import cv2

    from ran_core.faces.detectors import Detection
    from ran_core.faces.draw import draw_faces

    cap = cv2.VideoCapture(str(video))
    stages: dict[str, list[float]] = {k: [] for k in _STAGES}
    faces_per_frame: list[int] = []
    ok, bgr = cap.read()
    detections = predictor.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) if ok else []  # warm-up, untimed
    if ok:
        predictor.predict_faces(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), detections)
    for i in progress_bar(list(range(1, frames)), f"camera (detect every {detect_every})", progress):
        t0 = time.perf_counter()
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        if i % detect_every == 0:
            faces = predictor(rgb)
            detections = [Detection.from_any(f) for f in faces]
        else:  # between detections the last boxes are reused, as a live viewer may do
            faces = predictor.predict_faces(rgb, detections)
        t2 = time.perf_counter()
        overlay = [f.to_dict() for f in faces]
        draw_faces(rgb, faces)
        t3 = time.perf_counter()
        tm = predictor.timings
        for key, value in zip(_STAGES, (t1 - t0, tm.detection, tm.alignment, tm.model, t3 - t2, t3 - t0)):
            stages[key].append(value)
        faces_per_frame.append(len(overlay))
    cap.release()
    return stages, faces_per_frame


# ONNX Runtime threads of the viewer's camera model: one face a frame is too little work to share between threads.
CAMERA_ONNX_THREADS = 1
# A face in a webcam frame is rarely under 1/6 of its height; detectors told so skip most of their pyramid.
LIVE_MIN_FACE = 80
_MIN_FACE_OPTION = {"haar": "min_size", "mtcnn": "min_face_size"}


def bench_detectors(frames: list[np.ndarray], device: torch.device) -> list[dict[str, Any]]:
    """Median detection ms per frame for every detector that can run here, at its defaults and told the smallest
    face is :data:`LIVE_MIN_FACE` pixels; detectors that cannot run say why."""
    from ran_core.faces.detectors import create_detector, detector_status

    rows: list[dict[str, Any]] = []
    for name, reason in detector_status().items():
        if reason is not None:
            rows.append({"detector": name, "settings": "default", "skipped": reason})
            continue
        settings = [("default", {})]
        if name in _MIN_FACE_OPTION:
            settings.append((f"min face {LIVE_MIN_FACE}px", {_MIN_FACE_OPTION[name]: LIVE_MIN_FACE}))
        for label, options in settings:
            try:
                det = create_detector(name, device=str(device), **options)
                det.detect(frames[0])  # warm-up
                times, found = [], []
                for rgb in frames:
                    t0 = time.perf_counter()
                    found.append(len(det.detect(rgb)))
                    times.append(time.perf_counter() - t0)
            except Exception as exc:  # a backend failing here should not cost the rest of the report
                rows.append({"detector": name, "settings": label, "skipped": f"{exc.__class__.__name__}: {exc}"})
                continue
            rows.append(
                {
                    "detector": name,
                    "settings": label,
                    "ms_per_frame": 1000 * float(np.median(times)),
                    "mean_faces_found": float(np.mean(found)),
                }
            )
    return rows


def _read_frames(video: Path, count: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def bench_camera(
    model: nn.Module,
    device: torch.device,
    detector: Any = "auto",
    frames: int = 90,
    progress: bool = False,
    detect_every: Iterable[int] = (1, 3),
    detector_frames: int = 5,
    tta: str | None = None,
) -> dict[str, Any]:
    """The live path on a recorded 640x480 one-face video: decode -> detect -> align + regions -> model -> overlay.

    Reports per-stage milliseconds per frame (stages from :attr:`Predictor.timings`; overlay = the JSON-ready face
    data plus :func:`~ran_core.faces.draw.draw_faces`), the per-face latency split and ``every_frame_fps`` with the
    detector run on every frame. Other ``detect_every`` values rerun the video detecting only every N-th frame and
    reusing the boxes in between; ``detector_frames`` frames are also given to every available detector
    (:func:`bench_detectors`). ``tta`` overrides the model's saved test-time augmentation (as the viewer's camera
    menu does). ``{"skipped": reason}`` when something it needs is missing.

    ``live`` (whose fps is ``end_to_end_fps``) is :func:`~ran_core.stream.measure_stream_fps` on the path as the
    viewer's camera runs it: :class:`~ran_core.stream.StreamPredictor` with its defaults (detection on a background
    thread) and the model on ONNX Runtime with one thread when it is installed (``settings.backend`` says which ran;
    ``onnx_fallback`` why not ONNX Runtime). ``live_sync_torch`` is the same video with PyTorch and detection inside
    the frame loop, the camera path before both changes.
    """
    try:
        import cv2  # noqa: F401

        from ran_core.predictor import Predictor
    except ImportError as exc:
        return skipped(f"the predictor is not available ({exc})")
    if detector == "auto":  # as the viewer's camera does: the fastest detector that keeps recall
        from ran_core.faces.detectors import resolve_camera_auto

        detector = resolve_camera_auto()
    try:
        predictor = Predictor(copy.deepcopy(model), detector=detector, device=device, tta=tta)
    except Exception as exc:  # DetectorUnavailable and friends: say why rather than fail the whole bench
        return skipped(f"cannot build the predictor ({exc.__class__.__name__}: {exc})")
    every = sorted({1, *detect_every})
    passes = {}
    with tempfile.TemporaryDirectory(prefix="ran_bench_") as tmp:
        try:
            video = write_camera_video(Path(tmp) / "camera", frames)
        except (RuntimeError, OSError, ValueError) as exc:
            return skipped(f"cannot write the test video ({exc})")
        for n in every:
            passes[n] = _camera_pass(predictor, video, frames, n, progress)
        app_predictor, fallback = _camera_app_predictor(model, predictor)
        live = _measure_live(video, app_predictor, frames, async_detect=True)
        if fallback is not None:
            live["onnx_fallback"] = fallback
        live_sync_torch = _measure_live(video, predictor, frames, async_detect=False)
        sample_frames = _read_frames(video, detector_frames)
        detectors = bench_detectors(sample_frames, device) if sample_frames and detector_frames else []
    stages, faces_per_frame = passes[1]
    if not faces_per_frame:
        return skipped(f"OpenCV could not read back the test video {video.name}")
    n = len(faces_per_frame)
    ms = {k: 1000 * float(np.mean(v)) for k, v in stages.items()}
    one_face = [i for i, c in enumerate(faces_per_frame) if c == 1]
    split = ("detection", "alignment_regions", "model")
    per_face = {k: 1000 * float(np.median([stages[k][i] for i in one_face])) for k in split} if one_face else None
    return {
        "video": f"640x480, {n} timed frames, one face ({CAMERA_SAMPLE} drifting)",
        "detector": getattr(predictor.detector, "name", type(predictor.detector).__name__),
        "model": model.config.name,
        "tta": predictor.tta or model.config.tta,
        "frames": n,
        "frames_with_one_face": len(one_face),
        "mean_faces_per_frame": float(np.mean(faces_per_frame)),
        "ms_per_frame": ms,
        "per_face_latency_ms": per_face,
        "end_to_end_fps": live.get("fps") if "fps" in live else n / float(np.sum(stages["total"])),
        "every_frame_fps": n / float(np.sum(stages["total"])),
        "live": live,
        "live_sync_torch": live_sync_torch,
        "detect_every": {
            str(k): {
                "end_to_end_fps": len(f) / float(np.sum(st["total"])) if f else None,
                "detection_ms_per_frame": 1000 * float(np.mean(st["detection"])) if f else None,
                "mean_faces_per_frame": float(np.mean(f)) if f else None,
            }
            for k, (st, f) in passes.items()
        },
        "detectors": detectors,
    }


def _camera_app_predictor(model: nn.Module, predictor: Any) -> tuple[Any, str | None]:
    """The camera's predictor as the viewer builds it: the model on ONNX Runtime with :data:`CAMERA_ONNX_THREADS`
    threads, the same detector; when that cannot run, ``predictor`` and the reason."""
    from ran_core.predictor import Predictor

    try:
        onnx = Predictor(
            copy.deepcopy(model).cpu(),
            detector=predictor.detector,
            backend="onnx",
            onnx_threads=CAMERA_ONNX_THREADS,
            tta=predictor.tta,
        )
    except Exception as exc:  # OnnxUnavailable, an export failure: measure PyTorch and say so
        return predictor, f"{exc.__class__.__name__}: {exc}"
    return onnx, None


def _measure_live(video: Path, predictor: Any, frames: int, async_detect: bool) -> dict[str, Any]:
    from ran_core.stream import StreamPredictor, measure_stream_fps

    try:
        with StreamPredictor(predictor, async_detect=async_detect) as stream:
            live = measure_stream_fps(video, stream, max_frames=frames)
    except Exception as exc:  # report, do not hide the per-frame numbers
        return skipped(f"stream path failed ({exc.__class__.__name__}: {exc})")
    if live["settings"]["backend"] == "onnx":
        live["settings"]["onnx_threads"] = CAMERA_ONNX_THREADS
    return live
