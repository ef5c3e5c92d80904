"""Where ran_core keeps what it computes once: landmarks of datasets, ONNX exports of saved models."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RAN_CORE_CACHE"


def cache_root() -> Path:
    """``$RAN_CORE_CACHE``, else ``$XDG_CACHE_HOME/ran_core``, else ``~/.cache/ran_core``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ran_core"
