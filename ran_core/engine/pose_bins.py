"""Accuracy by head pose on any dataset: faces bucketed by estimated |yaw|, as the RAN authors' pose subsets are.

The authors built their FERPlus / AffectNet / RAF-DB pose lists (> 30 and > 45 degrees) with a head-pose estimator;
this does the same for any labelled split, from landmarks found once and cached
(:func:`ran_core.data.landmarks.attach_landmarks`) and :func:`ran_core.faces.pose.estimate_pose`.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ran_core.data.base import DatasetSplit
from ran_core.engine.metrics import metrics_by_group
from ran_core.faces.pose import HeadPose, estimate_pose

# (name, lowest |yaw|, highest |yaw|) in degrees; faces without landmarks go to "unknown".
POSE_BINS: tuple[tuple[str, float, float], ...] = (
    ("<15", 0, 15),
    ("15-30", 15, 30),
    ("30-45", 30, 45),
    (">=45", 45, 181),
)
UNKNOWN = "unknown"


def yaw_bin(pose: HeadPose | None) -> str:
    if pose is None:
        return UNKNOWN
    a = abs(pose.yaw)
    for name, lo, hi in POSE_BINS:
        if lo <= a < hi:
            return name
    return POSE_BINS[-1][0]


def split_poses(split: DatasetSplit) -> dict[str, HeadPose | None]:
    """Image path -> its head pose (None without landmarks), for every sample of ``split``."""
    return {str(s.path): estimate_pose(s.landmarks) for s in split.samples}


def pose_bin_metrics(result, poses: dict[str, HeadPose | None]) -> dict[str, dict]:
    """Per-bin ``accuracy``, ``mean_class_accuracy``, ``n``, ``mean_yaw`` and ``confusion`` of an
    :class:`~ran_core.engine.evaluate.EvalResult`."""
    bins = np.array([yaw_bin(poses.get(p)) for p in result.paths], dtype=object)
    yaws = np.array([np.nan if poses.get(p) is None else abs(poses[p].yaw) for p in result.paths])
    names = [b[0] for b in POSE_BINS] + [UNKNOWN]
    groups = metrics_by_group(result.targets, result.preds, bins, names, len(result.class_names))
    out: dict[str, dict] = {}
    for name, m in groups.items():
        out[name] = {
            "accuracy": m.accuracy if m.n else None,
            "mean_class_accuracy": m.mean_class_accuracy if m.n else None,
            "n": m.n,
            "mean_yaw": float(np.nanmean(yaws[bins == name])) if m.n and name != UNKNOWN else None,
            "confusion": m.confusion.tolist(),
        }
    return out


def write_per_image_csv(path: str | Path, results: list, labels: list[str], poses: dict) -> Path:
    """``image,true,pred,yaw,pitch,roll`` for every evaluated image (a ``pred_<label>`` column per compared model);
    yaw/pitch/roll are empty where no pose was found."""
    main = results[0]
    names = main.class_names
    others = [{p: int(q) for p, q in zip(r.paths, r.preds)} for r in results[1:]]
    path = Path(path)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "true", "pred", "yaw", "pitch", "roll", *[f"pred_{lab}" for lab in labels[1:]]])
        for p, t, q in zip(main.paths, main.targets, main.preds):
            pose = poses.get(p)
            angles = ["", "", ""] if pose is None else [f"{pose.yaw:.2f}", f"{pose.pitch:.2f}", f"{pose.roll:.2f}"]
            extra = [names[o[p]] if p in o else "" for o in others]
            w.writerow([p, names[int(t)], names[int(q)], *angles, *extra])
    return path
