"""AffectNet, manually annotated part (http://mohammadmahoor.com/affectnet/).

Layout::

    ROOT/training.csv, ROOT/validation.csv
    ROOT/Manually_Annotated_Images/<subDirectory_filePath>     (or the images directly under ROOT)

The CSVs start with the header ``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,
expression,valence,arousal``; ``facial_landmarks`` is a ``;``-separated string of 136 numbers (68 ``x;y`` pairs in the
iBUG order). Expressions 0..10 are neutral, happy, sad, surprise, fear, disgust, anger, contempt, none, uncertain,
non-face. With 8 classes (the default, as in the RAN paper) 8..10 are dropped, with 7 contempt is dropped too; class
index = expression code, which is also the numbering of the RAN authors' AffectNet subset lists.

The test set was never released: ``valid`` reads ``validation.csv``, and ``test`` reads it too, as the RAN paper
reports AffectNet results on the validation set.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from ran_core.data.base import DatasetSplit, Sample, SkipReport

AFFECTNET_CLASSES: tuple[str, ...] = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
EXPRESSION_NAMES: tuple[str, ...] = AFFECTNET_CLASSES + ("none", "uncertain", "non-face")
SPLIT_FILES: dict[str, str] = {"train": "training.csv", "valid": "validation.csv", "test": "validation.csv"}
IMAGE_DIRS: tuple[str, ...] = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images", ".")
NUM_LANDMARKS = 68
_KEY = re.compile(r"[0-9a-f]{32,}", re.IGNORECASE)


def affectnet_key(name: str) -> str:
    """The hex hash that names an AffectNet image, in any spelling (``689/<hash>.jpg``, ``7/<hash>/8.jpg``).

    Returns:
        The lower-cased hash, or the file stem when ``name`` holds no hash of at least 32 hex digits.
    """
    runs = _KEY.findall(name)
    return max(runs, key=len).lower() if runs else Path(name.rstrip("/")).stem.lower()


def landmarks_68_to_5(points: np.ndarray) -> np.ndarray:
    """``(68, 2)`` iBUG landmarks -> ``(5, 2)`` float32 in :data:`ran_core.regions.LANDMARK_NAMES` order (see
    :func:`ran_core.faces.detectors.five_point_landmarks`, the one definition)."""
    from ran_core.faces.detectors import five_point_landmarks

    pts = np.asarray(points, dtype=np.float64).reshape(NUM_LANDMARKS, 2)
    return five_point_landmarks(pts).astype(np.float32)


def read_affectnet(root: str | Path, split: str, num_classes: int = 8) -> DatasetSplit:
    """Read the training or validation split of AffectNet with face boxes and 5-point landmarks.

    Rows of the excluded expressions are counted in ``skipped`` under ``excluded expression``.

    Raises:
        FileNotFoundError: the split's CSV is missing.
        ValueError: unknown split, ``num_classes`` not 7 or 8, or a CSV without the expected header.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"AffectNet has splits {', '.join(SPLIT_FILES)}, not {split!r}")
    if num_classes not in (7, 8):
        raise ValueError(f"AffectNet is read with 7 or 8 classes, not {num_classes}")
    root = Path(root).expanduser().resolve()
    csv_path = root / SPLIT_FILES[split]
    if not csv_path.is_file():
        raise FileNotFoundError(f"AffectNet {split} labels not found: {csv_path} is missing")
    image_dirs = [root / d for d in IMAGE_DIRS if (root / d).is_dir()]
    skipped = SkipReport()
    samples: list[Sample] = []
    seen: set[str] = set()
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        if "subDirectory_filePath" not in header or "expression" not in header:
            raise ValueError(f"{csv_path}: expected a header with subDirectory_filePath and expression, got {header}")
        col = {name: i for i, name in enumerate(header)}
        for row in reader:
            if not row or not "".join(row).strip():
                continue
            try:
                parsed = _parse_row(row, col)
            except (ValueError, IndexError):
                skipped.add("malformed row", ",".join(row))
                continue
            name, expression, box, landmarks = parsed
            if not 0 <= expression < len(EXPRESSION_NAMES):
                skipped.add("unknown label", f"{name} (expression {expression})")
                continue
            if expression >= num_classes:
                skipped.add("excluded expression", f"{name} ({EXPRESSION_NAMES[expression]})")
                continue
            key = affectnet_key(name)
            if key in seen:
                skipped.add("duplicate entry", name)
                continue
            seen.add(key)
            path = next((d / name for d in image_dirs if (d / name).is_file()), None)
            if path is None:
                skipped.add("missing file", name)
                continue
            samples.append(Sample(path=path, label=expression, key=key, face_box=box, landmarks=landmarks))
    return DatasetSplit(
        dataset="affectnet",
        split=split,
        root=root,
        class_names=list(AFFECTNET_CLASSES[:num_classes]),
        samples=samples,
        skipped=skipped,
    )


def _parse_row(
    row: list[str], col: dict[str, int]
) -> tuple[str, int, tuple[float, float, float, float] | None, np.ndarray | None]:
    """``(name, expression, box, landmarks)`` of one CSV row; raises ``ValueError`` when it cannot be read."""
    name = row[col["subDirectory_filePath"]].strip().replace("\\", "/")
    if not name:
        raise ValueError("no file name")
    expression = int(row[col["expression"]].strip())
    box = None
    fields = [row[col[k]].strip() if k in col else "" for k in ("face_x", "face_y", "face_width", "face_height")]
    if all(fields):
        x, y, w, h = (float(v) for v in fields)
        if w <= 0 or h <= 0:
            raise ValueError("empty face box")
        box = (x, y, x + w, y + h)
    landmarks = None
    text = row[col["facial_landmarks"]].strip() if "facial_landmarks" in col else ""
    if text:
        values = np.array([float(v) for v in text.strip(";").split(";")], dtype=np.float64)
        if values.size != 2 * NUM_LANDMARKS or not np.isfinite(values).all():
            raise ValueError(f"{values.size} landmark values")
        landmarks = landmarks_68_to_5(values)
    return name, expression, box, landmarks
