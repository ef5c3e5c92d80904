"""Region deletion curves: a model that reads one region must fall at once when that region is covered first."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from ran_core import create_model, save_model
from ran_core.cli import main
from ran_core.config import ModelConfig
from ran_core.data.pipeline import CachedFaces
from ran_core.engine.deletion import deletion_curves
from ran_core.regions import FIXED_REGIONS, RegionConfig
from ran_core.structures import ModelOutput


class _ReadsCenterDown(nn.Module):
    """A 'RAN' that predicts class 0 when its centre_down crop is brighter than the mean, and says so in its weights:
    centre_down gets the largest alpha, top_left the smallest."""

    def __init__(self) -> None:
        super().__init__()
        self.config = ModelConfig(arch="ran", backbone="compact", class_names=["bright", "dark"])
        self.names = list(self.config.regions.names)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        m = x[:, self.names.index("center_down")].mean(dim=(1, 2, 3))  # normalised: > 0 when brighter than the mean
        logits = torch.stack([10 * m, torch.full_like(m, 0.1)], 1)
        alpha = torch.tensor([0.1, 0.05, 0.1, 0.4, 0.2, 0.15]).expand(len(x), 6)
        return ModelOutput(logits=logits, alpha=alpha, beta=torch.full_like(alpha, 1 / 6))


def _faces(n: int = 8) -> CachedFaces:
    imgs = torch.full((n, 1, 48, 48), 128, dtype=torch.uint8)
    x0, y0, x1, y1 = (round(v * 48) for v in FIXED_REGIONS["center_down"])
    targets = torch.tensor([i % 2 for i in range(n)])
    for i in range(n):
        imgs[i, :, y0:y1, x0:x1] = 255 if targets[i] == 0 else 0
    return CachedFaces(imgs, targets, torch.full((n, 5, 2), float("nan")), torch.ones(n, dtype=torch.bool), [])


def test_deletion_reads_with_the_tta_asked_for() -> None:
    """``tta`` overrides the saved TTA: a model saved with flip is read once per step with ``none``, twice without."""
    model = _ReadsCenterDown()
    model.config.tta = "flip"
    calls: list[int] = []
    model.register_forward_hook(lambda m, args, out: calls.append(len(args[0])))
    plain = deletion_curves(model, _faces(), random_orders=1, tta="none")
    n_plain = len(calls)
    assert n_plain == 1 + 3 * 5 and plain.tta == "none" and plain.to_json()["tta"] == "none"
    calls.clear()
    saved = deletion_curves(model, _faces(), random_orders=1)
    assert len(calls) == 2 * n_plain and saved.tta == "flip"
    assert saved.accuracy["by_weight"] == plain.accuracy["by_weight"]  # this model reads a symmetric crop


def test_covering_the_most_weighted_region_first_falls_at_once() -> None:
    res = deletion_curves(_ReadsCenterDown(), _faces(), random_orders=4)
    acc = res.accuracy
    assert acc["by_weight"] == pytest.approx([100, 50, 50, 50, 50, 50])
    assert acc["reverse"] == pytest.approx([100, 100, 100, 100, 100, 50])
    assert acc["by_weight"][0] == acc["random"][0] and acc["random"][-1] == pytest.approx(50)
    auc = res.auc
    assert auc["by_weight"] < auc["random"] < auc["reverse"]
    assert res.first_covered["by_weight"] == {
        "top_left": 0,
        "top_right": 0,
        "center_down": 8,
        "center_90": 0,
        "center_75": 0,
    }
    assert res.first_covered["reverse"]["top_left"] == 8 and res.ranked_by == "attention"
    assert res.true_prob["by_weight"][1] < res.true_prob["reverse"][1]


def test_baseline_is_ranked_by_its_own_sensitivity() -> None:
    """The same faces for a whole-face model that reads the lower centre: its most sensitive region is center_down."""

    class _Base(_ReadsCenterDown):
        def __init__(self) -> None:
            super().__init__()
            self.config = ModelConfig(arch="baseline", backbone="compact", class_names=["bright", "dark"])

        def forward(self, x: torch.Tensor) -> ModelOutput:
            face = x[:, 0]
            x0, y0, x1, y1 = (round(v * 48) for v in FIXED_REGIONS["center_down"])
            m = face[:, :, y0 + 12 :, x0 + 6 : x1 - 6].mean(dim=(1, 2, 3))
            return ModelOutput(logits=torch.stack([10 * m, torch.full_like(m, 0.1)], 1))

    res = deletion_curves(_Base(), _faces(), RegionConfig(), random_orders=2)
    assert res.ranked_by == "sensitivity" and res.accuracy["by_weight"][1] == pytest.approx(50)
    assert res.first_covered["by_weight"]["center_down"] == 8


def test_eval_cli_deletion_for_ran_and_baseline(ferplus_root, tmp_path) -> None:
    torch.manual_seed(0)
    save_model(create_model("ran_compact"), tmp_path / "ran")
    save_model(create_model("baseline_compact"), tmp_path / "base")
    argv = ["eval", "--checkpoint", str(tmp_path / "ran"), "--dataset", "ferplus", "--data-root", str(ferplus_root)]
    argv += ["--split", "valid", "--out", str(tmp_path / "e"), "--workers", "0", "--deletion"]
    argv += ["--compare", str(tmp_path / "base"), "--deletion-orders", "2"]
    assert main(argv) == 0
    d = json.loads((tmp_path / "e" / "deletion.json").read_text())
    assert set(d["orders"]) == {"by_weight", "reverse", "random"} and len(d["orders"]["by_weight"]) == 6
    assert d["ranked_by"] == "attention" and d["compare"]["ranked_by"] == "sensitivity" and d["n"] == 12
    assert np.isclose(
        d["orders"]["by_weight"][0], json.loads((tmp_path / "e" / "metrics.json").read_text())["overall"]["accuracy"]
    )
    assert (tmp_path / "e" / "deletion.png").stat().st_size > 10000


def test_deletion_curves_stop_when_asked() -> None:
    """A GUI cancels between batches: the next batch is never started."""
    from ran_core.engine.evaluate import EvaluationCancelled

    batches: list[tuple[int, int]] = []
    polls = iter([False, True])
    with pytest.raises(EvaluationCancelled):
        deletion_curves(
            _ReadsCenterDown(),
            _faces(8),
            batch_size=4,
            progress=lambda d, t: batches.append((d, t)),
            should_stop=lambda: next(polls),
        )
    assert batches == [(4, 8)]
