"""RAF-DB basic emotions (http://www.whdeng.cn/raf/model1.html).

Layout::

    ROOT/EmoLabel/list_patition_label.txt     ("patition" is the dataset's own spelling)
    ROOT/Image/aligned/train_00001_aligned.jpg, test_0001_aligned.jpg, ...

Each label line is ``train_00001.jpg 5`` or ``test_0001.jpg 1``; the split is the name's prefix. Labels 1..7 mean
surprise, fear, disgust, happiness, sadness, anger, neutral; class index = label - 1, which is also the numbering of
the RAN authors' RAF-DB subset lists. RAF-DB has no validation split: ``valid`` reads the test split, as the RAN paper
(and most RAF-DB work) reports test accuracy.
"""

from __future__ import annotations

import re
from pathlib import Path

from ran_core.data.base import DatasetSplit, Sample, SkipReport

RAFDB_CLASSES: tuple[str, ...] = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
LABEL_FILES: tuple[str, ...] = (
    "EmoLabel/list_patition_label.txt",
    "EmoLabel/list_partition_label.txt",
    "list_patition_label.txt",
)
IMAGE_DIRS: tuple[str, ...] = ("Image/aligned", "aligned")
SPLIT_PREFIX: dict[str, str] = {"train": "train", "valid": "test", "test": "test"}
_KEY = re.compile(r"(train|test)_\d+", re.IGNORECASE)


def rafdb_key(name: str) -> str | None:
    """The image id in any spelling (``test_0004.jpg``, ``0/test_0004_aligned.jpg``, ``test_0004_aligned``).

    Returns:
        ``test_0004``, or ``None`` when ``name`` holds no RAF-DB id.
    """
    match = _KEY.search(name)
    return match.group(0).lower() if match else None


def read_rafdb(root: str | Path, split: str) -> DatasetSplit:
    """Read the train or test split of RAF-DB basic (``valid`` is the test split) with the aligned 100x100 faces.

    Raises:
        FileNotFoundError: the label file or the aligned image folder is missing.
        ValueError: unknown split.
    """
    if split not in SPLIT_PREFIX:
        raise ValueError(f"RAF-DB has splits {', '.join(SPLIT_PREFIX)}, not {split!r}")
    root = Path(root).expanduser().resolve()
    label_path = next((root / p for p in LABEL_FILES if (root / p).is_file()), None)
    if label_path is None:
        raise FileNotFoundError(f"RAF-DB label file not found in {root}: expected {LABEL_FILES[0]}")
    image_dir = next((root / p for p in IMAGE_DIRS if (root / p).is_dir()), None)
    if image_dir is None:
        raise FileNotFoundError(f"RAF-DB aligned images not found in {root}: expected the folder {IMAGE_DIRS[0]}/")
    prefix = SPLIT_PREFIX[split]
    skipped = SkipReport()
    samples: list[Sample] = []
    seen: set[str] = set()
    for line in label_path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        key = rafdb_key(parts[0])
        if len(parts) != 2 or key is None:
            skipped.add("malformed row", line)
            continue
        if not key.startswith(prefix + "_"):
            continue
        try:
            label = int(parts[1])
        except ValueError:
            skipped.add("malformed row", line)
            continue
        if not 1 <= label <= len(RAFDB_CLASSES):
            skipped.add("unknown label", line)
            continue
        if key in seen:
            skipped.add("duplicate entry", line)
            continue
        seen.add(key)
        path = image_dir / f"{key}_aligned.jpg"
        if not path.is_file():
            skipped.add("missing file", path.name)
            continue
        samples.append(Sample(path=path, label=label - 1, key=key))
    return DatasetSplit(
        dataset="rafdb", split=split, root=root, class_names=list(RAFDB_CLASSES), samples=samples, skipped=skipped
    )
