"""End-to-end tests of `ran-core train` and `ran-core eval` on tiny generated FERPlus-layout data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ferplus_fixtures import make_ferplus
from ferplus_fixtures import train_config as _cfg

from ran_core import create_model, load_model, save_model
from ran_core.cli import main as cli_main
from ran_core.engine.metrics import SetMetrics, confusion_matrix
from ran_core.engine.trainer import TrainConfig, Trainer, TrainingDiverged


def test_metrics_hand_computed() -> None:
    targets = np.array([0, 0, 1, 1, 2])
    preds = np.array([0, 1, 1, 1, 0])
    cm = confusion_matrix(targets, preds, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    m = SetMetrics.from_confusion(cm)
    assert m.accuracy == pytest.approx(60.0)
    assert m.mean_class_accuracy == pytest.approx((50 + 100 + 0) / 3)
    assert m.n == 5


def test_config_file_and_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 7\nlr: 0.5\nbackbone: compact\n")
    cfg = TrainConfig.from_sources(f, data_root="x", lr=0.1, epochs=None)
    assert (cfg.epochs, cfg.lr) == (7, 0.1)
    assert TrainConfig(data_root="x").lr == 0.01 and TrainConfig(data_root="x", recipe="modern").lr == 0.002
    with pytest.raises(ValueError, match="unknown option"):
        f.write_text("epoch: 3\n")
        TrainConfig.from_sources(f, data_root="x")
    with pytest.raises(ValueError):
        TrainConfig(data_root="x", model="transformer")


@pytest.mark.parametrize("command", ["train", "calibrate"])
def test_cli_help_names_only_real_defaults(command: str) -> None:
    """``train``'s flags all default to None (so only the flags given override --config) and name their defaults in
    brackets; help must not append "(default: None)" to them, yet keep the real defaults of ``calibrate``."""
    from ran_core.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    text = " ".join(sub.format_help().split())
    assert "default: None" not in text
    if command == "calibrate":
        assert "accepted loss of overall accuracy, in points (default: 0.5)" in text
        assert "(default: the model's) (default" not in text
    else:
        assert "--epochs EPOCHS [30]" in text


def test_interrupted_and_resumed_run_matches_uninterrupted(ferplus_root: Path, tmp_path: Path) -> None:
    full = Trainer(_cfg(ferplus_root, tmp_path / "full")).run()
    with pytest.raises(KeyboardInterrupt):
        Trainer(_cfg(ferplus_root, tmp_path / "cut"), interrupt_after_steps=2).run()
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["epoch"], ckpt["step"]) == (0, 2)
    resumed = Trainer(_cfg(ferplus_root, tmp_path / "cut"), resume=True).run()
    assert resumed["epochs_done"] == full["epochs_done"] == 2
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert resumed["best"][key] == pytest.approx(full["best"][key], abs=1e-6), key
    a = load_model(tmp_path / "full")
    b = load_model(tmp_path / "cut")
    x = torch.randn(2, 6, 1, 48, 48)
    torch.testing.assert_close(a(x).logits, b(x).logits, atol=1e-6, rtol=0)
    rows = (tmp_path / "cut" / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3 and rows[0].startswith("epoch,")
    assert (tmp_path / "cut" / "curves.png").stat().st_size > 0
    cfg = load_model(tmp_path / "cut").config
    assert cfg.provenance["dataset"] == "ferplus" and "val_accuracy" in cfg.provenance["metrics"]
    run_cfg = _cfg(ferplus_root, tmp_path / "cut")
    assert cfg.provenance["augment"] == {  # what the weights were trained with, for whoever reads the model later
        "preset": run_cfg.augment,
        "erase_fill": run_cfg.erase_fill,
        "occlude_parts": run_cfg.occlude_parts,
    }
    assert cfg.provenance["optimizer"] == run_cfg.optimizer and cfg.provenance["lr"] == run_cfg.lr


def test_nan_loss_stops_and_keeps_last_good_checkpoint(ferplus_root: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "run"
    Trainer(_cfg(ferplus_root, out, epochs=1)).run()
    ckpt = out / "checkpoints" / "last.pt"
    before = ckpt.read_bytes()

    def nan_loss(self, output, target):
        return output.logits.sum() * float("nan"), {"ce": torch.tensor(float("nan"))}

    monkeypatch.setattr("ran_core.losses.RANCriterion.forward", nan_loss)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        Trainer(_cfg(ferplus_root, out, epochs=2), resume=True).run()
    assert ckpt.read_bytes() == before


def test_unreadable_training_image_is_skipped(tmp_path: Path, caplog) -> None:
    root = tmp_path / "ferplus"
    make_ferplus(root, "train", [i % 8 for i in range(16)], 0, corrupt=3)
    make_ferplus(root, "valid", [0, 1, 2, 3], 100)
    summary = Trainer(_cfg(root, tmp_path / "run", epochs=1)).run()
    assert summary["epochs_done"] == 1
    assert "could not be read" in caplog.text and "fer0000003.png" in caplog.text


def test_baseline_and_landmark_free_random_regions_train(ferplus_root: Path, tmp_path: Path) -> None:
    Trainer(_cfg(ferplus_root, tmp_path / "b", model="baseline", epochs=1, recipe="official")).run()
    assert load_model(tmp_path / "b").config.arch == "baseline"
    Trainer(_cfg(ferplus_root, tmp_path / "r", regions="random", num_random=4, epochs=1)).run()
    cfg = load_model(tmp_path / "r").config
    assert cfg.regions.scheme == "random" and cfg.regions.num_regions == 4


def _constant_model(class_index: int, arch: str = "ran") -> torch.nn.Module:
    """A model that always predicts ``class_index``: its metrics can be computed by hand."""
    model = create_model(f"{arch}_compact").eval()
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[class_index] = 10.0
    return model


def _eval_argv(checkpoint: Path, data_root: Path, *extra: str) -> list[str]:
    """``ran-core eval`` on the fixture's FERPlus Valid split."""
    args = ["eval", "--checkpoint", str(checkpoint), "--dataset", "ferplus", "--data-root", str(data_root)]
    return [*args, "--split", "valid", *extra]


def test_eval_cli_metrics_match_hand_computed_case(ferplus_root: Path, tmp_path: Path, capsys) -> None:
    save_model(_constant_model(1), tmp_path / "always1")
    save_model(_constant_model(3, "baseline"), tmp_path / "always3")
    lists = tmp_path / "lists" / "FERplus_dir"
    lists.mkdir(parents=True)
    # valid labels: [0, 1, 1, 2, 3, 3, 3, 4, 5, 6, 7, 1] for fer0000100..fer0000111
    (lists / "pose_30_ferplus_list.txt").write_text(
        "1/fer0000101.jpg\n1/fer0000102.jpg\n3/fer0000104.jpg\n0/fer0099999.jpg\n"
    )
    (lists / "jianfei_occlusion_list.txt").write_bytes(
        b"1_fer0000111.png 8 0\r\n1_fer0000111.png 8 0\r\n3_fer0000105.png 8 2\r\n"
    )
    out = tmp_path / "eval"
    rc = cli_main(
        _eval_argv(
            tmp_path / "always1",
            ferplus_root,
            *("--subset-lists", str(tmp_path / "lists"), "--out", str(out), "--compare", str(tmp_path / "always3")),
            *("--device", "cpu", "--workers", "0"),
        )
    )
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["classes"][1] == "happiness"
    assert m["overall"]["n"] == 12
    assert m["overall"]["accuracy"] == pytest.approx(100 * 3 / 12, abs=1e-3)
    assert m["overall"]["mean_class_accuracy"] == pytest.approx(
        100 / 8, abs=1e-3
    )  # only class 1 is right, all 8 present
    conf = np.array(m["confusion"]["overall"])
    assert conf[:, 1].tolist() == [1, 3, 1, 3, 1, 1, 1, 1] and conf.sum() == 12
    pose = m["subsets"]["pose30"]
    assert (pose["n"], pose["missing"]) == (3, 1)
    assert pose["accuracy"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    occ = m["subsets"]["occlusion"]
    assert (occ["n"], occ["missing"], occ["accuracy"]) == (2, 0, 50.0)
    other = m["compare"]
    assert other["overall"]["accuracy"] == pytest.approx(100 * 3 / 12, abs=1e-3)
    assert other["subsets"]["pose30"]["accuracy"] == pytest.approx(100 / 3, abs=1e-3)
    assert m["compare"]["difference"]["pose30"]["accuracy"] == pytest.approx(100 / 3, abs=1e-3)
    for name in ("overall", "pose30", "occlusion"):
        assert (out / f"confusion_{name}_counts.png").is_file()
        assert (out / f"confusion_{name}_normalized.png").is_file()
    printed = capsys.readouterr().out
    assert "pose30" in printed and "occlusion" in printed


def test_eval_cli_refuses_pickle_checkpoint(ferplus_root: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(1)}, bad)
    rc = cli_main(_eval_argv(bad, ferplus_root, "--out", str(tmp_path / "o")))
    assert rc == 2
    assert "never loaded" in capsys.readouterr().err


def test_train_cli_and_resume_flag(ferplus_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = [
        "train",
        "--dataset",
        "ferplus",
        "--data-root",
        str(ferplus_root),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--amp",
        "off",
        "--eval-batch-size",
        "16",
    ]
    assert cli_main(args) == 0
    assert (out / "config.yaml").is_file() and (out / "best" / "model.safetensors").is_file()
    # --resume on a finished run reads OUT/config.yaml; asking for more epochs continues it
    assert cli_main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3


@pytest.mark.slow
def test_torchrun_ddp_gloo_two_processes(ferplus_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29731",
        "-m",
        "ran_core.cli",
        "train",
        "--dataset",
        "ferplus",
        "--data-root",
        str(ferplus_root),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--amp",
        "off",
        "--device",
        "cpu",
        "--eval-batch-size",
        "8",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2  # one header + one epoch: only rank 0 writes
    header, row = rows[0].split(","), rows[1].split(",")
    val_acc = float(row[header.index("val_acc")])
    # validation was sharded over both ranks and reduced: the accuracy is a multiple of 1/12 (12 valid images)
    assert abs(val_acc * 12 / 100 - round(val_acc * 12 / 100)) < 1e-3
    assert (out / "best" / "model.safetensors").is_file()


def test_synthetic_occlusion_blacks_out_the_named_part() -> None:
    from ran_core.data.pipeline import occlude_batch

    faces = torch.full((3, 1, 48, 48), 200, dtype=torch.uint8)
    eyes = occlude_batch(faces, "eyes")
    assert (eyes[:, :, 10:22] == 0).all() and (eyes[:, :, 30:] == 200).all()
    mouth = occlude_batch(faces, "mouth")
    assert (mouth[:, :, 32:, 8:40] == 0).all() and (mouth[:, :, :28] == 200).all()
    g = torch.Generator().manual_seed(0)
    rnd = occlude_batch(faces, "random", g)
    for i in range(3):
        assert (rnd[i] == 0).sum() == 19 * 19  # a 40% square, fully inside the face
    assert (faces == 200).all()  # the input is untouched
    with pytest.raises(ValueError, match="unknown occlusion"):
        occlude_batch(faces, "hat")


def test_eval_cli_occlusion_option(ferplus_root: Path, tmp_path: Path) -> None:
    save_model(_constant_model(1), tmp_path / "m")
    base = _eval_argv(tmp_path / "m", ferplus_root, "--device", "cpu", "--workers", "0")
    assert cli_main([*base, "--out", str(tmp_path / "o"), "--occlude", "eyes"]) == 0
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert m["occlusion"] == "eyes" and m["overall"]["n"] == 12


def test_evaluate_picks_region_batching_once_and_outputs_do_not_change(ferplus_root: Path, monkeypatch) -> None:
    from ran_core.data import open_dataset
    from ran_core.engine.evaluate import evaluate
    from ran_core.models.ran import RegionAttentionNetwork

    split = open_dataset("ferplus", ferplus_root, "valid")
    model = create_model("ran_compact").eval()
    tuned = []
    real = RegionAttentionNetwork.autotune_region_chunk

    def spy(self, *args, **kwargs):
        tuned.append(kwargs.get("batch_size"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(RegionAttentionNetwork, "autotune_region_chunk", spy)
    first = evaluate(model, split, batch_size=4)
    assert tuned == [4] and model.region_chunk in (None, 3, 1)
    for chunk in (None, 3, 1):  # a chosen chunk is kept (not re-timed), and every choice gives the same outputs
        model.region_chunk = chunk
        again = evaluate(model, split, batch_size=4)
        np.testing.assert_allclose(again.probs, first.probs, atol=1e-5)
        np.testing.assert_allclose(again.alpha, first.alpha, atol=1e-5)
    assert len(tuned) == 2  # timed again only for region_chunk=None
