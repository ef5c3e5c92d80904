"""``ran-core predict``: find faces in images and videos and classify their expressions.

Images give one JSON entry each (their faces, or an ``error``); videos are read frame by frame with faces tracked
across frames, and give a CSV timeline (frame, time, face id, label, probabilities, attention per region) and
optionally an annotated video. A bad input is reported and skipped; the exit status is 1 if any input failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ran_core.config import TTA_MODES
from ran_core.imageio import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, ImageReadError, read_image

logger = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=(
            "Detectors: auto picks fan (face-alignment, if its weights are downloaded), else mtcnn (if facenet-pytorch "
            "is installed), else haar (OpenCV, no landmarks)."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="images, videos, or folders of them")
    p.add_argument("--model", default="ran-ferplus", help="saved model: bundled name or path (default: ran-ferplus)")
    p.add_argument("--detector", default="auto", help="auto, fan, mtcnn or haar (default: auto)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--tta", choices=TTA_MODES, help="test-time augmentation (default: the one saved with the model)")
    p.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        default="torch",
        help="run the model with PyTorch or ONNX Runtime (exported once into the cache; needs onnxruntime)",
    )
    p.add_argument(
        "--faces",
        choices=["detect", "whole"],
        default="detect",
        help="detect: find faces in each image; whole: each image is one already-cropped face (datasets, crops "
        "from other tools) (default: detect)",
    )
    p.add_argument("--max-side", type=int, default=1280, help="detect on a copy no larger than this (default: 1280 px)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write every result to this JSON file")
    p.add_argument("--draw", type=Path, metavar="OUT_DIR", help="write annotated images to this folder")
    video = p.add_argument_group("videos")
    video.add_argument("--every", type=int, default=1, metavar="N", help="process every N-th frame (default: 1)")
    video.add_argument(
        "--csv", type=Path, metavar="OUT", help="timeline CSV (default: <video>.csv, or beside --json when given)"
    )
    video.add_argument("--video-out", type=Path, metavar="OUT.mp4", help="write an annotated video")
    video.add_argument(
        "--plot",
        type=Path,
        metavar="OUT.png",
        help="draw the timeline: class probabilities (and RAN's region weights) over time, one panel per face",
    )
    video.add_argument(
        "--smooth",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="exponential moving average of the probabilities over this window, per face: CSV columns "
        "p_<class>_smooth and label_smooth (raw columns kept) and the plot (default: 0, off)",
    )
    return p


def shown(path: Path | str) -> str:
    """A path as text any terminal can print (a file name that is not UTF-8 keeps its bytes as escapes)."""
    return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Folders -> their image and video files (sorted, not recursive); other paths as given.

    Entries named like images that are not readable files (a folder called ``x.jpg``, a broken or looping symlink)
    are kept, so they get an error entry instead of vanishing from the results.
    """
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
            if not found:
                logger.warning("%s: no image or video files in this folder", p)
            paths.extend(found)
        else:
            paths.append(p)
    return paths


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def run(args: argparse.Namespace) -> int:
    from ran_core.faces import DetectorUnavailable
    from ran_core.predictor import Predictor
    from ran_core.saved_model import ModelLoadError

    if args.every < 1:
        print("error: --every must be at least 1", file=sys.stderr)
        return 2
    if args.smooth < 0 or not math.isfinite(args.smooth):
        print("error: --smooth must be a number of seconds >= 0", file=sys.stderr)
        return 2
    try:
        predictor = Predictor(
            args.model,
            detector=args.detector,
            device=args.device,
            max_detect_side=args.max_side,
            tta=args.tta,
            faces=args.faces,
            backend=args.backend,
        )
    except (ModelLoadError, DetectorUnavailable, ValueError, RuntimeError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = expand_inputs(args.inputs)
    videos = [p for p in paths if is_video(p)]
    entries: list[dict[str, Any]] = []
    drawn: set[str] = set()
    failed = 0
    for path in paths:
        try:
            if is_video(path):
                entry = _run_video(predictor, path, args, many=len(videos) > 1)
            else:
                entry = _run_image(predictor, path, args, drawn)
        except (ImageReadError, VideoError, OSError) as exc:
            entry = {"path": str(path), "error": str(exc)}
            print(f"error: {shown(exc)}", file=sys.stderr)
            failed += 1
        except Exception as exc:  # one input must never cost the others their results
            logger.debug("analysis of %s failed", path, exc_info=True)
            message = f"{path}: the image was read but could not be analysed ({type(exc).__name__}: {exc})"
            entry = {"path": str(path), "error": message}
            print(f"error: {shown(message)}", file=sys.stderr)
            failed += 1
        entries.append(entry)
    if args.json is not None:
        report = {
            "model": str(args.model),
            "detector": getattr(predictor.detector, "name", type(predictor.detector).__name__),
            "class_names": predictor.class_names,
            "inputs": entries,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if failed:
        print(f"{failed} of {len(paths)} inputs failed", file=sys.stderr)
    return 1 if failed or not paths else 0


def _describe(faces) -> str:
    if not faces:
        return "no face"
    parts = [f"{f.label} ({f.confidence:.2f})" for f in faces]
    return f"{len(faces)} face{'s' if len(faces) > 1 else ''}: " + ", ".join(parts)


# An image whose shorter side (after shrinking to --max-side) is below this holds no face a detector can find.
MIN_FACE_SIDE = 20
# Images up to this size with no face found are probably already-cropped faces: say that --faces whole exists.
CROP_HINT_SIDE = 160


def image_note(rgb: np.ndarray, faces: list, args: argparse.Namespace) -> str | None:
    """A plain-words note for an image with no face: too small or too thin to hold one, or maybe a face crop."""
    if faces or args.faces == "whole":
        return None
    h, w = rgb.shape[:2]
    shrink = min(1.0, args.max_side / max(h, w)) if args.max_side else 1.0
    if min(h, w) * shrink < MIN_FACE_SIDE:
        extra = f" once shrunk to {args.max_side} px for detection" if shrink < 1 else ""
        return f"the image ({w}x{h} px) is too small or too thin{extra} to hold a detectable face"
    if max(h, w) <= CROP_HINT_SIDE:
        return "no face found; if this image is already a cropped face, use --faces whole"
    return None


def _run_image(predictor, path: Path, args: argparse.Namespace, drawn: set[str]) -> dict[str, Any]:
    rgb = read_image(path)
    faces = predictor(rgb)
    note = image_note(rgb, faces, args)
    print(f"{shown(path)}: {_describe(faces)}" + (f" - {note}" if note else ""))
    entry: dict[str, Any] = {"path": str(path), "size": [rgb.shape[1], rgb.shape[0]]}
    entry["faces"] = [f.to_dict() for f in faces]
    if note:
        entry["note"] = note
    if args.draw is not None:
        from ran_core.faces.draw import draw_faces

        args.draw.mkdir(parents=True, exist_ok=True)
        name, n = f"{path.stem}.jpg", 1
        while name in drawn:  # same file name from two folders
            name, n = f"{path.stem}_{n}.jpg", n + 1
        drawn.add(name)
        out = args.draw / name
        cv2.imwrite(str(out), draw_faces(rgb, faces)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        entry["drawn"] = str(out)
    return entry


class VideoError(OSError):
    """A video cannot be opened or decoded."""


def _output_path(option: Path | None, video: Path, args: argparse.Namespace, suffix: str, many: bool) -> Path:
    if option is not None:
        return option.with_name(f"{option.stem}_{video.stem}{option.suffix}") if many else option
    if args.json is not None:
        return args.json.parent / f"{video.stem}{suffix}"
    return video.with_suffix(suffix)


def _run_video(predictor, path: Path, args: argparse.Namespace, many: bool) -> dict[str, Any]:
    from tqdm import tqdm

    from ran_core.faces.draw import draw_faces
    from ran_core.faces.tracking import IoUTracker
    from ran_core.timeline import ExpressionSmoother

    if not path.is_file():
        raise VideoError(f"{path}: file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError(f"{path}: cannot open as a video")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and math.isfinite(fps) and fps > 0 else 0.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    csv_path = _output_path(args.csv, path, args, ".csv", many)
    video_out = None if args.video_out is None else _output_path(args.video_out, path, args, ".mp4", many)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    tracker = IoUTracker()
    smoother = ExpressionSmoother(args.smooth) if args.smooth > 0 else None
    failed_frames: list[str] = []
    series: dict[int, dict[str, list]] = {}
    writer: cv2.VideoWriter | None = None
    csv_writer: csv.DictWriter | None = None
    tracks: dict[int, dict[str, Any]] = {}
    frame_idx = processed = 0
    with open(csv_path, "w", newline="") as fh, tqdm(total=total, desc=path.name, unit="frame") as bar:
        try:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if frame_idx % args.every == 0:
                    time_s = frame_idx / fps if fps else cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
                    rgb = np.ascontiguousarray(bgr[..., ::-1])
                    try:
                        faces = predictor(rgb)
                    except Exception as exc:  # one bad frame must not cost the rest of the video
                        logger.debug("frame %d of %s failed", frame_idx, path, exc_info=True)
                        failed_frames.append(f"frame {frame_idx}: {type(exc).__name__}: {exc}")
                        frame_idx += 1
                        bar.update(1)
                        continue
                    for face, tid in zip(faces, tracker.update([f.box for f in faces])):
                        face.track_id = tid
                    faces.sort(key=lambda f: f.track_id)
                    for face in faces:
                        row = _csv_row(frame_idx, time_s, face)
                        probs = face.probabilities
                        if smoother is not None:
                            probs = smoother.update(face.track_id, time_s, face.probabilities)
                            row.update({f"p_{n}_smooth": round(float(p), 5) for n, p in zip(face.class_names, probs)})
                            row["label_smooth"] = face.class_names[int(np.argmax(probs))]
                        s = series.setdefault(face.track_id, {"t": [], "p": [], "alpha": []})
                        s["t"].append(time_s)
                        s["p"].append(np.asarray(probs, dtype=np.float64))
                        s["alpha"].append([r.alpha for r in face.regions])
                        if csv_writer is None:
                            csv_writer = csv.DictWriter(fh, fieldnames=list(row), restval="", extrasaction="ignore")
                            csv_writer.writeheader()
                        csv_writer.writerow(row)
                        t = tracks.setdefault(face.track_id, {"frames": 0, "labels": {}})
                        t["frames"] += 1
                        t["labels"][face.label] = t["labels"].get(face.label, 0) + 1
                    if video_out is not None:
                        annotated = draw_faces(rgb, faces, colorbar=False)[..., ::-1]
                        if writer is None:
                            video_out.parent.mkdir(parents=True, exist_ok=True)
                            size = (annotated.shape[1], annotated.shape[0])
                            out_fps = (fps or 25.0) / args.every
                            writer = cv2.VideoWriter(str(video_out), cv2.VideoWriter_fourcc(*"mp4v"), out_fps, size)
                            if not writer.isOpened():
                                raise VideoError(f"{video_out}: cannot write an mp4 video here")
                        writer.write(np.ascontiguousarray(annotated))
                    processed += 1
                frame_idx += 1
                bar.update(1)
        finally:
            cap.release()
            if writer is not None:
                writer.release()
        if csv_writer is None:  # no face in any frame: still a valid, header-only timeline
            csv.writer(fh).writerow(_csv_header(predictor, smooth=smoother is not None))
    if frame_idx == 0:
        raise VideoError(f"{path}: no frame could be decoded")
    print(f"{shown(path)}: {processed} of {frame_idx} frames, {len(tracks)} face track(s) -> {csv_path}")
    entry: dict[str, Any] = {
        "path": str(path),
        "video": {"frames": frame_idx, "processed": processed, "fps": fps, "every": args.every},
        "csv": str(csv_path),
        "tracks": {str(k): v for k, v in sorted(tracks.items())},
    }
    if video_out is not None:
        entry["video_out"] = str(video_out)
    if failed_frames:
        entry["failed_frames"] = {"count": len(failed_frames), "first": failed_frames[:5]}
        print(
            f"warning: {shown(path)}: {len(failed_frames)} frame(s) could not be analysed and were skipped: "
            f"{failed_frames[0]}",
            file=sys.stderr,
        )
    if args.plot is not None:
        entry["plot"] = str(_plot_timeline(predictor, series, args, path, many))
    return entry


def _plot_timeline(predictor, series: dict, args: argparse.Namespace, video: Path, many: bool) -> Path:
    from ran_core.engine.plots import plot_timeline

    out = _output_path(args.plot, video, args, ".png", many)
    out.parent.mkdir(parents=True, exist_ok=True)
    regions = predictor.config.regions.region_names() if predictor.config.arch == "ran" else []
    tracks = {}
    for tid, s in series.items():
        alpha = np.array(s["alpha"], dtype=np.float64)
        tracks[tid] = {
            "t": np.array(s["t"]),
            "p": np.stack(s["p"]),
            "alpha": alpha if regions and alpha.shape[1:] == (len(regions),) and np.isfinite(alpha).all() else None,
        }
    smooth = f", smoothed over {args.smooth:g} s" if args.smooth > 0 else ""
    return plot_timeline(tracks, predictor.class_names, regions, out, title=f"{video.name}{smooth}")


def _csv_row(frame: int, time_s: float, face) -> dict[str, Any]:
    row: dict[str, Any] = {"frame": frame, "time_s": round(time_s, 4), "face": face.track_id, "label": face.label}
    row.update({"score": round(face.score, 4), "region_scheme": face.region_scheme})
    row.update({k: round(v, 2) for k, v in zip(("x1", "y1", "x2", "y2"), face.box)})
    pose = face.pose.to_dict() if face.pose is not None else {}
    row.update({k: pose.get(k, "") for k in ("yaw", "pitch", "roll")})
    row.update({f"p_{n}": round(float(p), 5) for n, p in zip(face.class_names, face.probabilities)})
    row.update({f"alpha_{r.name}": "" if math.isnan(r.alpha) else round(r.alpha, 5) for r in face.regions})
    return row


def _csv_header(predictor, smooth: bool = False) -> list[str]:
    base = [
        "frame",
        "time_s",
        "face",
        "label",
        "score",
        "region_scheme",
        "x1",
        "y1",
        "x2",
        "y2",
        "yaw",
        "pitch",
        "roll",
    ]
    regions = predictor.config.regions.region_names() if predictor.config.arch == "ran" else ["face"]
    cols = base + [f"p_{n}" for n in predictor.class_names] + [f"alpha_{n}" for n in regions]
    if smooth:
        cols += [f"p_{n}_smooth" for n in predictor.class_names] + ["label_smooth"]
    return cols
