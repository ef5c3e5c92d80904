"""What every dataset reader returns: samples, the split they form, and a record of what was skipped and why.

Readers parse label files and check that images exist; they never decode an image (the training pipeline does that
later with :func:`ran_core.imageio.read_image`), so opening a split of 300k images stays fast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SPLITS: tuple[str, ...] = ("train", "valid", "test")
LABEL_MODES: tuple[str, ...] = ("majority", "probability")
MAX_SKIP_EXAMPLES = 5


@dataclass
class Sample:
    """One labelled image of a dataset split.

    Attributes:
        path: absolute image path.
        label: class index into the split's ``class_names``; ``-1`` only where a split has no labels.
        key: the id subset lists are matched on (FERPlus ``fer0032226``, RAF-DB ``test_0004``, AffectNet the hex hash
            of the file name, folders ``<class>/<stem>``).
        soft: ``(C,)`` float32 target distribution (FERPlus ``probability`` mode), else ``None``.
        face_box: ``(x1, y1, x2, y2)`` in image pixels when the dataset gives one.
        landmarks: ``(5, 2)`` float32 points in image pixels, in the order of
            :data:`ran_core.regions.LANDMARK_NAMES`, when the dataset gives them.
        agreement: the share of the annotators' votes that went to ``label`` (FERPlus: 10 annotators an image), when
            the dataset has votes; ``ran-core eval --by-agreement`` reports accuracy by it.
    """

    path: Path
    label: int
    key: str
    soft: np.ndarray | None = None
    face_box: tuple[float, float, float, float] | None = None
    landmarks: np.ndarray | None = None
    agreement: float | None = None


@dataclass
class SkipReport:
    """Entries a reader left out, counted by reason, with the first few offenders of each reason.

    Attributes:
        counts: reason -> number of entries skipped for it (e.g. ``missing file``, ``malformed row``).
        examples: reason -> the first :data:`MAX_SKIP_EXAMPLES` offending names or lines.
    """

    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, example: str) -> None:
        """Count one skipped entry under ``reason``, keeping ``example`` if fewer than five are kept yet."""
        self.counts[reason] = self.counts.get(reason, 0) + 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < MAX_SKIP_EXAMPLES:
            kept.append(example)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """One readable line: the total, then each reason with its count and first examples."""
        if not self.total:
            return "nothing skipped"
        parts = []
        for reason, count in sorted(self.counts.items(), key=lambda kv: -kv[1]):
            shown = ", ".join(_shorten(e) for e in self.examples.get(reason, []))
            more = ", ..." if count > len(self.examples.get(reason, [])) else ""
            parts.append(f"{reason}: {count} (e.g. {shown}{more})")
        return f"{self.total} skipped - " + "; ".join(parts)

    def warn(self, logger: logging.Logger, what: str) -> None:
        """Log one warning naming the counts and first examples, if anything was skipped."""
        if self.total:
            logger.warning("%s: %s", what, self.summary())


@dataclass
class DatasetSplit:
    """The samples of one split of one dataset, ready for a torch ``Dataset`` to decode.

    Attributes:
        dataset: ``ferplus``, ``rafdb``, ``affectnet``, ``sfew`` or ``folder``.
        split: ``train``, ``valid`` or ``test``.
        root: the dataset folder the split was read from.
        class_names: classes in label-index order.
        samples: the usable samples, in a stable order (label-file order, or sorted paths for folders).
        skipped: what was left out and why.
        label_mode: ``majority`` (one hard label per image) or ``probability`` (``Sample.soft`` is set).
    """

    dataset: str
    split: str
    root: Path
    class_names: list[str]
    samples: list[Sample]
    skipped: SkipReport = field(default_factory=SkipReport)
    label_mode: str = "majority"

    def __len__(self) -> int:
        return len(self.samples)

    def labels(self) -> np.ndarray:
        """``(N,)`` int64 label of every sample."""
        return np.fromiter((s.label for s in self.samples), dtype=np.int64, count=len(self.samples))

    def class_counts(self) -> np.ndarray:
        """``(C,)`` int64 number of samples per class (unlabelled samples are not counted)."""
        labels = self.labels()
        return np.bincount(labels[labels >= 0], minlength=len(self.class_names)).astype(np.int64)


def class_balanced_weights(split: DatasetSplit) -> np.ndarray:
    """Per-sample weights that make every class equally likely under ``torch.utils.data.WeightedRandomSampler``.

    The RAN authors trained on AffectNet this way, because its classes range from ~4k (contempt) to ~130k (happy).
    Weights are ``1 / count(class)`` scaled to average 1.

    Raises:
        ValueError: the split is empty or has unlabelled samples.
    """
    labels = split.labels()
    if labels.size == 0:
        raise ValueError(f"{split.dataset} {split.split}: no samples to weight")
    if (labels < 0).any():
        raise ValueError(f"{split.dataset} {split.split}: unlabelled samples cannot be class-balanced")
    counts = np.bincount(labels, minlength=len(split.class_names)).astype(np.float64)
    weights = 1.0 / counts[labels]
    return weights * (labels.size / weights.sum())


def cap_samples(samples: list[Sample], max_samples: int, seed: int = 0) -> list[Sample]:
    """A reproducible random subset of at most ``max_samples``, in the original order, keeping class proportions.

    Each class gets its proportional share (largest remainders first), and every class present keeps at least one
    sample when ``max_samples`` allows, so that a tiny smoke-test split still covers the rare classes.
    """
    if max_samples <= 0:
        raise ValueError(f"max_samples must be positive, got {max_samples}")
    if max_samples >= len(samples):
        return list(samples)
    labels = np.fromiter((s.label for s in samples), dtype=np.int64, count=len(samples))
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    exact = counts * (max_samples / len(samples))
    quota = np.floor(exact).astype(np.int64)
    for k in np.argsort(-(exact - quota), kind="stable")[: max_samples - int(quota.sum())]:
        quota[k] += 1
    if max_samples >= len(classes):
        for k in np.flatnonzero(quota == 0):
            quota[int(np.argmax(quota))] -= 1
            quota[k] = 1
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(inverse == k), size=int(q), replace=False) for k, q in enumerate(quota)]
    keep = np.sort(np.concatenate(chosen))
    return [samples[i] for i in keep]


def _shorten(text: str, limit: int = 100) -> str:
    """Cut the middle out of long examples: the start names the file, the end often says what is wrong."""
    text = text.strip()
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    return text[:half] + "..." + text[-half:]
