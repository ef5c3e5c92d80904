"""Pictures of results: confusion matrices, training curves, the logit-adjustment trade-off (matplotlib, no display
needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ran_core.timeline import CLASS_COLORS, class_color  # noqa: E402, F401 - shared with the viewer


def plot_confusion(
    confusion: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "", normalize: bool = False
) -> Path:
    """Save a confusion-matrix heatmap (rows = true, columns = predicted); ``normalize`` shows row percentages."""
    cm = np.asarray(confusion, dtype=np.float64)
    if normalize:
        with np.errstate(invalid="ignore", divide="ignore"):
            cm = 100.0 * cm / cm.sum(axis=1, keepdims=True)
        cm = np.nan_to_num(cm)
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 0.8 + 0.7 * n), dpi=110)
    im = ax.imshow(cm, cmap="viridis", vmin=0, vmax=100 if normalize else max(1.0, cm.max()))
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    thresh = (100 if normalize else cm.max()) * 0.6
    for i in range(n):
        for j in range(n):
            text = f"{cm[i, j]:.0f}" if not normalize else f"{cm[i, j]:.1f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="black" if cm[i, j] > thresh else "white")
    ax.set_title(title + (" (row %)" if normalize else " (counts)"))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_curves(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Save loss and accuracy per epoch from the rows of a training ``metrics.csv``."""
    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    ax1.plot(epochs, [float(r["train_loss"]) for r in rows], label="train loss")
    if rows and rows[0].get("val_loss") not in (None, ""):
        ax1.plot(epochs, [float(r["val_loss"]) for r in rows], label="valid loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    ax2.plot(epochs, [float(r["train_acc"]) for r in rows], label="train accuracy")
    ax2.plot(epochs, [float(r["val_acc"]) for r in rows], label="valid accuracy")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy (%)")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_calibration(cal, path: str | Path, title: str = "") -> Path:
    """A :class:`~ran_core.engine.calibrate.Calibration`: overall and mean-class accuracy against tau, the accepted
    accuracy band and the chosen tau."""
    taus = [r["tau"] for r in cal.curve]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(taus, [r["accuracy"] for r in cal.curve], label="accuracy", color="#1f77b4")
    ax.plot(taus, [r["mean_class_accuracy"] for r in cal.curve], label="mean-class accuracy", color="#ff7f0e")
    ax.axhline(cal.base["accuracy"] - cal.max_drop, color="#1f77b4", ls=":", lw=1, label=f"accuracy - {cal.max_drop:g}")
    ax.axvline(cal.tau, color="k", ls="--", lw=1, label=f"chosen tau = {cal.tau:g}")
    ax.set_xlabel("tau (logit adjustment strength)")
    ax.set_ylabel("%")
    ax.set_title(title or "logit adjustment on the validation split")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_deletion(results: dict, path: str | Path, title: str = "") -> Path:
    """Deletion curves (accuracy after covering 0..K-1 regions) of one or more models: ``{label: DeletionResult}``.

    One colour per order, one line style per model (solid for the first, dashed for the second ...)."""
    colors = {"by_weight": "#d62728", "reverse": "#2ca02c", "random": "#7f7f7f"}
    nice = {"by_weight": "most-weighted first", "reverse": "least-weighted first", "random": "random order"}
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for i, (label, res) in enumerate(results.items()):
        for order, acc in res.accuracy.items():
            what = nice[order] if res.ranked_by == "attention" else nice[order].replace("weighted", "sensitive")
            ax.plot(
                range(len(acc)),
                acc,
                styles[i % len(styles)],
                marker="o",
                ms=3,
                color=colors[order],
                label=f"{label}: {what} (AUC {res.auc[order]:.1f})",
            )
    ax.set_xlabel("regions covered (region 0, the whole face, never)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title or "region deletion curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def plot_timeline(
    tracks: dict[int, dict], class_names: list[str], region_names: list[str], path: str | Path, title: str = ""
) -> Path:
    """Class probabilities (and region weights beneath, for RAN) over time, one column of panels per tracked face.

    Args:
        tracks: track id -> ``{"t": (T,), "p": (T, C), "alpha": (T, K) or None}``.
        class_names: names of the C classes.
        region_names: names of the K regions.
        path: the PNG to write.
        title: figure title.
    """
    ids = sorted(tracks) or [0]
    has_alpha = any(tracks[i].get("alpha") is not None for i in tracks)
    rows = 2 if has_alpha else 1
    fig, axes = plt.subplots(
        rows, len(ids), figsize=(max(6.0, 4.5 * len(ids)), 2.6 * rows + 0.6), dpi=110, squeeze=False, sharex="col"
    )
    for col, tid in enumerate(ids):
        tr = tracks.get(tid, {"t": np.zeros(0), "p": np.zeros((0, len(class_names))), "alpha": None})
        ax = axes[0][col]
        for c, name in enumerate(class_names):
            ax.plot(tr["t"], tr["p"][:, c] if len(tr["t"]) else [], color=class_color(c), lw=1.6, label=name)
        ax.set_ylim(0, 1)
        ax.set_ylabel("probability")
        ax.set_title(f"face {tid}", fontsize=10)
        ax.grid(alpha=0.3)
        if col == len(ids) - 1:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        if has_alpha:
            ax2 = axes[1][col]
            alpha = tr.get("alpha")
            if alpha is not None and len(tr["t"]):
                cmap = plt.get_cmap("viridis")
                for k, name in enumerate(region_names):
                    ax2.plot(tr["t"], alpha[:, k], color=cmap(k / max(1, len(region_names) - 1)), lw=1.2, label=name)
            ax2.set_ylabel("region weight (alpha)")
            ax2.grid(alpha=0.3)
            if col == len(ids) - 1:
                ax2.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        axes[-1][col].set_xlabel("time (s)")
    fig.suptitle(title or "expression over time")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
