"""Datasets stored as one folder per class: SFEW 2.0 and any user's own ``<class>/<image>`` tree.

SFEW 2.0 layout::

    ROOT/Train/<class>/*.png     ROOT/Val/<class>/*.png     ROOT/Test/*.png (no labels)

with the classes Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise (folder names matched ignoring case).

Generic ``folder`` layout: ``ROOT/<split>/<class>/*`` or, without split folders, ``ROOT/<class>/*``, which has no
splits, so every split reads the whole tree. Class names are the sorted class folder names of all splits together, so
that train and valid agree on the label indices even when one split lacks a class.

Split folders are recognised ignoring case: train/training, valid/val/validation, test/testing. A split folder with
images but no class folders is read unlabelled (label -1), as the SFEW test set. Only the images directly inside a
class folder are read; hidden files and folders are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ran_core.data.base import DatasetSplit, Sample, SkipReport
from ran_core.imageio import IMAGE_EXTENSIONS

SFEW_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
SPLIT_FOLDER_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "valid": ("valid", "val", "validation"),
    "test": ("test", "testing"),
}


def find_split_folder(root: Path, split: str) -> Path | None:
    """The folder of ``split`` directly under ``root`` (names matched ignoring case), or ``None``."""
    names = SPLIT_FOLDER_NAMES[split]
    return next((d for d in _subfolders(root) if d.name.lower() in names), None)


def read_sfew(root: str | Path, split: str) -> DatasetSplit:
    """Read one split of SFEW 2.0 (``Train``, ``Val`` -> ``valid``, ``Test`` unlabelled).

    Raises:
        FileNotFoundError: the split folder is missing.
        ValueError: unknown split.
    """
    root = _check_root(root, split)
    folder = find_split_folder(root, split)
    if folder is None:
        found = ", ".join(d.name for d in _subfolders(root)) or "none"
        raise FileNotFoundError(
            f"SFEW {split} folder not found in {root} (expected one of "
            f"{', '.join(n.capitalize() for n in SPLIT_FOLDER_NAMES[split])}; found: {found})"
        )
    index = {name: i for i, name in enumerate(SFEW_CLASSES)}
    skipped = SkipReport()
    samples = _scan(folder, lambda name: index.get(name.lower()), skipped)
    return DatasetSplit(
        dataset="sfew", split=split, root=root, class_names=list(SFEW_CLASSES), samples=samples, skipped=skipped
    )


def read_folder(root: str | Path, split: str) -> DatasetSplit:
    """Read ``ROOT/<split>/<class>/`` or, when ``root`` has no split folders, the whole ``ROOT/<class>/`` tree.

    Raises:
        FileNotFoundError: ``root`` has split folders but not the one asked for.
        ValueError: unknown split.
    """
    root = _check_root(root, split)
    split_folders = {s: find_split_folder(root, s) for s in SPLIT_FOLDER_NAMES}
    present = [d for d in split_folders.values() if d is not None]
    if present:
        folder = split_folders[split]
        if folder is None:
            found = ", ".join(d.name for d in present)
            raise FileNotFoundError(f"no {split} folder in {root} (split folders found: {found})")
        class_names = sorted({d.name for p in present for d in _subfolders(p)})
    else:
        folder = root
        class_names = sorted(d.name for d in _subfolders(root))
    index = {name: i for i, name in enumerate(class_names)}
    skipped = SkipReport()
    samples = _scan(folder, index.get, skipped)
    return DatasetSplit(
        dataset="folder", split=split, root=root, class_names=class_names, samples=samples, skipped=skipped
    )


def _check_root(root: str | Path, split: str) -> Path:
    if split not in SPLIT_FOLDER_NAMES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_FOLDER_NAMES)}, not {split!r}")
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    return root


def _subfolders(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def _images(folder: Path, skipped: SkipReport, prefix: str) -> list[Path]:
    """The image files directly inside ``folder``, sorted; other files are counted in ``skipped``."""
    images = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            images.append(p)
        else:
            skipped.add("not an image file", prefix + p.name)
    return images


def _scan(folder: Path, class_of: Callable[[str], int | None], skipped: SkipReport) -> list[Sample]:
    """Samples of one split folder: labelled from class folders, or unlabelled when it holds only images."""
    class_dirs = _subfolders(folder)
    if not class_dirs:
        return [Sample(path=p, label=-1, key=p.stem) for p in _images(folder, skipped, "")]
    for p in _images(folder, SkipReport(), ""):
        skipped.add("image outside a class folder", p.name)
    samples = []
    for d in class_dirs:
        label = class_of(d.name)
        for p in _images(d, skipped, d.name + "/"):
            if label is None:
                skipped.add("unknown class folder", f"{d.name}/{p.name}")
            else:
                samples.append(Sample(path=p, label=label, key=f"{d.name}/{p.stem}"))
    return samples
