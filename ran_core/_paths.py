"""Where the bundled files live: ``ran_core/bundled/`` in an installed wheel, ``resources/`` in a source tree.

The repository keeps its models, sample photos and screenshots in ``resources/`` at the top; the wheel installs
them as ``ran_core/bundled`` (``package-dir`` in pyproject.toml), inside our own namespace, so installing ran-fer
never adds a top-level package called ``resources`` that could shadow another project's.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def bundled_dir() -> Path:
    """The folder holding ``models/`` and ``samples/``."""
    try:
        return Path(str(resources.files("ran_core.bundled")))
    except ModuleNotFoundError:  # a source tree or an editable install: the repository's resources/
        return Path(__file__).resolve().parents[1] / "resources"
