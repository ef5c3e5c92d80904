"""Builders for the evaluation-view tests: real ``EvalResult`` objects with chosen predictions, tiny images, and a
FERPlus-layout dataset folder with subset lists. No Qt here, so the state tests can use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ran_core.engine.deletion import DeletionResult
from ran_core.engine.evaluate import EvalResult
from ran_core.engine.metrics import SetMetrics, confusion_matrix
from ran_viewer.model.eval_state import EvalAnalyses

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


# Pose bins of the 8 samples above as ``pose_bin_metrics`` gives them: RAN 6/8 overall, the baseline 4/8.
POSE_BINS = {
    "ran": {
        "<15": {"accuracy": 100.0, "n": 3, "mean_yaw": 6.0},
        "15-30": {"accuracy": 50.0, "n": 2, "mean_yaw": 21.0},
        "30-45": {"accuracy": 100.0, "n": 1, "mean_yaw": 35.0},
        ">=45": {"accuracy": None, "n": 0, "mean_yaw": None},
        "unknown": {"accuracy": 50.0, "n": 2, "mean_yaw": None},
    },
    "baseline": {
        "<15": {"accuracy": 66.66666666666667, "n": 3, "mean_yaw": 6.0},
        "15-30": {"accuracy": 50.0, "n": 2, "mean_yaw": 21.0},
        "30-45": {"accuracy": 0.0, "n": 1, "mean_yaw": 35.0},
        ">=45": {"accuracy": None, "n": 0, "mean_yaw": None},
        "unknown": {"accuracy": 50.0, "n": 2, "mean_yaw": None},
    },
}


# Agreement bins of the 8 samples above as ``agreement_bin_metrics`` gives them: RAN 6/8 overall, the baseline 4/8.
AGREEMENT_BINS = {
    "ran": {
        "50-60%": {"accuracy": 50.0, "n": 2, "errors": 1},
        "60-70%": {"accuracy": 0.0, "n": 1, "errors": 1},
        "70-80%": {"accuracy": None, "n": 0, "errors": 0},
        "80-90%": {"accuracy": 100.0, "n": 1, "errors": 0},
        "90-100%": {"accuracy": 100.0, "n": 4, "errors": 0},
    },
    "baseline": {
        "50-60%": {"accuracy": 0.0, "n": 2, "errors": 2},
        "60-70%": {"accuracy": 0.0, "n": 1, "errors": 1},
        "70-80%": {"accuracy": None, "n": 0, "errors": 0},
        "80-90%": {"accuracy": 100.0, "n": 1, "errors": 0},
        "90-100%": {"accuracy": 75.0, "n": 4, "errors": 1},
    },
}


def make_deletion(ranked_by: str, start: float = 75.0) -> DeletionResult:
    """Deletion curves over 6 regions that fall fastest when the most-weighted region goes first."""
    return DeletionResult(
        accuracy={
            "by_weight": [start, 40.0, 35.0, 30.0, 30.0, 25.0],
            "reverse": [start, 70.0, 60.0, 50.0, 40.0, 25.0],
            "random": [start, 55.0, 45.0, 40.0, 35.0, 25.0],
        },
        true_prob={o: [0.5] * 6 for o in ("by_weight", "reverse", "random")},
        region_names=["face", "top_left", "top_right", "center_down", "center_90", "center_75"],
        ranked_by=ranked_by,
        n=8,
        random_orders=3,
    )


def make_analyses() -> EvalAnalyses:
    """Pose bins, agreement bins and deletion curves of both models, as a run with all options returns them."""
    return EvalAnalyses(
        pose_bins=POSE_BINS,
        agreement_bins=AGREEMENT_BINS,
        deletion={"ran": make_deletion("attention"), "baseline": make_deletion("sensitivity", 50.0)},
        landmarks="landmarks for 6 of 8 faces",
    )


class TurnedFaceDetector:
    """A landmark detector for :func:`make_ferplus` images: it finds the pasted face (what is not the mid-grey padding)
    and puts the nose further right the brighter the face, so the estimated |yaw| grows with the image index (0° for
    image 0, about 35° for image 5). Faces brighter than ``blind_above`` are not found (their pose is unknown)."""

    name = "turned-face"

    def __init__(self, blind_above: int = 225) -> None:
        self.blind_above = blind_above

    def detect(self, rgb: np.ndarray) -> list:
        from ran_core.faces import Detection

        ys, xs = np.nonzero(np.abs(rgb[..., 0].astype(int) - 128) > 0)
        if len(xs) == 0:
            return []
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        brightness = int(rgb[y1 + 2, x1 + 2, 0])
        if brightness > self.blind_above:
            return []
        shift = 0.2 * (brightness - 30) / 200
        frac = np.array([[0.3, 0.4], [0.7, 0.4], [0.5 + shift, 0.6], [0.35, 0.8], [0.65, 0.8]])
        pts = np.array([x1, y1]) + frac * np.array([x2 - x1, y2 - y1])
        return [Detection((float(x1), float(y1), float(x2), float(y2)), 0.99, pts)]
