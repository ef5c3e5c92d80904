"""Classification metrics: confusion matrices and (mean-class) accuracy, in percent."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def confusion_matrix(targets: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts, rows = true class, columns = predicted class."""
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"targets {t.shape} and predictions {p.shape} differ in shape")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass
class SetMetrics:
    """Metrics of one evaluation set.

    Attributes:
        accuracy: percent of correct predictions.
        mean_class_accuracy: mean over classes present in the set of per-class recall, in percent.
        n: number of evaluated images.
        missing: entries of a subset list that were not found in the evaluated split.
        confusion: ``(C, C)`` counts, rows = true class, columns = predicted.
    """

    accuracy: float
    mean_class_accuracy: float
    n: int
    missing: int
    confusion: np.ndarray

    @classmethod
    def from_confusion(cls, confusion: np.ndarray, missing: int = 0) -> SetMetrics:
        n = int(confusion.sum())
        support = confusion.sum(axis=1)
        present = support > 0
        acc = 100.0 * float(np.trace(confusion)) / n if n else float("nan")
        per_class = np.diag(confusion)[present] / support[present]
        mca = 100.0 * float(per_class.mean()) if present.any() else float("nan")
        return cls(accuracy=acc, mean_class_accuracy=mca, n=n, missing=int(missing), confusion=confusion)

    def per_class_accuracy(self) -> np.ndarray:
        support = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return 100.0 * np.diag(self.confusion) / support

    def to_json(self) -> dict:
        def num(v: float) -> float | None:
            return None if v != v else round(float(v), 4)

        return {
            "accuracy": num(self.accuracy),
            "mean_class_accuracy": num(self.mean_class_accuracy),
            "n": self.n,
            "missing": self.missing,
        }


def metrics_by_group(
    targets: np.ndarray, preds: np.ndarray, groups: Sequence[str], names: Sequence[str], num_classes: int
) -> dict[str, SetMetrics]:
    """:class:`SetMetrics` of each group in ``names`` (in that order), where ``groups[i]`` names sample ``i``'s group;
    a group without samples gets ``n == 0`` and NaN accuracies."""
    t, p, g = np.asarray(targets), np.asarray(preds), np.asarray(groups, dtype=object)
    masks = {name: g == name for name in names}
    return {name: SetMetrics.from_confusion(confusion_matrix(t[m], p[m], num_classes)) for name, m in masks.items()}
