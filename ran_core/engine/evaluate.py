"""Evaluate a model on a dataset split and on the authors' occlusion/pose subsets of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ran_core.data.pipeline import CachedFaces, FaceDataset, RegionBatcher, iterate_batches, occlude_batch
from ran_core.engine.metrics import SetMetrics, confusion_matrix
from ran_core.models.inference import infer

if TYPE_CHECKING:
    from ran_core.data import DatasetSplit, SubsetList


class EvaluationCancelled(Exception):
    """Raised when ``should_stop`` asks an evaluation to stop."""


@dataclass
class EvalResult:
    """Per-sample predictions and metrics of one model on one split (and its subsets).

    ``targets``, ``preds``, ``probs``, ``alpha``, ``beta``, ``paths`` and ``keys`` are aligned, one entry per evaluated
    image; images that could not be read are left out and counted in ``unreadable``.
    """

    model_name: str
    class_names: list[str]
    overall: SetMetrics
    subsets: dict[str, SetMetrics]
    subset_indices: dict[str, np.ndarray]
    paths: list[str]
    keys: list[str]
    targets: np.ndarray
    preds: np.ndarray
    probs: np.ndarray
    alpha: np.ndarray | None = None
    beta: np.ndarray | None = None
    loss: float = float("nan")
    unreadable: int = 0
    region_names: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """The ``metrics.json`` layout: overall, subsets, classes and confusion matrices (rows = true class)."""
        return {
            "model": self.model_name,
            "overall": self.overall.to_json(),
            "subsets": {k: v.to_json() for k, v in self.subsets.items()},
            "classes": list(self.class_names),
            "per_class_accuracy": {
                n: (None if a != a else round(float(a), 4))
                for n, a in zip(self.class_names, self.overall.per_class_accuracy())
            },
            "confusion": {
                "overall": self.overall.confusion.tolist(),
                **{k: v.confusion.tolist() for k, v in self.subsets.items()},
            },
            "unreadable": self.unreadable,
        }


@torch.inference_mode()
def predict_split(
    model: nn.Module,
    source: CachedFaces | FaceDataset,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 0,
    shard: tuple[int, int] = (0, 1),
    occlusion: str | None = None,
    amp: torch.dtype | str | None = "auto",
    tta: str | None = None,
) -> dict[str, np.ndarray]:
    """Run ``model`` over every sample of ``source``; returns indices, targets, probs, alpha, beta and mean loss.

    ``shard=(rank, world)`` evaluates every ``world``-th sample starting at ``rank`` (distributed validation).
    ``occlusion`` blacks out part of every face first (:func:`ran_core.data.pipeline.occlude_batch`).
    ``amp`` is the autocast dtype (``None``: full precision; ``"auto"``: bf16 on CUDA, and on a CPU for models marked
    ``_bf16_inference``). ``tta`` overrides the model config's test-time augmentation (see
    :func:`ran_core.models.infer`).
    """
    device = torch.device(device)
    model.eval()
    batcher = RegionBatcher(model.config, augment=None)
    n = len(source.valid) if isinstance(source, CachedFaces) else len(source)
    order = torch.arange(n)[shard[0] :: shard[1]]
    batches = list(order.split(batch_size))
    idx_out, tgt_out, prob_out, a_out, b_out = [], [], [], [], []
    loss_sum, done = 0.0, 0
    if amp == "auto":
        use_bf16 = device.type == "cpu" and getattr(model, "_bf16_inference", False)
        amp_dtype = torch.bfloat16 if use_bf16 or device.type == "cuda" else None
    else:
        amp_dtype = amp
    occ_gen = torch.Generator().manual_seed(0)
    for batch in iterate_batches(source, batches, workers=workers, pin_memory=device.type == "cuda"):
        if should_stop is not None and should_stop():
            raise EvaluationCancelled("evaluation cancelled")
        done += len(batch["index"]) + len(batch["errors"])
        if len(batch["index"]):
            images = batch["image"] if occlusion is None else occlude_batch(batch["image"], occlusion, occ_gen)
            x = batcher(images.to(device, non_blocking=True), batch["landmarks"])
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                out = infer(model, x, tta)
            logits = out.logits.float()
            target = batch["target"].to(device)
            hard = target.argmax(1) if target.is_floating_point() else target
            loss_sum += float(F.cross_entropy(logits, hard, reduction="sum"))
            idx_out.append(batch["index"])
            tgt_out.append(hard.cpu())
            prob_out.append(F.softmax(logits, dim=1).cpu())
            if out.alpha is not None:
                a_out.append(out.alpha.float().cpu())
                b_out.append(out.beta.float().cpu())
        if progress is not None:
            progress(done, len(order))
    cat = (lambda xs: torch.cat(xs).numpy()) if idx_out else (lambda xs: np.zeros((0,)))
    total = sum(len(i) for i in idx_out)
    return {
        "index": cat(idx_out).astype(np.int64),
        "targets": cat(tgt_out).astype(np.int64),
        "probs": cat(prob_out) if idx_out else np.zeros((0, model.config.num_classes)),
        "alpha": cat(a_out) if a_out else None,
        "beta": cat(b_out) if b_out else None,
        "loss": loss_sum / total if total else float("nan"),
    }


def evaluate(
    model: nn.Module,
    split: DatasetSplit,
    subsets: dict[str, SubsetList] | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    workers: int = 0,
    cache: CachedFaces | None = None,
    occlusion: str | None = None,
    tta: str | None = None,
) -> EvalResult:
    """Evaluate ``model`` on ``split`` and on each subset list matched against it.

    Args:
        model: a ran_core model (its config gives the preprocessing and region scheme).
        split: the dataset split to evaluate.
        subsets: occlusion / pose lists from :func:`ran_core.data.load_subset_lists`.
        batch_size: faces per forward pass.
        device: where to run.
        progress: called with ``(done, total)`` after every batch.
        should_stop: polled between batches; returning True raises :class:`EvaluationCancelled`.
        workers: DataLoader worker processes for decoding (0 decodes in this process).
        cache: pre-decoded faces of ``split`` for this model's framing (the trainer passes its validation cache).
        occlusion: evaluate with a synthetic occluder on every face (``eyes``, ``mouth``, ``lower_half``,
            ``left_half`` or ``random``); ``None`` evaluates the images as they are.
        tta: test-time augmentation, ``none`` or ``flip`` (``None``: the model config's).

    A RAN whose ``region_chunk`` is unset is given the fastest one for this device first
    (:meth:`~ran_core.models.ran.RegionAttentionNetwork.autotune_region_chunk`): it changes speed, never outputs.
    """
    from ran_core.data import match_subset

    config = model.config
    if list(split.class_names) != list(config.class_names):
        raise ValueError(
            f"the model predicts {config.class_names} but the {split.dataset} split has classes {split.class_names}; "
            "evaluate on a dataset with the same classes (for AffectNet choose --num-classes to match)"
        )
    source = cache if cache is not None else FaceDataset(split.samples, config, config.input_size, config.num_classes)
    if model.region_chunk is None:
        # All regions in one backbone call, in chunks, or one per call: same outputs, and which is fastest depends on
        # the device and sizes (on a CPU the official loop wins for ResNet-18 at 224 px). A second of timing buys that.
        model.autotune_region_chunk(batch_size=min(batch_size, 16), repeats=2, device=device)
    out = predict_split(model, source, batch_size, device, progress, should_stop, workers, occlusion=occlusion, tta=tta)
    idx, targets, probs = out["index"], out["targets"], out["probs"]
    preds = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    c = config.num_classes
    overall = SetMetrics.from_confusion(confusion_matrix(targets, preds, c))
    position = {int(i): j for j, i in enumerate(idx)}  # sample index -> row in the prediction arrays
    subset_metrics: dict[str, SetMetrics] = {}
    subset_rows: dict[str, np.ndarray] = {}
    for name, subset in (subsets or {}).items():
        sample_idx, missing = match_subset(split, subset)
        rows = np.array([position[int(i)] for i in sample_idx if int(i) in position], dtype=np.int64)
        missing += len(sample_idx) - len(rows)  # listed and present on disk, but unreadable
        subset_rows[name] = rows
        subset_metrics[name] = SetMetrics.from_confusion(confusion_matrix(targets[rows], preds[rows], c), missing)
    return EvalResult(
        model_name=str(getattr(model, "source_path", config.name)),
        class_names=list(config.class_names),
        overall=overall,
        subsets=subset_metrics,
        subset_indices=subset_rows,
        paths=[str(split.samples[i].path) for i in idx],
        keys=[split.samples[i].key for i in idx],
        targets=targets,
        preds=preds,
        probs=probs,
        alpha=out["alpha"],
        beta=out["beta"],
        loss=out["loss"],
        unreadable=len(split.samples) - len(idx),
        region_names=config.regions.region_names(),
    )
