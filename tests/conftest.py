"""Shared pytest setup: one CPU thread (the machine is shared) and fixed seeds, so every test is reproducible."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from ferplus_fixtures import make_ferplus

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def ferplus_root(tmp_path: Path) -> Path:
    root = tmp_path / "ferplus"
    make_ferplus(root, "train", [i % 8 for i in range(24)], 0)
    make_ferplus(root, "valid", [0, 1, 1, 2, 3, 3, 3, 4, 5, 6, 7, 1], 100)
    return root
