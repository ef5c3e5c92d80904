"""Is the attention faithful? The region deletion curve.

For every face, the model's regions are covered one after another (filled with the dataset mean, i.e. the model's
normalisation mean) and the crops are cut again from the covered face: in decreasing order of RAN's weight
(``by_weight``), in increasing order (``reverse``), and in random orders (``random``, seeded, averaged). After each
step the accuracy and the true class's mean probability are recorded. Region 0, the whole face, is never covered
(it would cover everything). If the attention is faithful, covering the regions RAN trusts most hurts most: the
``by_weight`` curve falls fastest, and its area (``auc``, the mean of the curve) is the smallest.

A model without attention (the baseline) is measured on the same boxes, ordered by its own occlusion sensitivity:
how much the true class's probability drops when each region alone is covered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ran_core.data.pipeline import CachedFaces, iterate_batches
from ran_core.engine.evaluate import EvaluationCancelled
from ran_core.models.inference import infer
from ran_core.regions import RegionConfig, crop_regions, normalize_crops, region_boxes_batch

ORDERS: tuple[str, ...] = ("by_weight", "reverse", "random")


@dataclass
class DeletionResult:
    """Accuracy (%) and true-class probability after covering 0, 1, ..., K-1 regions, per order.

    Attributes:
        accuracy: order -> K values (step 0 is the uncovered face).
        true_prob: order -> K values.
        region_names: the regions, region 0 first.
        ranked_by: ``attention`` (RAN's alpha*beta share) or ``sensitivity`` (single-region occlusion).
        n: faces measured.
        random_orders: how many random orders were averaged.
        first_covered: order -> how often each region was covered first (``by_weight`` and ``reverse``).
        tta: the test-time augmentation every step was read with.
    """

    accuracy: dict[str, list[float]]
    true_prob: dict[str, list[float]]
    region_names: list[str]
    ranked_by: str
    n: int
    random_orders: int
    first_covered: dict[str, dict[str, int]] = field(default_factory=dict)
    tta: str = "none"

    @property
    def auc(self) -> dict[str, float]:
        """Mean accuracy over the steps (trapezoid rule, steps scaled to [0, 1]): lower = falls faster."""
        return {k: float(np.trapezoid(v, dx=1.0 / max(1, len(v) - 1))) for k, v in self.accuracy.items()}

    def to_json(self) -> dict:
        return {
            "orders": {k: [round(x, 4) for x in v] for k, v in self.accuracy.items()},
            "true_class_probability": {k: [round(x, 5) for x in v] for k, v in self.true_prob.items()},
            "auc": {k: round(v, 4) for k, v in self.auc.items()},
            "region_names": self.region_names,
            "ranked_by": self.ranked_by,
            "n": self.n,
            "random_orders": self.random_orders,
            "first_covered": self.first_covered,
            "tta": self.tta,
        }


def _region_masks(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, K, 4)`` boxes -> ``(B, K, S, S)`` bool pixel masks (pixel centres inside the box)."""
    c = torch.arange(size, dtype=boxes.dtype, device=boxes.device) + 0.5
    x1, y1, x2, y2 = (boxes[..., i, None, None] for i in range(4))
    inside_x = (c.view(1, 1, 1, -1) >= x1) & (c.view(1, 1, 1, -1) < x2)
    inside_y = (c.view(1, 1, -1, 1) >= y1) & (c.view(1, 1, -1, 1) < y2)
    return inside_x & inside_y


def _cover(x: torch.Tensor, masks: torch.Tensor, chosen: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Faces ``x`` with the chosen ``(B, K)`` regions filled with ``fill``."""
    pix = (chosen[:, :, None, None] & masks).any(1)[:, None]  # (B, 1, S, S)
    return torch.where(pix, fill, x)


@torch.inference_mode()
def deletion_curves(
    model: nn.Module,
    source: CachedFaces,
    regions: RegionConfig | None = None,
    batch_size: int = 128,
    random_orders: int = 3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    tta: str | None = None,
) -> DeletionResult:
    """Deletion curves of ``model`` on pre-decoded faces (framed as the model expects, see :class:`CachedFaces`).

    Args:
        model: RAN (ordered by its alpha*beta weights) or a model without attention (ordered by sensitivity).
        source: the faces and their targets.
        regions: the boxes to cover (default: the model's, or the paper's 6 fixed regions for the baseline).
        batch_size: faces per forward pass.
        random_orders: random orders averaged for ``random``.
        seed: seed of the random orders.
        device: where to run.
        progress: called with ``(done, total)``.
        should_stop: polled before every batch; returning True raises
            :class:`~ran_core.engine.evaluate.EvaluationCancelled`.
        tta: test-time augmentation of every reading (``None``: the model's saved one). Each face is read
            1 + (2 + random_orders)(K - 1) times, each time with all of its views: ``none`` is the affordable choice.
    """
    device = torch.device(device)
    model.eval()
    cfg = model.config
    rcfg = regions or (cfg.regions if cfg.regions.num_regions > 1 else RegionConfig())
    k = rcfg.num_regions
    if k < 2:
        raise ValueError("deletion curves need at least 2 regions")
    size = cfg.input_size
    fill = torch.tensor(cfg.mean, device=device).view(1, -1, 1, 1)
    gen = torch.Generator().manual_seed(seed)
    region_gen = torch.Generator().manual_seed(rcfg.seed)
    uses_attention = cfg.arch == "ran"
    tta = tta or cfg.tta
    names = rcfg.region_names()
    steps = {o: np.zeros(k) for o in ORDERS}
    probs = {o: np.zeros(k) for o in ORDERS}
    first = {o: np.zeros(k, dtype=np.int64) for o in ("by_weight", "reverse")}
    n_done = 0
    valid = torch.nonzero(source.valid).flatten()
    batches = list(valid.split(batch_size))

    def read(x01: torch.Tensor, boxes: torch.Tensor, target: torch.Tensor):
        crops = crop_regions(x01, boxes, size)
        if not uses_attention:
            crops = crops[:, :1]
        out = infer(model, normalize_crops(crops, cfg.mean, cfg.std), tta)
        p = out.logits.softmax(1)
        return out, (p.argmax(1) == target).float(), p.gather(1, target[:, None])[:, 0]

    for bi, batch in enumerate(iterate_batches(source, batches)):
        if should_stop is not None and should_stop():
            raise EvaluationCancelled("deletion curves cancelled")
        x = batch["image"].to(device).float() / 255.0
        target = batch["target"].to(device)
        target = target.argmax(1) if target.is_floating_point() else target
        b = len(target)
        face = torch.tensor([[0.0, 0.0, float(x.shape[-1]), float(x.shape[-2])]], device=device).expand(b, 4)
        lm = batch["landmarks"].to(device) if rcfg.scheme == "landmark" else None
        gen_r = region_gen if rcfg.scheme == "random" else None
        boxes, _ = region_boxes_batch(rcfg, face, lm, canvas_size=tuple(x.shape[-2:]), generator=gen_r)
        boxes = boxes.to(device=device, dtype=x.dtype)
        masks = _region_masks(boxes, x.shape[-1])  # (B, K, S, S)

        out, correct0, p0 = read(x, boxes, target)
        if uses_attention:
            score = out.weights[:, 1:].float()
        else:  # the drop of the true class's probability when each region alone is covered
            drops = []
            for r in range(1, k):
                chosen = torch.zeros(b, k, dtype=torch.bool, device=device)
                chosen[:, r] = True
                drops.append(p0 - read(_cover(x, masks, chosen, fill), boxes, target)[2])
            score = torch.stack(drops, 1)
        ranks = {
            "by_weight": torch.argsort(score, dim=1, descending=True) + 1,
            "reverse": torch.argsort(score, dim=1) + 1,
        }
        for name in ("by_weight", "reverse"):
            first[name] += np.bincount(ranks[name][:, 0].cpu().numpy(), minlength=k)
        orders = [(name, ranks[name], 1.0) for name in ("by_weight", "reverse")]
        for _ in range(random_orders):
            perm = torch.argsort(torch.rand(b, k - 1, generator=gen), dim=1).to(device) + 1
            orders.append(("random", perm, 1.0 / random_orders))
        for name, order, w in orders:
            steps[name][0] += w * float(correct0.sum())
            probs[name][0] += w * float(p0.sum())
            chosen = torch.zeros(b, k, dtype=torch.bool, device=device)
            for t in range(1, k):
                chosen[torch.arange(b, device=device), order[:, t - 1]] = True
                _, correct, p_true = read(_cover(x, masks, chosen, fill), boxes, target)
                steps[name][t] += w * float(correct.sum())
                probs[name][t] += w * float(p_true.sum())
        n_done += b
        if progress is not None:
            progress(min(len(valid), (bi + 1) * batch_size), len(valid))
    n = max(1, n_done)
    return DeletionResult(
        accuracy={o: (100.0 * steps[o] / n).tolist() for o in ORDERS},
        true_prob={o: (probs[o] / n).tolist() for o in ORDERS},
        region_names=names,
        ranked_by="attention" if uses_attention else "sensitivity",
        n=n_done,
        random_orders=random_orders,
        first_covered={o: {names[i]: int(c) for i, c in enumerate(first[o]) if i > 0} for o in first},
        tta=tta,
    )
