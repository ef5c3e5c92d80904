"""Saved models: safetensors weights + a JSON config that rebuilds the model. Loading never unpickles anything.

Layout of a saved model directory::

    my-model/
        config.json          # ModelConfig.to_dict(): architecture, preprocessing, regions, classes, provenance
        model.safetensors    # the weights (the config is also embedded in its metadata)

:func:`load_model` accepts such a directory, its ``config.json`` or ``model.safetensors``, a training run directory
(it loads the run's best model), or the name of a bundled model (``ran-ferplus``, ``baseline-ferplus``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch import nn

from ran_core.config import ModelConfig

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
_META_KEY = "ran_core_config"


class ModelLoadError(ValueError):
    """Raised when a path is not a loadable ran_core model; the message says why and what is accepted."""


def bundled_models_dir() -> Path:
    """Folder of the bundled models (``resources/models`` in a source tree, ``ran_core/bundled/models`` installed)."""
    from ran_core._paths import bundled_dir

    return bundled_dir() / "models"


def list_bundled_models() -> list[str]:
    root = bundled_models_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file() and (p / WEIGHTS_NAME).is_file())


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; saved models are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_model(model: nn.Module, directory: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a saved model directory (atomically per file) and return the directory.

    Args:
        model: a model built by :func:`ran_core.create_model` (it carries ``model.config``).
        directory: target folder, created if needed.
        provenance: merged into ``config.provenance`` (dataset, epochs, metrics ...).
    """
    config: ModelConfig = model.config
    if provenance:
        config.provenance = {**config.provenance, **provenance}
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg_json = json.dumps(config.to_dict(), indent=2)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(directory / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={_META_KEY: cfg_json}))
    _atomic_write(directory / CONFIG_NAME, lambda p: Path(p).write_text(cfg_json + "\n"))
    return directory


def resolve_model_path(path_or_name: str | Path) -> tuple[Path, Path | None]:
    """Find ``(weights file, config file or None)`` for anything :func:`load_model` accepts."""
    p = Path(path_or_name)
    if not p.exists():
        bundled = bundled_models_dir() / str(path_or_name)
        if bundled.is_dir():
            p = bundled
        else:
            names = ", ".join(list_bundled_models()) or "none installed"
            raise ModelLoadError(f"model not found: {path_or_name!s} (not a path, nor a bundled model: {names})")
    if p.is_dir():
        for cand in (p, p / "best", p / "model"):
            if (cand / WEIGHTS_NAME).is_file():
                cfg = cand / CONFIG_NAME
                return cand / WEIGHTS_NAME, cfg if cfg.is_file() else None
        raise ModelLoadError(f"{p} is a folder without {WEIGHTS_NAME} (nor best/{WEIGHTS_NAME} of a training run)")
    if p.name == CONFIG_NAME:
        return p.parent / WEIGHTS_NAME, p
    if p.suffix == ".safetensors":
        cfg = p.parent / CONFIG_NAME
        return p, cfg if cfg.is_file() else None
    raise ModelLoadError(
        f"{p} is not a ran_core saved model. Saved models are {WEIGHTS_NAME} + {CONFIG_NAME}; pickled checkpoints "
        "(.pt, .pth, .pkl, .bin) are never loaded because unpickling can run arbitrary code. To use weights from "
        "elsewhere as a starting point, pass them to training with --pretrained."
    )


def read_config(path_or_name: str | Path) -> ModelConfig:
    """The :class:`ModelConfig` of a saved model without loading its weights."""
    weights, cfg = resolve_model_path(path_or_name)
    return _read_config(weights, cfg)


def _read_config(weights: Path, cfg: Path | None) -> ModelConfig:
    try:
        if cfg is not None:
            data = json.loads(cfg.read_text())
        else:
            with safe_open(str(weights), framework="pt") as f:
                meta = f.metadata() or {}
            if _META_KEY not in meta:
                raise ModelLoadError(f"{weights} has no {CONFIG_NAME} beside it and no embedded ran_core config")
            data = json.loads(meta[_META_KEY])
        return ModelConfig.from_dict(data)
    except (SafetensorError, OSError) as exc:
        raise ModelLoadError(f"{weights} is not a readable safetensors file ({exc})") from None
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        if isinstance(exc, ModelLoadError):
            raise
        raise ModelLoadError(f"{cfg or weights}: invalid ran_core model config ({exc})") from None


def load_model(path_or_name: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a saved model, ready for inference (eval mode) on ``device``.

    Raises:
        ModelLoadError: the path is missing, pickled, corrupt, or its weights do not match its config.
    """
    from ran_core.models import create_model

    weights, cfg = resolve_model_path(path_or_name)
    if not weights.is_file():
        raise ModelLoadError(f"weights file missing: {weights}")
    config = _read_config(weights, cfg)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ModelLoadError(f"{weights} is not a readable safetensors file ({exc})") from None
    try:
        model = create_model(config)  # an unknown backbone is only found here
    except ValueError as exc:
        raise ModelLoadError(f"{cfg or weights}: invalid ran_core model config ({exc})") from None
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same keys, other shapes (e.g. another class count); strict=False still raises
        raise ModelLoadError(f"{weights} does not match its config ({config.name}): {exc}") from None
    if result.missing_keys or result.unexpected_keys:
        raise ModelLoadError(
            f"{weights} does not match its config ({config.name}): missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )
    model.source_path = weights.parent
    return model.to(device).eval()
