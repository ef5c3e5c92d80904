"""ran_viewer: the desktop attention visualizer for Region Attention Networks (``ran-viewer``).

Layering (napari/glue style): :mod:`ran_viewer.state`, :mod:`ran_viewer.occlusion`, :mod:`ran_viewer.camera` and
:mod:`ran_viewer.analysis` hold data and logic with no Qt import; :mod:`ran_viewer.workers` runs the heavy work on
``QThread`` s; the ``qt_*`` modules hold widgets that take the state in ``__init__`` and subscribe to its events.
"""

from __future__ import annotations

# Before any Qt import: OpenCV's Qt5 plugin paths would break PySide6, and PySide6 6.12 leaks references to None
# on Python 3.11 (details in ran_viewer/_env.py).
from ran_viewer._env import prepare_qt_environment

prepare_qt_environment()

__all__: list[str] = []
