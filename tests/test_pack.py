"""FERPlus packed into one .npz and unpacked: the same images byte for byte, the same samples, bad input named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ran_core.data import open_dataset
from ran_core.data.pack import delta_decode, delta_encode, main, pack_ferplus, unpack_ferplus
from tests.ferplus_fixtures import make_ferplus

REPO = Path(__file__).resolve().parents[1]


def test_delta_coding_round_trips_every_value() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 7, 9), dtype=np.uint8)
    images[0] = 255  # wrap-around at both ends
    images[1] = 0
    coded = delta_encode(images)
    assert coded.dtype == np.uint8 and coded.shape == images.shape
    assert not np.array_equal(coded, images)
    np.testing.assert_array_equal(delta_decode(coded), images)
    with pytest.raises(ValueError, match="uint8"):
        delta_encode(images.astype(np.int16))


def test_pack_round_trip_keeps_images_and_samples(ferplus_root: Path, tmp_path: Path) -> None:
    pack = tmp_path / "packs" / "ferplus48.npz"
    report = pack_ferplus(ferplus_root, pack, progress=False)
    assert report.images == {"train": 24, "valid": 12} and pack.is_file()
    with np.load(pack, allow_pickle=False) as z:  # no pickled objects inside
        assert z["train_images"].dtype == np.uint8 and z["train_images"].shape == (24, 48, 48)
    out = tmp_path / "unpacked"
    assert unpack_ferplus(pack, out, progress=False).images == {"train": 24, "valid": 12}
    for split, folder in (("train", "FER2013Train"), ("valid", "FER2013Valid")):
        assert (out / folder / "label.csv").read_bytes() == (ferplus_root / folder / "label.csv").read_bytes()
        for png in sorted((ferplus_root / folder).glob("*.png")):
            np.testing.assert_array_equal(np.asarray(Image.open(out / folder / png.name)), np.asarray(Image.open(png)))
        a = open_dataset("ferplus", ferplus_root, split, label_mode="probability")
        b = open_dataset("ferplus", out, split, label_mode="probability")
        assert [(s.key, s.label) for s in a.samples] == [(s.key, s.label) for s in b.samples]
        assert all(np.array_equal(x.soft, y.soft) for x, y in zip(a.samples, b.samples))


def test_pack_names_what_it_leaves_out(tmp_path: Path) -> None:
    root = tmp_path / "ferplus"
    names = make_ferplus(root, "train", [0, 1, 2, 3], 0, corrupt=1)
    folder = root / "FER2013Train"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(folder / names[2])  # another size
    (folder / names[3]).unlink()
    report = pack_ferplus(root, tmp_path / "p.npz", splits=["train", "valid"], progress=False)
    assert report.images == {"train": 1}  # valid is not there: warned, not fatal
    text = report.summary()
    assert "unreadable image" in text and names[1] in text
    assert "not 48x48" in text and "missing file" in text
    out = tmp_path / "out"
    unpack_ferplus(tmp_path / "p.npz", out, progress=False)
    split = open_dataset("ferplus", out, "train")
    assert [s.key for s in split.samples] == [Path(names[0]).stem]  # the rows stay; the reader skips them as missing
    assert split.skipped.total == 3


def test_pack_errors_are_plain(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(FileNotFoundError, match="no FERPlus split found"):
        pack_ferplus(tmp_path, tmp_path / "p.npz", progress=False)
    with pytest.raises(ValueError, match="not wrong"):
        pack_ferplus(tmp_path, tmp_path / "p.npz", splits=["wrong"], progress=False)
    with pytest.raises(FileNotFoundError, match="no pack"):
        unpack_ferplus(tmp_path / "missing.npz", tmp_path / "out", progress=False)
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not a ran-core FERPlus pack"):
        unpack_ferplus(tmp_path / "other.npz", tmp_path / "out", progress=False)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert main(["unpack", str(tmp_path / "junk.npz"), str(tmp_path / "out"), "--no-progress"]) == 1
    assert "not a ran-core FERPlus pack" in capsys.readouterr().err


def test_pack_command_line(ferplus_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pack = tmp_path / "p.npz"
    assert main(["pack", str(ferplus_root), str(pack), "--splits", "valid", "--no-progress"]) == 0
    assert "valid 12 images" in capsys.readouterr().out
    assert main(["unpack", str(pack), str(tmp_path / "out"), "--no-progress"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["FER2013Valid"]


def _cpu_script_env(pack: Path, out: Path, work: Path, **sizes: str) -> dict[str, str]:
    """The environment that shrinks a prepared GPU script to a smoke run on one CPU thread."""
    return dict(
        os.environ,
        PYTHON=sys.executable,
        PACK=str(pack),
        OUT=str(out),
        WORK=str(work),
        DEVICE="cpu",
        AMP="off",
        OMP_NUM_THREADS="1",
        **sizes,
    )


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_gpu_script_runs_end_to_end_on_cpu(ferplus_root: Path, tmp_path: Path) -> None:
    """The prepared GPU script, shrunk to a smoke run on the CPU: unpack, bench, train, eval, all outputs in OUT."""
    pack = tmp_path / "ferplus48.npz"
    pack_ferplus(ferplus_root, pack, progress=False)
    out = tmp_path / "out"
    env = _cpu_script_env(pack, out, tmp_path / "work", SIZE="32", EPOCHS="1", BATCH="8", BENCH_ARGS="--quick")
    script = REPO / "scripts" / "gpu_ran_resnet18.sh"
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "bench.json",
        "bench.txt",
        "confusion_overall_counts.png",
        "confusion_overall_normalized.png",
        "eval.txt",
        "metrics.csv",
        "train.log",
    ]
    bench = json.loads((out / "bench.json").read_text())
    assert bench["training"]["ran"]["input_size"] == 32 and bench["training"]["ran"]["batched_vs_loop_speedup"]
    assert "as fast as the per-region loop" in (out / "bench.txt").read_text()
    assert "best valid accuracy" in (out / "train.log").read_text()
    assert "overall" in (out / "eval.txt").read_text() and "/s]" not in (out / "eval.txt").read_text()
    # without the pack: a plain message that says how to make it
    proc = subprocess.run(["bash", str(script)], env={**env, "PACK": str(tmp_path / "none.npz")}, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2 and "python -m ran_core.data.pack pack" in proc.stderr


@pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None, reason="needs bash and timeout")
def test_gpu_pair_script_runs_end_to_end_on_cpu(ferplus_root: Path, tmp_path: Path) -> None:
    """The prepared GPU script for the bundled pair's recipe, shrunk to a CPU smoke run: the probe picks epochs that
    fit the budgets, every stage trains, and the best RAN and baseline come back as loadable saved models."""
    pack = tmp_path / "ferplus48.npz"
    pack_ferplus(ferplus_root, pack, progress=False)
    out = tmp_path / "out"
    env = _cpu_script_env(pack, out, tmp_path / "work", BASE_EPOCHS="2", RAN_EPOCHS="1", PROBE_SAMPLES="16")
    script = REPO / "scripts" / "gpu_ferplus_pair.sh"
    proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "baseline/config.json",
        "baseline/model.safetensors",
        "ran/config.json",
        "ran/model.safetensors",
        "stage.log",
        "summary.txt",
    ]
    assert len(files) <= 8  # what the device tool brings back
    summary = (out / "summary.txt").read_text()
    for run in ("base1", "base2", "ran-lr1e-3", "ran-lr3e-4"):
        assert run in summary and f"{run:<12} (no finished" not in summary
    assert "stage 1: baseline, compact_wide, 2 epoch(s)" in (out / "stage.log").read_text()  # small data: the cap
    from ran_core.saved_model import load_model

    ran, baseline = load_model(out / "ran"), load_model(out / "baseline")
    assert ran.config.arch == "ran" and ran.config.regions.num_regions == 6 and ran.config.tta == "flip"
    assert baseline.config.arch == "baseline"
    # a probe that cannot train (here an unknown backbone): a plain error naming it, no traceback
    bad = {**env, "OUT": str(tmp_path / "bad"), "WORK": str(tmp_path / "work-bad"), "TRAIN_ARGS": "--backbone nope"}
    proc = subprocess.run(["bash", str(script)], env=bad, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3 and "finished no epoch" in proc.stdout and "Traceback" not in proc.stdout + proc.stderr
