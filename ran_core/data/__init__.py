"""Dataset readers (FERPlus, RAF-DB, AffectNet, SFEW, class folders) and the RAN authors' occlusion/pose subsets.

:func:`open_dataset` is the one entry point: it returns a :class:`DatasetSplit` of :class:`Sample` (path, label, key,
optional soft target, face box and landmarks) without decoding any image.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ran_core.data.affectnet import AFFECTNET_CLASSES, landmarks_68_to_5, read_affectnet
from ran_core.data.base import (
    LABEL_MODES,
    SPLITS,
    DatasetSplit,
    Sample,
    SkipReport,
    cap_samples,
    class_balanced_weights,
)
from ran_core.data.ferplus import ferplus_target, read_ferplus
from ran_core.data.folders import SFEW_CLASSES, read_folder, read_sfew
from ran_core.data.rafdb import RAFDB_CLASSES, read_rafdb
from ran_core.data.subsets import SUBSET_NAMES, SubsetList, load_subset_lists, match_subset, read_subset_list

logger = logging.getLogger(__name__)

DATASET_NAMES: tuple[str, ...] = ("ferplus", "rafdb", "affectnet", "sfew", "folder")
_ALIASES: dict[str, str] = {
    "fer+": "ferplus",
    "fer_plus": "ferplus",
    "raf-db": "rafdb",
    "raf_db": "rafdb",
    "raf": "rafdb",
}
_SPLIT_ALIASES: dict[str, str] = {"training": "train", "val": "valid", "validation": "valid", "testing": "test"}
_READERS: dict[str, Callable[..., DatasetSplit]] = {
    "ferplus": read_ferplus,
    "rafdb": read_rafdb,
    "affectnet": read_affectnet,
    "sfew": read_sfew,
    "folder": read_folder,
}
# Datasets whose label files give every annotator's vote: soft targets (``label_mode="probability"``) and accuracy by
# annotator agreement (``ran-core eval --by-agreement``) need them.
VOTED_DATASETS: tuple[str, ...] = ("ferplus",)


def dataset_key(name: str) -> str:
    """The canonical name of a dataset (``FER+`` -> ``ferplus``, ``raf-db`` -> ``rafdb``); others pass through."""
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def has_votes(name: str) -> bool:
    """Whether the dataset's labels come with the annotators' votes (see :data:`VOTED_DATASETS`)."""
    return dataset_key(name) in VOTED_DATASETS


def open_dataset(
    name: str,
    root: str | Path,
    split: str,
    label_mode: str = "majority",
    num_classes: int | None = None,
    max_samples: int | None = None,
    seed: int = 0,
) -> DatasetSplit:
    """Read one split of a dataset; entries that cannot be used are skipped, counted and warned about once.

    Args:
        name: one of :data:`DATASET_NAMES` (``fer+``, ``raf-db`` and the like are accepted).
        root: the dataset folder, laid out as its module docstring says.
        split: ``train``, ``valid`` or ``test`` (``val``/``validation`` accepted).
        label_mode: ``majority`` (hard labels) or ``probability`` (soft targets; FERPlus only).
        num_classes: AffectNet: 8 (default) or 7 (without contempt); for other datasets, a check of the class count.
        max_samples: keep a reproducible, class-proportional random subset of this many samples, in split order.
        seed: seed of that subset.

    Raises:
        FileNotFoundError: ``root`` or the split's label file is missing.
        ValueError: unknown dataset, split or label mode, or a class count the dataset does not have.
    """
    key = dataset_key(name)
    if key not in _READERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    split_key = split.strip().lower()
    split_key = _SPLIT_ALIASES.get(split_key, split_key)
    if split_key not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if label_mode not in LABEL_MODES:
        raise ValueError(f"label_mode must be one of {', '.join(LABEL_MODES)}, got {label_mode!r}")
    if label_mode != "majority" and not has_votes(key):
        raise ValueError(
            f"label_mode {label_mode!r} needs per-image vote counts, which only {', '.join(VOTED_DATASETS)} has"
        )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{key} dataset folder not found: {path}")

    if key == "ferplus":
        data = read_ferplus(path, split_key, label_mode)
    elif key == "affectnet":
        data = read_affectnet(path, split_key, 8 if num_classes is None else num_classes)
    else:
        data = _READERS[key](path, split_key)
    if num_classes is not None and num_classes != len(data.class_names):
        raise ValueError(f"{key} has {len(data.class_names)} classes, not {num_classes}")
    data.skipped.warn(logger, f"{key} {split_key} ({data.root})")
    if max_samples is not None:
        data.samples = cap_samples(data.samples, max_samples, seed)
    return data


__all__ = [
    "AFFECTNET_CLASSES",
    "DATASET_NAMES",
    "LABEL_MODES",
    "RAFDB_CLASSES",
    "SFEW_CLASSES",
    "SPLITS",
    "SUBSET_NAMES",
    "VOTED_DATASETS",
    "DatasetSplit",
    "Sample",
    "SkipReport",
    "SubsetList",
    "class_balanced_weights",
    "dataset_key",
    "ferplus_target",
    "has_votes",
    "landmarks_68_to_5",
    "load_subset_lists",
    "match_subset",
    "open_dataset",
    "read_affectnet",
    "read_ferplus",
    "read_folder",
    "read_rafdb",
    "read_sfew",
    "read_subset_list",
]
