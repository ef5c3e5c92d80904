"""Accuracy by annotator agreement: how many of the people who labelled a face chose its label.

FERPlus had 10 annotators label every face; under the majority protocol a face is kept when more than half of them
agree. Faces on which 5 or 6 of 10 agreed are hard for people too, so a model's errors gather there. Bucketing a
split by that share tells a model's mistakes on faces everyone reads alike from those on faces people dispute.
"""

from __future__ import annotations

from ran_core.data.base import DatasetSplit
from ran_core.engine.metrics import metrics_by_group

# (name, lowest share, highest share) of the votes that went to the label; a bin holds lo <= share < hi.
AGREEMENT_BINS: tuple[tuple[str, float, float], ...] = (
    ("50-60%", 0.0, 0.6),
    ("60-70%", 0.6, 0.7),
    ("70-80%", 0.7, 0.8),
    ("80-90%", 0.8, 0.9),
    ("90-100%", 0.9, float("inf")),
)
_EPS = 1e-6  # 7 of 10 votes is 0.7 even where the division gives 0.69999...


def agreement_bin(share: float) -> str:
    """The name of the bin that holds ``share`` (the first bin takes anything below its upper edge)."""
    return next(name for name, lo, hi in AGREEMENT_BINS if share + _EPS < hi)


def split_agreements(split: DatasetSplit) -> dict[str, float]:
    """Image path -> the share of its votes that went to its label, for every sample of ``split``.

    Raises:
        ValueError: the split has no annotator votes (only FERPlus has them).
    """
    shares = {str(s.path): s.agreement for s in split.samples if s.agreement is not None}
    if not shares:
        raise ValueError(
            f"accuracy by annotator agreement needs the annotators' votes, which {split.dataset} does not give "
            "(FERPlus does)"
        )
    return shares


def agreement_bin_metrics(result, shares: dict[str, float]) -> dict[str, dict]:
    """Per-bin ``n``, ``accuracy``, ``mean_class_accuracy``, ``errors`` and ``confusion`` of an
    :class:`~ran_core.engine.evaluate.EvalResult`; images without a share are left out."""
    keep = [i for i, p in enumerate(result.paths) if p in shares]
    groups = [agreement_bin(shares[result.paths[i]]) for i in keep]
    names = [b[0] for b in AGREEMENT_BINS]
    metrics = metrics_by_group(result.targets[keep], result.preds[keep], groups, names, len(result.class_names))
    return {
        name: {
            "n": m.n,
            "accuracy": m.accuracy if m.n else None,
            "mean_class_accuracy": m.mean_class_accuracy if m.n else None,
            "errors": m.n - int(m.confusion.trace()),
            "confusion": m.confusion.tolist(),
        }
        for name, m in metrics.items()
    }
