"""Training survives what happens to long runs: kill -9 at any moment (during checkpoint writes too), a full disk."""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ferplus_fixtures import make_ferplus
from ferplus_fixtures import train_config as _cfg

import ran_core.engine.trainer as trainer_mod
from ran_core.engine.trainer import CheckpointWriteError, Trainer


def test_failed_checkpoint_write_keeps_the_last_good_one(ferplus_root, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    Trainer(_cfg(ferplus_root, out, epochs=1)).run()
    ckpt = out / "checkpoints" / "last.pt"
    good = ckpt.read_bytes()

    def disk_full(obj, fh):
        fh.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(trainer_mod.torch, "save", disk_full)
    with pytest.raises(CheckpointWriteError, match="No space left on device.*last good one is kept"):
        Trainer(_cfg(ferplus_root, out, epochs=2), resume=True).run()
    monkeypatch.undo()
    assert ckpt.read_bytes() == good and not list(ckpt.parent.glob(".tmp-*"))
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 1
    summary = Trainer(_cfg(ferplus_root, out, epochs=2), resume=True).run()  # space freed: it continues
    assert summary["epochs_done"] == 2


def _epochs_done(metrics: Path) -> int:
    """Epochs logged so far in a run's metrics.csv (0 before the first)."""
    try:
        return max(0, len(metrics.read_text().splitlines()) - 1)
    except OSError:
        return 0


def _train_cmd(root: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "ran_core.cli", "train", "--dataset", "ferplus", "--data-root", str(root),
        "--out", str(out), "--epochs", "25", "--batch-size", "8", "--amp", "off", "--cache", "memory",
        "--eval-batch-size", "16", "--recipe", "modern", "--drop-rate", "0.1", "--seed", "3",
    ]  # fmt: skip


@pytest.mark.slow
def test_kill_9_five_times_then_resume_equals_an_uninterrupted_run(tmp_path) -> None:
    root = tmp_path / "ferplus"
    make_ferplus(root, "train", [i % 8 for i in range(48)], 0)
    make_ferplus(root, "valid", [i % 8 for i in range(16)], 1000)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    full = tmp_path / "full"
    subprocess.run(_train_cmd(root, full), env=env, check=True, capture_output=True)
    cut = tmp_path / "cut"
    metrics, ckpt_dir = cut / "metrics.csv", cut / "checkpoints"
    rng = random.Random(0)
    kills = 0
    for attempt in range(5):
        cmd = _train_cmd(root, cut) + (["--resume"] if attempt else [])
        done = _epochs_done(metrics)
        target = done + rng.randint(1, 3)  # each attempt resumes and goes 1-3 epochs further before it dies
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Killed on an event of the run, never after a fixed time: while a checkpoint is being written (its
        # temporary file exists) on even attempts, as soon as the target epoch is logged on odd ones.
        while True:
            try:
                proc.wait(timeout=0.005)  # the run ended by itself (it must not: the assert below says so)
                break
            except subprocess.TimeoutExpired:
                pass
            writing = attempt % 2 == 0 and any(ckpt_dir.glob(".tmp-*.pt"))
            if writing or _epochs_done(metrics) >= target:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                proc.wait()
                break
    subprocess.run(_train_cmd(root, cut) + ["--resume"], env=env, check=True, capture_output=True)
    assert kills == 5  # every attempt was killed before it could finish
    want = (full / "metrics.csv").read_text().splitlines()
    got = (cut / "metrics.csv").read_text().splitlines()
    strip = [lambda rows: [",".join(c for i, c in enumerate(r.split(",")) if i not in (4, 5)) for r in rows]][0]
    assert strip(got) == strip(want)  # every epoch's losses and accuracies (not its speed) equal
    assert (cut / "best" / "model.safetensors").read_bytes() == (full / "best" / "model.safetensors").read_bytes()


def test_an_image_that_disappears_mid_epoch_is_skipped(ferplus_root, tmp_path, caplog) -> None:
    class Vanishing(Trainer):
        def _train_epoch(self, epoch: int) -> None:
            if epoch == 1:
                (ferplus_root / "FER2013Train" / "fer0000005.png").unlink()  # gone while the run goes on
            super()._train_epoch(epoch)

    summary = Vanishing(_cfg(ferplus_root, tmp_path / "run", epochs=2, cache="none", workers=0)).run()
    assert summary["epochs_done"] == 2
    assert "fer0000005.png" in caplog.text and "skipping unreadable" in caplog.text


def test_an_empty_split_is_a_clear_error_not_a_crash(tmp_path, capsys) -> None:
    from ran_core.cli import main

    root = tmp_path / "ferplus"
    make_ferplus(root, "train", [0, 1, 2, 3], 0)
    (root / "FER2013Valid").mkdir()
    (root / "FER2013Valid" / "label.csv").write_text("")
    argv = ["train", "--dataset", "ferplus", "--data-root", str(root), "--out", str(tmp_path / "r"), "--epochs", "1"]
    assert main(argv) == 2
    assert "not enough data" in capsys.readouterr().err
