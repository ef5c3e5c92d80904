"""Which torch device to run on: the one rule every command uses (train, eval, calibrate, bench)."""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when PyTorch sees a GPU, else the CPU; ``cpu``, ``cuda``, ``cuda:N`` as given.

    Raises:
        ValueError: CUDA was asked for but PyTorch sees no GPU, or the name is not a device.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{name!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name} was asked for, but PyTorch sees no CUDA GPU here")
    return device
