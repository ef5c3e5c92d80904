"""The RAN authors' occlusion and pose test subsets (lists from https://github.com/kaiwang960112/Challenge-condition-FER-dataset).

Point ``lists_dir`` at the downloaded folder that holds ``FERplus_dir/``, ``AffectNet_dir/`` and ``RAF_DB_dir/``, or
at one of those sub-folders. The files, as published (entries with a ``.jpg`` name may be ``.png`` files on disk: only
the image id is matched):

FERPlus (``FERplus_dir/``), test-split images; label = index into :data:`ran_core.structures.FERPLUS_CLASSES`:
    ``jianfei_occlusion_list.txt`` -> ``occlusion``: ``1_fer0034656.png 8 0`` with CRLF line ends: ``<label>_<image>``,
    then two undocumented numbers (always 8, then 0..3; likely the class count and an occlusion type), ignored.
    ``pose_30_ferplus_list.txt`` / ``pose_45_ferplus_list.txt`` -> ``pose30`` / ``pose45``: ``0/fer0032226.jpg``,
    ``<label>/<image>``, naming ``.jpg`` what FERPlus stores as ``.png``.

AffectNet (``AffectNet_dir/``), validation images; label = AffectNet expression code (0 neutral .. 7 contempt):
    ``occlusion_affectnet_list.txt`` -> ``occlusion``: ``val/0/<hash>/`` (a folder-like path with a trailing slash).
    ``pose_30_affectnet_list.txt`` -> ``pose30``: ``0/<hash>.jpg``.
    ``pose_45_affectnet_list.txt`` -> ``pose45``: ``7/<hash>/8.jpg`` (the hash is a folder; ``8.jpg`` is meaningless).
    The pose lists repeat some lines; repeats are removed.

RAF-DB (``RAF_DB_dir/``), test images; label = RAF-DB label - 1 (0 surprise .. 6 neutral):
    ``rafdb_occlusion_list.txt`` -> ``occlusion``: ``test_0003_aligned 3 4`` with CRLF line ends and no final newline:
    ``<image stem> <label> <undocumented 1..4, likely the occlusion type>``; one line is repeated.
    ``val_raf_db_list.txt`` -> ``pose30`` (pose > 30 degrees) and ``val_raf_db_list_45.txt`` -> ``pose45``:
    ``0/test_0004_aligned.jpg``. Each has a companion label file (``val_raf_db_label.txt``,
    ``val_raf_db_label_45.txt``) whose first line is ``<count> <classes>`` (``1247 7``), then one label per entry in
    list order, without a final newline. The companion fills labels the list lines lack and is checked against them.

Keys are normalised exactly as :attr:`ran_core.data.base.Sample.key` is (``fer0032226``, ``test_0004``, the lower-case
AffectNet hash), so :func:`match_subset` is a lookup.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ran_core.data.affectnet import AFFECTNET_CLASSES, affectnet_key
from ran_core.data.base import DatasetSplit
from ran_core.data.ferplus import ferplus_key
from ran_core.data.rafdb import RAFDB_CLASSES, rafdb_key
from ran_core.structures import FERPLUS_CLASSES

logger = logging.getLogger(__name__)

SUBSET_NAMES: tuple[str, ...] = ("occlusion", "pose30", "pose45")
LIST_DIRS: dict[str, str] = {"ferplus": "FERplus_dir", "affectnet": "AffectNet_dir", "rafdb": "RAF_DB_dir"}
LIST_FILES: dict[str, dict[str, str]] = {
    "ferplus": {
        "occlusion": "jianfei_occlusion_list.txt",
        "pose30": "pose_30_ferplus_list.txt",
        "pose45": "pose_45_ferplus_list.txt",
    },
    "affectnet": {
        "occlusion": "occlusion_affectnet_list.txt",
        "pose30": "pose_30_affectnet_list.txt",
        "pose45": "pose_45_affectnet_list.txt",
    },
    "rafdb": {
        "occlusion": "rafdb_occlusion_list.txt",
        "pose30": "val_raf_db_list.txt",
        "pose45": "val_raf_db_list_45.txt",
    },
}
COMPANION_LABEL_FILES: dict[str, str] = {
    "val_raf_db_list.txt": "val_raf_db_label.txt",
    "val_raf_db_list_45.txt": "val_raf_db_label_45.txt",
}
_KEY_FUNCS: dict[str, Callable[[str], str | None]] = {
    "ferplus": ferplus_key,
    "affectnet": affectnet_key,
    "rafdb": rafdb_key,
}
_NUM_CLASSES: dict[str, int] = {
    "ferplus": len(FERPLUS_CLASSES),
    "affectnet": len(AFFECTNET_CLASSES),
    "rafdb": len(RAFDB_CLASSES),
}
# A label written before the image: "0/...", "1_fer...", "val/0/..." (the "val/" or "train/" part is the split).
_LABEL_PREFIX = re.compile(r"^(?:(?:val|train|test)/)?(\d+)[/_]", re.IGNORECASE)


@dataclass
class SubsetList:
    """One of the authors' subset lists, parsed.

    Attributes:
        name: ``occlusion``, ``pose30`` or ``pose45``.
        source: the list file read.
        keys: image ids normalised as ``Sample.key``, duplicates removed, file order kept.
        labels: key -> label given by the list, in the list's own numbering (see the module docstring; for all three
            datasets it equals the class index of the matching reader), or ``None`` when the list gives none.
        skipped_lines: blank or unreadable lines ignored.
        dataset: ``ferplus``, ``affectnet`` or ``rafdb``.
        duplicates: entries dropped because their id appeared earlier in the list.
    """

    name: str
    source: Path
    keys: list[str]
    labels: dict[str, int] | None
    skipped_lines: int
    dataset: str = ""
    duplicates: int = 0

    def __len__(self) -> int:
        return len(self.keys)


def read_subset_list(dataset: str, name: str, path: str | Path, label_path: str | Path | None = None) -> SubsetList:
    """Parse one list file of ``dataset`` (``ferplus``, ``affectnet`` or ``rafdb``) as subset ``name``.

    Args:
        label_path: a companion label file (``<count> <classes>`` header, then one label per entry in list order).
    """
    if dataset not in _KEY_FUNCS:
        raise ValueError(f"the RAN authors published subset lists for {', '.join(_KEY_FUNCS)} only, not {dataset!r}")
    path = Path(path)
    key_of, num_classes = _KEY_FUNCS[dataset], _NUM_CLASSES[dataset]
    companion = _read_companion_labels(Path(label_path)) if label_path is not None else None
    keys: list[str] = []
    seen: set[str] = set()
    labels: dict[str, int] = {}
    skipped_lines = duplicates = disagreements = position = 0
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        parts = line.strip().split()
        if not parts:
            skipped_lines += 1
            continue
        given = companion[position] if companion is not None and position < len(companion) else None
        position += 1
        key = key_of(parts[0])
        label = _entry_label(parts)
        if label is not None and given is not None and label != given:
            disagreements += 1
        label = label if label is not None else given
        if not key or (label is not None and not 0 <= label < num_classes):
            skipped_lines += 1
            continue
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        keys.append(key)
        if label is not None:
            labels[key] = label
    if companion is not None and len(companion) != position:
        logger.warning("%s has %d labels for the %d entries of %s", label_path, len(companion), position, path.name)
    if disagreements:
        logger.warning(
            "%s: %d labels disagree with %s; the list's own labels are kept", label_path, disagreements, path
        )
    return SubsetList(
        name=name,
        source=path,
        keys=keys,
        labels=labels or None,
        skipped_lines=skipped_lines,
        dataset=dataset,
        duplicates=duplicates,
    )


def load_subset_lists(dataset: str, lists_dir: str | Path) -> dict[str, SubsetList]:
    """Read every subset list of ``dataset`` found in ``lists_dir``.

    Args:
        dataset: ``ferplus``, ``affectnet`` or ``rafdb``.
        lists_dir: the authors' folder holding ``FERplus_dir/`` etc., or one of those sub-folders.

    Returns:
        subset name -> list, only for the lists found.

    Raises:
        FileNotFoundError: no list of ``dataset`` is in ``lists_dir``.
        ValueError: the authors published no lists for ``dataset``.
    """
    if dataset not in LIST_FILES:
        raise ValueError(f"the RAN authors published subset lists for {', '.join(LIST_FILES)} only, not {dataset!r}")
    folder = _find_list_folder(dataset, Path(lists_dir).expanduser().resolve())
    subsets = {}
    for name, file_name in LIST_FILES[dataset].items():
        path = folder / file_name
        if not path.is_file():
            continue
        label_path = folder / COMPANION_LABEL_FILES[file_name] if file_name in COMPANION_LABEL_FILES else None
        if label_path is not None and not label_path.is_file():
            label_path = None
        subsets[name] = read_subset_list(dataset, name, path, label_path)
    return subsets


def match_subset(split: DatasetSplit, subset: SubsetList) -> tuple[np.ndarray, int]:
    """The samples of ``split`` that ``subset`` names.

    Returns:
        ``(indices, missing)``: sorted int64 indices into ``split.samples``, and how many list entries are not in the
        split (a missing image, or a list of another split: the FERPlus lists name test images only).

    Raises:
        ValueError: the list belongs to another dataset.
    """
    if subset.dataset and subset.dataset != split.dataset:
        raise ValueError(f"the {subset.name} list of {subset.dataset} cannot be matched against {split.dataset}")
    index = {s.key: i for i, s in enumerate(split.samples)}
    found = [index[k] for k in subset.keys if k in index]
    return np.array(sorted(found), dtype=np.int64), len(subset.keys) - len(found)


def _entry_label(parts: list[str]) -> int | None:
    """The label written in an entry: a number before the image name, else a number in the second column."""
    match = _LABEL_PREFIX.match(parts[0])
    if match:
        return int(match.group(1))
    if len(parts) > 1 and parts[1].isdigit():
        return int(parts[1])
    return None


def _read_companion_labels(path: Path) -> list[int | None]:
    """Labels of a ``<count> <classes>``-headed label file, in order; ``None`` for unreadable lines."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if lines and len(lines[0].split()) == 2:
        header, lines = lines[0].split(), lines[1:]
        if header[0].isdigit() and int(header[0]) != len(lines):
            logger.warning("%s: its header announces %s labels but it holds %d", path, header[0], len(lines))
    return [int(line) if line.isdigit() else None for line in lines]


def _find_list_folder(dataset: str, lists_dir: Path) -> Path:
    if not lists_dir.is_dir():
        raise FileNotFoundError(f"subset list folder not found: {lists_dir}")
    wanted = LIST_DIRS[dataset].lower()
    candidates = [d for d in lists_dir.iterdir() if d.is_dir() and d.name.lower() == wanted] + [lists_dir]
    for folder in candidates:
        if any((folder / f).is_file() for f in LIST_FILES[dataset].values()):
            return folder
    raise FileNotFoundError(
        f"no {dataset} subset list in {lists_dir}: expected {LIST_DIRS[dataset]}/ with "
        f"{', '.join(LIST_FILES[dataset].values())} (from the RAN authors' repository)"
    )
