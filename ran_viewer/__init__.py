"""ran_viewer: the desktop attention visualizer for Region Attention Networks (``ran-viewer``).

Layers (napari/glue style), each importing only the ones before it: :mod:`ran_viewer.model` (state, events,
occluders, the controller; no Qt), :mod:`ran_viewer.services` (the only callers of ``ran_core``; no Qt),
:mod:`ran_viewer.workers` (``QThread`` s that run the services) and :mod:`ran_viewer.widgets` (one widget a file; they
take the state in ``__init__`` and subscribe to its events). ``tests/viewer/test_layers.py`` checks the rule.
"""

from __future__ import annotations

# Before any Qt import: OpenCV's Qt5 plugin paths would break PySide6, and PySide6 6.12 leaks references to None
# on Python 3.11 (details in ran_viewer/_env.py).
from ran_viewer._env import prepare_qt_environment

prepare_qt_environment()

__all__: list[str] = []
