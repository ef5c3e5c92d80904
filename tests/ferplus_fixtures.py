"""Tiny FERPlus-layout datasets generated on the fly (the real images may not be redistributed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ran_core.engine.trainer import TrainConfig

VOTES = {  # one clear-majority vote row per class (10 columns: 8 emotions, unknown, NF)
    c: [10 if i == c else 0 for i in range(10)] for c in range(8)
}


def make_ferplus(root: Path, split: str, labels: list[int], start: int, corrupt: int | None = None) -> list[str]:
    folder = root / {"train": "FER2013Train", "valid": "FER2013Valid"}[split]
    folder.mkdir(parents=True)
    rng = np.random.default_rng(start)
    rows, names = [], []
    for i, c in enumerate(labels):
        name = f"fer{start + i:07d}.png"
        img = rng.integers(0, 60, (48, 48), dtype=np.uint8)
        img[4 + 5 * c : 9 + 5 * c, 8:40] = 230  # a class-dependent bright bar: learnable
        Image.fromarray(img).save(folder / name)
        rows.append(f'{name},"(0, 0, 48, 48)",' + ",".join(map(str, VOTES[c])))
        names.append(name)
    if corrupt is not None:
        (folder / names[corrupt]).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "label.csv").write_text("\n".join(rows) + "\n")
    return names


def train_config(root: Path, out: Path, **kw) -> TrainConfig:
    """A fast TrainConfig for the tiny datasets (full precision, in-memory cache, 2 epochs); ``kw`` overrides."""
    base = dict(
        data_root=str(root),
        out=str(out),
        epochs=2,
        batch_size=8,
        amp="off",
        cache="memory",
        eval_batch_size=16,
        recipe="modern",
        drop_rate=0.1,
    )
    base.update(kw)
    return TrainConfig(**base)
