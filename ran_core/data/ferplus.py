"""FERPlus: the FER2013 faces relabelled by 10 annotators each (Microsoft's layout, https://github.com/microsoft/FERPlus).

Layout::

    ROOT/FER2013Train/label.csv, fer0000000.png, ...    (split "train")
    ROOT/FER2013Valid/label.csv, ...                    (split "valid")
    ROOT/FER2013Test/label.csv, ...                     (split "test")

``label.csv`` has no header; each row is ``fer0000000.png,"(0, 0, 48, 48)",4,0,0,1,3,2,0,0,0,0``: the file name, the
face box as ``(left, top, right, bottom)`` (Microsoft's ``Rect``), then 10 vote counts in the order neutral, happiness,
surprise, sadness, anger, disgust, fear, contempt, unknown, NF (not a face). Older copies have no box column; both are
read. The classes are the first 8 (:data:`ran_core.structures.FERPLUS_CLASSES`).
"""

from __future__ import annotations

import csv
import math
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ran_core.data.base import LABEL_MODES, DatasetSplit, Sample, SkipReport
from ran_core.structures import FERPLUS_CLASSES

SPLIT_FOLDERS: dict[str, str] = {"train": "FER2013Train", "valid": "FER2013Valid", "test": "FER2013Test"}
LABEL_FILE = "label.csv"
NUM_VOTES = len(FERPLUS_CLASSES) + 2  # the 8 emotions, then unknown and NF
_KEY = re.compile(r"fer\d+", re.IGNORECASE)


def ferplus_key(name: str) -> str | None:
    """The image id in any spelling the label files and subset lists use (``1_fer0034656.png``, ``0/fer0032226.jpg``).

    Returns:
        ``fer0034656``, or ``None`` when ``name`` holds no FERPlus id.
    """
    match = _KEY.search(name)
    return match.group(0).lower() if match else None


def ferplus_target(votes: Sequence[float], label_mode: str = "majority") -> tuple[int, np.ndarray | None, str | None]:
    """Turn the 10 vote counts of one image into its label, following Microsoft's FERPlus reader.

    Both modes first drop outlier votes: an emotion chosen by a single annotator (a count below ``1 + eps``, as in
    Microsoft's ``_process_data``) counts as 0.

    ``majority`` keeps the image when the top count is more than half of all remaining votes (unknown and NF included;
    a tie can never pass) and the top is an emotion, not unknown or NF. This is the RAN paper's protocol (3,137 test
    images in the authors' lists).

    ``probability`` keeps the 8 emotion counts normalised to sum 1, unless no emotion votes remain or unknown/NF holds
    the most votes (ties go to the emotion). This is simpler than Microsoft's "probability" mode, which also trims the
    distribution to its top three emotions; the label is the most voted emotion.

    Returns:
        ``(label, soft, reason)``: ``reason`` is ``None`` when the image is kept, else why it is dropped (then
        ``label`` is -1). ``soft`` is the ``(8,)`` float32 distribution in ``probability`` mode, else ``None``.
    """
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}")
    if len(votes) != NUM_VOTES:
        raise ValueError(f"expected {NUM_VOTES} vote counts, got {len(votes)}")
    counts = _kept_votes(votes)
    total = sum(counts)
    top = counts.index(max(counts))
    num_emotions = len(FERPLUS_CLASSES)
    if label_mode == "majority":
        if total <= 0 or counts[top] <= 0.5 * total:
            return -1, None, "no majority label"
        if top >= num_emotions:
            return -1, None, "majority unknown/not a face"
        return top, None, None
    emotion_total = sum(counts[:num_emotions])
    if emotion_total <= 0:
        return -1, None, "no emotion votes"
    if top >= num_emotions:
        return -1, None, "mostly unknown/not a face"
    soft = np.array(counts[:num_emotions], dtype=np.float32) / np.float32(emotion_total)
    return int(np.argmax(soft)), soft, None


def _kept_votes(votes: Sequence[float]) -> list[float]:
    """The vote counts with Microsoft's outlier rule applied: an emotion chosen by one annotator counts as 0."""
    # Plain Python: this runs once per image, and numpy's per-call overhead dominates on 10 numbers.
    return [float(v) if v >= 1.0 + sys.float_info.epsilon else 0.0 for v in votes]


def vote_agreement(votes: Sequence[float], label: int) -> float:
    """The share of an image's votes (all 10 columns, after the outlier rule of :func:`ferplus_target`) that went to
    ``label``: how far the annotators agreed on it. A majority label always has more than 0.5."""
    counts = _kept_votes(votes)
    total = sum(counts)
    return counts[label] / total if total > 0 else 0.0


def read_ferplus(root: str | Path, split: str, label_mode: str = "majority") -> DatasetSplit:
    """Read one FERPlus split; rows that are malformed, point to missing images or have no label are skipped.

    Raises:
        FileNotFoundError: the split folder or its ``label.csv`` is missing.
        ValueError: unknown split or label mode.
    """
    if split not in SPLIT_FOLDERS:
        raise ValueError(f"FERPlus has splits {', '.join(SPLIT_FOLDERS)}, not {split!r}")
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}")
    root = Path(root).expanduser().resolve()
    folder = root / SPLIT_FOLDERS[split]
    label_path = folder / LABEL_FILE
    if not label_path.is_file():
        found = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise FileNotFoundError(
            f"FERPlus {split} split not found: {label_path} is missing (expected Microsoft's layout "
            f"ROOT/{SPLIT_FOLDERS[split]}/{LABEL_FILE}; folders found in {root}: {', '.join(found) or 'none'})"
        )
    skipped = SkipReport()
    samples: list[Sample] = []
    seen: set[str] = set()
    on_disk = set(os.listdir(folder))  # one listing instead of a stat per row
    # surrogateescape: a name with bytes that are not UTF-8 keeps them, and so still matches its file on disk
    with open(label_path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        for line_no, row in enumerate(csv.reader(f), start=1):
            if not row or not "".join(row).strip():
                continue
            parsed = _parse_row(row)
            if parsed is None:
                if line_no == 1 and any("neutral" in cell.lower() for cell in row):
                    continue  # a header line, as in fer2013new.csv
                skipped.add("malformed row", ",".join(row))
                continue
            name, box, votes = parsed
            key = ferplus_key(name) or Path(name).stem
            if key in seen:
                skipped.add("duplicate entry", name)
                continue
            seen.add(key)
            label, soft, reason = ferplus_target(votes, label_mode)
            if reason is not None:
                skipped.add(reason, name)
                continue
            if name not in on_disk and not (folder / name).is_file():
                skipped.add("missing file", name)
                continue
            samples.append(
                Sample(
                    path=folder / name,
                    label=label,
                    key=key,
                    soft=soft,
                    face_box=box,
                    agreement=vote_agreement(votes, label),
                )
            )
    return DatasetSplit(
        dataset="ferplus",
        split=split,
        root=root,
        class_names=list(FERPLUS_CLASSES),
        samples=samples,
        skipped=skipped,
        label_mode=label_mode,
    )


def _parse_row(row: list[str]) -> tuple[str, tuple[float, float, float, float] | None, list[float]] | None:
    """``(name, box, votes)`` of one ``label.csv`` row, or ``None`` when it cannot be read."""
    if len(row) not in (NUM_VOTES + 1, NUM_VOTES + 2):
        return None
    name = row[0].strip()
    if not name:
        return None
    box = None
    try:
        if len(row) == NUM_VOTES + 2:
            coords = [float(v) for v in row[1].strip().strip("()[]").split(",")]
            if len(coords) != 4:
                return None
            box = (coords[0], coords[1], coords[2], coords[3])
        votes = list(map(float, row[-NUM_VOTES:]))
    except ValueError:
        return None
    if any(not math.isfinite(v) or v < 0 for v in votes):
        return None
    return name, box, votes
