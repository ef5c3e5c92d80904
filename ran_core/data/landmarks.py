"""Landmarks for datasets that ship none (FERPlus, SFEW, folders): found once with a face detector, cached on disk.

Landmark-based regions (and head-pose estimates) need 5 facial points per image. FERPlus gives only 48 px crops, so
each image is upscaled and padded (tight crops are hard to detect: on FERPlus Valid, MTCNN finds about 92 % of them
this way against 82 % unpadded), passed to the detector, and the points of the detection that overlaps the image
best are mapped back to the image's own pixels. Results are cached per split and detector, so a second training run
or evaluation reads them in a second; images where no face is found are counted, named, and left without
landmarks (their faces fall back to fixed crops one by one).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ran_core.cache import cache_root
from ran_core.data.base import DatasetSplit
from ran_core.imageio import ImageReadError, read_image

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``landmarks/`` under :func:`ran_core.cache.cache_root` (``~/.cache/ran_core``, or ``$RAN_CORE_CACHE``)."""
    return cache_root() / "landmarks"


@dataclass
class LandmarkReport:
    """Where the landmarks of a split came from.

    Attributes:
        total: samples in the split.
        from_dataset: samples whose dataset gives landmarks.
        detected: samples whose landmarks were found by the detector (now or in an earlier run: see ``cached``).
        cached: of ``detected`` + ``missing``, how many were read from the cache rather than computed now.
        missing: keys of the samples where no face was found (or the image could not be read).
        detector: the detector's name.
        cache_path: the cache file, or None when caching is off.
    """

    total: int
    from_dataset: int = 0
    detected: int = 0
    cached: int = 0
    missing: list[str] = field(default_factory=list)
    detector: str = ""
    cache_path: Path | None = None

    @property
    def with_landmarks(self) -> int:
        return self.from_dataset + self.detected

    def summary(self) -> str:
        shown = ", ".join(self.missing[:5]) + (", ..." if len(self.missing) > 5 else "")
        text = (
            f"landmarks for {self.with_landmarks} of {self.total} faces ({self.from_dataset} from the dataset, "
            f"{self.detected} found by {self.detector}, {self.cached} of them from the cache)"
        )
        if self.missing:
            text += f"; no face found in {len(self.missing)} (fixed crops for those): {shown}"
        return text

    def to_json(self) -> dict:
        return {
            "total": self.total,
            "from_dataset": self.from_dataset,
            "detected": self.detected,
            "missing": len(self.missing),
            "missing_examples": self.missing[:20],
            "detector": self.detector,
        }


def _cache_file(cache_dir: Path, split: DatasetSplit, detector_name: str, upscale: int) -> Path:
    root_id = hashlib.sha1(str(Path(split.root).resolve()).encode()).hexdigest()[:10]
    return cache_dir / f"{split.dataset}_{split.split}_{detector_name}_{upscale}px_{root_id}.npz"


def _read_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            if int(data["format"]) != CACHE_FORMAT:
                return {}
            return dict(zip(data["keys"].tolist(), data["points"]))
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("landmark cache %s is unreadable (%s); computing the landmarks again", path, exc)
        return {}


def _write_cache(path: Path, entries: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    keys = np.array(list(entries), dtype=str)
    points = np.stack(list(entries.values())).astype(np.float32) if entries else np.zeros((0, 5, 2), np.float32)
    np.savez_compressed(tmp, format=CACHE_FORMAT, keys=keys, points=points)
    os.replace(tmp, path)


def _entry_key(split: DatasetSplit, sample) -> str:
    try:
        rel = Path(sample.path).resolve().relative_to(Path(split.root).resolve())
    except ValueError:
        rel = Path(sample.path)
    return str(rel)


def detect_landmarks(
    image: np.ndarray,
    detector,
    face_box: tuple[float, float, float, float] | None = None,
    upscale: int = 192,
    pad: float = 0.3,
) -> np.ndarray | None:
    """``(5, 2)`` landmarks of the face filling ``image`` (or its ``face_box``), in ``image`` pixels, or None.

    The face is cut out, resized to ``upscale`` px, pasted into a mid-grey picture ``1 + 2 * pad`` times larger,
    and the detection overlapping it best (IoU >= 0.3) gives the points.
    """
    from ran_core.faces.tracking import box_iou

    h, w = image.shape[:2]
    x1, y1, x2, y2 = face_box if face_box is not None else (0.0, 0.0, float(w), float(h))
    x1, y1 = max(0, int(round(x1))), max(0, int(round(y1)))
    x2, y2 = min(w, int(round(x2))), min(h, int(round(y2)))
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    face = image[y1:y2, x1:x2]
    if face.ndim == 2:
        face = np.repeat(face[..., None], 3, axis=2)
    sx, sy = upscale / (x2 - x1), upscale / (y2 - y1)
    big = cv2.resize(face, (upscale, upscale), interpolation=cv2.INTER_CUBIC)
    margin = int(round(pad * upscale))
    side = upscale + 2 * margin
    picture = np.full((side, side, 3), 128, dtype=np.uint8)
    picture[margin : margin + upscale, margin : margin + upscale] = big
    dets = [d for d in detector.detect(picture) if d.five_points is not None]
    if not dets:
        return None
    placed = np.array([[margin, margin, margin + upscale, margin + upscale]], dtype=np.float64)
    iou = box_iou(placed, np.array([d.box for d in dets]))[0]
    best = int(iou.argmax())
    if iou[best] < 0.3:
        return None
    pts = np.asarray(dets[best].five_points, dtype=np.float64) - margin
    return np.stack([pts[:, 0] / sx + x1, pts[:, 1] / sy + y1], axis=1).astype(np.float32)


def attach_landmarks(
    split: DatasetSplit,
    detector="mtcnn",
    cache_dir: str | Path | None = None,
    upscale: int = 192,
    use_cache: bool = True,
    progress: bool = True,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> LandmarkReport:
    """Give every sample of ``split`` that lacks landmarks the ones a detector finds (in place).

    Args:
        split: the samples; ``Sample.landmarks`` is set where a face is found.
        detector: a detector name (``mtcnn``, ``fan``; ``auto`` picks the best with landmarks) or object.
        cache_dir: where the cache lives (default :func:`default_cache_dir`).
        upscale: face side given to the detector.
        use_cache: read and write the cache.
        progress: show a progress bar while detecting.
        should_stop: polled between images; the work done so far is cached before stopping.
        on_progress: called with ``(done, total)`` after each image that lacked landmarks (a GUI's progress bar).

    Raises:
        ran_core.faces.DetectorUnavailable: the detector cannot run here or gives no landmarks (Haar).
    """
    from ran_core.faces.detectors import DetectorUnavailable, create_detector, detector_status

    if isinstance(detector, str):
        name = detector
        if name == "auto":
            usable = [n for n, why in detector_status().items() if why is None and n != "haar"]
            if not usable:
                raise DetectorUnavailable(
                    "landmarks need a detector that gives them (fan or mtcnn), and none can run here; "
                    "install facenet-pytorch (pip install --no-deps facenet-pytorch==2.6.0)"
                )
            name = usable[0]
        if name == "haar":
            raise DetectorUnavailable("the haar detector gives no landmarks; use mtcnn or fan")
        detector = create_detector(name)
    name = getattr(detector, "name", type(detector).__name__)
    report = LandmarkReport(total=len(split.samples), detector=name)
    todo = []
    for s in split.samples:
        if s.landmarks is not None:
            report.from_dataset += 1
        else:
            todo.append(s)
    if not todo:
        return report
    cache_path = _cache_file(Path(cache_dir) if cache_dir else default_cache_dir(), split, name, upscale)
    report.cache_path = cache_path if use_cache else None
    cache = _read_cache(cache_path) if use_cache else {}
    computed = 0
    bar = tqdm(total=len(todo), desc=f"landmarks ({name})", unit="img", disable=not progress, leave=False)
    try:
        for done, s in enumerate(todo, 1):
            key = _entry_key(split, s)
            if key in cache:
                pts = cache[key]
                report.cached += 1
            else:
                if should_stop is not None and should_stop():
                    break
                try:
                    found = detect_landmarks(read_image(s.path), detector, s.face_box, upscale)
                except ImageReadError:
                    found = None
                pts = np.full((5, 2), np.nan, np.float32) if found is None else found
                cache[key] = pts
                computed += 1
                if use_cache and computed % 1000 == 0:
                    _write_cache(cache_path, cache)  # an interrupted run keeps what it found
            if np.isnan(pts).any():
                report.missing.append(s.key)
            else:
                s.landmarks = np.asarray(pts, dtype=np.float32)
                report.detected += 1
            bar.update(1)
            if on_progress is not None:
                on_progress(done, len(todo))
    finally:
        bar.close()
        if use_cache and computed:
            _write_cache(cache_path, cache)
    return report
