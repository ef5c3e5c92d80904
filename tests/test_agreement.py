"""Accuracy by annotator agreement (`ran-core eval --by-agreement`) and the FERPlus vote shares behind it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ran_core import create_model, save_model
from ran_core.cli import main
from ran_core.data import open_dataset
from ran_core.data.ferplus import vote_agreement
from ran_core.engine.agreement import AGREEMENT_BINS, agreement_bin, agreement_bin_metrics, split_agreements
from ran_core.engine.evaluate import EvalResult
from ran_core.engine.metrics import SetMetrics, confusion_matrix


def test_vote_agreement_counts_every_column_after_the_outlier_rule() -> None:
    assert vote_agreement([10, 0, 0, 0, 0, 0, 0, 0, 0, 0], 0) == 1.0
    assert vote_agreement([6, 4, 0, 0, 0, 0, 0, 0, 0, 0], 0) == pytest.approx(0.6)
    assert vote_agreement([6, 2, 0, 0, 0, 0, 0, 0, 1, 1], 0) == pytest.approx(0.75)  # single votes are dropped
    assert vote_agreement([6, 0, 0, 0, 0, 0, 0, 0, 2, 2], 0) == pytest.approx(0.6)  # unknown / NF votes count
    assert vote_agreement([0] * 10, 0) == 0.0


@pytest.mark.parametrize(
    ("share", "name"),
    [
        (0.51, "50-60%"),
        (0.6, "60-70%"),
        (7 / 10, "70-80%"),
        (0.7 - 1e-12, "70-80%"),
        (0.89, "80-90%"),
        (0.9, "90-100%"),
        (1.0, "90-100%"),
    ],
)
def test_agreement_bin_edges(share: float, name: str) -> None:
    assert agreement_bin(share) == name


def _write_votes(folder: Path, votes: list[list[int]]) -> None:
    rows = [f'fer{100 + i:07d}.png,"(0, 0, 48, 48)",' + ",".join(map(str, v)) for i, v in enumerate(votes)]
    (folder / "label.csv").write_text("\n".join(rows) + "\n")


# the valid fixture's 12 labels, each given a vote row with a chosen share for it
LABELS = [0, 1, 1, 2, 3, 3, 3, 4, 5, 6, 7, 1]
SHARES = [10, 6, 7, 8, 8, 10, 10, 6, 7, 10, 10, 8]  # of 10 votes; the rest go to the next class (9 + 1 would be 10)


def _votes() -> list[list[int]]:
    rows = []
    for c, k in zip(LABELS, SHARES):
        v = [0] * 10
        v[c] = k
        v[(c + 1) % 8] += 10 - k
        rows.append(v)
    return rows


def test_ferplus_samples_carry_their_agreement(ferplus_root) -> None:
    _write_votes(ferplus_root / "FER2013Valid", _votes())
    split = open_dataset("ferplus", ferplus_root, "valid", "majority", None, None)
    assert [s.label for s in split.samples] == LABELS
    assert [round(s.agreement * 10) for s in split.samples] == SHARES
    shares = split_agreements(split)
    assert len(shares) == 12 and all(0.5 < v <= 1 for v in shares.values())
    for s in split.samples:
        s.agreement = None
    with pytest.raises(ValueError, match="annotators' votes"):
        split_agreements(split)


def test_agreement_bin_metrics_counts_errors_per_bin() -> None:
    targets = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 1, 1, 1, 0, 2])
    paths = [f"/x/{i}.png" for i in range(6)]
    shares = {"/x/0.png": 0.55, "/x/1.png": 0.58, "/x/2.png": 0.95, "/x/3.png": 1.0, "/x/4.png": 0.7}  # 5: none
    m = SetMetrics.from_confusion(confusion_matrix(targets, preds, 3))
    result = EvalResult("m", ["a", "b", "c"], m, {}, {}, paths, paths, targets, preds, np.zeros((6, 3)))
    bins = agreement_bin_metrics(result, shares)
    assert list(bins) == [b[0] for b in AGREEMENT_BINS]
    assert (bins["50-60%"]["n"], bins["50-60%"]["errors"], bins["50-60%"]["accuracy"]) == (2, 1, 50.0)
    assert (bins["70-80%"]["n"], bins["70-80%"]["errors"]) == (1, 1)
    assert (bins["90-100%"]["n"], bins["90-100%"]["accuracy"]) == (2, 100.0)
    assert bins["80-90%"]["n"] == 0 and bins["80-90%"]["accuracy"] is None
    assert sum(b["n"] for b in bins.values()) == 5  # the image without a share is left out


def test_eval_by_agreement(ferplus_root, tmp_path, capsys) -> None:
    _write_votes(ferplus_root / "FER2013Valid", _votes())
    torch.manual_seed(0)
    save_model(create_model("baseline_compact"), tmp_path / "m")
    save_model(create_model("baseline_compact"), tmp_path / "other")
    argv = ["eval", "--checkpoint", str(tmp_path / "m"), "--dataset", "ferplus", "--data-root", str(ferplus_root)]
    argv += ["--split", "valid", "--out", str(tmp_path / "e"), "--workers", "0", "--by-agreement"]
    assert main([*argv, "--compare", str(tmp_path / "other")]) == 0
    assert "accuracy by annotator agreement" in capsys.readouterr().out
    m = json.loads((tmp_path / "e" / "metrics.json").read_text())
    bins = m["agreement_bins"]
    assert {k: v["n"] for k, v in bins.items()} == {"50-60%": 0, "60-70%": 2, "70-80%": 2, "80-90%": 3, "90-100%": 5}
    correct = sum(v["n"] - v["errors"] for v in bins.values())
    assert correct == pytest.approx(m["overall"]["accuracy"] * 12 / 100)
    assert set(m["compare"]["agreement_bins"]) == set(bins)


def test_eval_by_agreement_on_a_dataset_without_votes(tmp_path, capsys) -> None:
    from PIL import Image

    for c in ("happy", "sad"):
        (tmp_path / "d" / c).mkdir(parents=True)
        Image.fromarray(np.zeros((48, 48), np.uint8)).save(tmp_path / "d" / c / "a.png")
    save_model(create_model("baseline_compact", class_names=["happy", "sad"]), tmp_path / "m")
    argv = ["eval", "--checkpoint", str(tmp_path / "m"), "--dataset", "folder", "--data-root", str(tmp_path / "d")]
    assert main([*argv, "--split", "test", "--out", str(tmp_path / "e"), "--by-agreement"]) == 2
    assert "annotators' votes" in capsys.readouterr().err
    assert not (tmp_path / "e" / "metrics.json").exists()
