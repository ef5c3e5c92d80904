"""Builders for the evaluation-view tests: real ``EvalResult`` objects with chosen predictions, tiny images, and a
FERPlus-layout dataset folder with subset lists. No Qt here, so the state tests can use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ran_core.engine.evaluate import EvalResult
from ran_core.engine.metrics import SetMetrics, confusion_matrix

CLASSES = ["neutral", "happiness", "surprise"]
# 8 samples; RAN gets 6 right, the baseline 4. Subsets: "occlusion" = 0..3, "pose30" = 4..7.
TARGETS = [0, 0, 1, 1, 2, 2, 1, 0]
RAN_PREDS = [0, 0, 1, 1, 2, 0, 2, 0]
BASE_PREDS = [0, 1, 1, 0, 2, 0, 1, 2]
SUBSETS = {"occlusion": [0, 1, 2, 3], "pose30": [4, 5, 6, 7]}


def write_images(folder: Path, n: int, size: int = 48) -> list[str]:
    """``n`` small grayscale PNGs with distinct brightness; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        arr = np.full((size, size), 30 + (200 * i) // max(n - 1, 1), dtype=np.uint8)
        arr[size // 4 : size // 2, size // 4 : 3 * size // 4] = 255 - arr[0, 0]
        p = folder / f"fer{i:07d}.png"
        Image.fromarray(arr, mode="L").save(p)
        paths.append(str(p))
    return paths


def make_result(
    targets: list[int],
    preds: list[int],
    class_names: list[str] = CLASSES,
    subsets: dict[str, list[int]] | None = None,
    paths: list[str] | None = None,
    keys: list[str] | None = None,
    missing: dict[str, int] | None = None,
    name: str = "model",
) -> EvalResult:
    """An ``EvalResult`` whose metrics are computed from ``targets`` and ``preds`` like ``evaluate`` does."""
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(preds, dtype=np.int64)
    c = len(class_names)
    n = len(t)
    keys = keys if keys is not None else [f"fer{i:07d}" for i in range(n)]
    paths = paths if paths is not None else [f"/nonexistent/{k}.png" for k in keys]
    probs = np.full((n, c), 0.1 / max(c - 1, 1))
    probs[np.arange(n), p] = 0.9
    sub_idx = {k: np.asarray(v, dtype=np.int64) for k, v in (subsets or {}).items()}
    sub_metrics = {
        k: SetMetrics.from_confusion(confusion_matrix(t[v], p[v], c), (missing or {}).get(k, 0))
        for k, v in sub_idx.items()
    }
    return EvalResult(
        model_name=name,
        class_names=list(class_names),
        overall=SetMetrics.from_confusion(confusion_matrix(t, p, c)),
        subsets=sub_metrics,
        subset_indices=sub_idx,
        paths=list(paths),
        keys=list(keys),
        targets=t,
        preds=p,
        probs=probs,
    )


def make_pair(paths: list[str] | None = None) -> dict[str, EvalResult]:
    """The standard RAN + baseline results on the 8 samples above."""
    return {
        "ran": make_result(TARGETS, RAN_PREDS, subsets=SUBSETS, paths=paths, missing={"pose30": 2}, name="ran"),
        "baseline": make_result(TARGETS, BASE_PREDS, subsets=SUBSETS, paths=paths, missing={"pose30": 2}, name="base"),
    }


def make_ferplus(root: Path, n: int = 6) -> tuple[Path, Path]:
    """A FERPlus-layout folder (``FER2013Valid/`` with ``label.csv``) and a subset-list folder (``FERplus_dir/``).

    Image ``i`` gets a clear majority for class ``i % 3``. The pose-30 list names images 0..2 (as ``.jpg``, like the
    authors' lists) plus one id that is not in the split; the occlusion list names images 3..4.

    Returns:
        ``(dataset root, lists folder)``.
    """
    data = root / "ferplus"
    valid = data / "FER2013Valid"
    write_images(valid, n)
    rows = []
    for i in range(n):
        votes = [0] * 10
        votes[i % 3] = 8
        votes[(i + 1) % 3] = 2
        rows.append(f'fer{i:07d}.png,"(0, 0, 48, 48)",' + ",".join(map(str, votes)))
    (valid / "label.csv").write_text("\n".join(rows) + "\n")
    lists = root / "lists"
    ferdir = lists / "FERplus_dir"
    ferdir.mkdir(parents=True)
    pose = [f"{i % 3}/fer{i:07d}.jpg" for i in range(3)] + ["1/fer0099999.jpg"]
    (ferdir / "pose_30_ferplus_list.txt").write_text("\n".join(pose) + "\n")
    occ = [f"{i % 3}_fer{i:07d}.png 8 0" for i in range(3, 5)]
    (ferdir / "jianfei_occlusion_list.txt").write_text("\r\n".join(occ) + "\r\n")
    return data, lists
