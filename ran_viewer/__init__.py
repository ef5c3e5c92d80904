"""ran_viewer: the desktop attention visualizer for Region Attention Networks (``ran-viewer``).

Layering (napari/glue style): :mod:`ran_viewer.state`, :mod:`ran_viewer.occlusion`, :mod:`ran_viewer.camera` and
:mod:`ran_viewer.analysis` hold data and logic with no Qt import; :mod:`ran_viewer.workers` runs the heavy work on
``QThread`` s; the ``qt_*`` modules hold widgets that take the state in ``__init__`` and subscribe to its events.
"""

from __future__ import annotations

import os

# The non-headless opencv-python wheel points QT_QPA_PLATFORM_PLUGIN_PATH and QT_QPA_FONTDIR at the Qt5 plugins and
# fonts bundled inside cv2 as soon as ``cv2`` is imported. PySide6 (Qt6) then loads those Qt5 platform plugins and
# aborts ("Could not load the Qt platform plugin xcb"). Importing cv2 here, before any Qt import, and dropping the
# variables that point into cv2's folder keeps both libraries usable in one process, whatever the import order.
_CV2_QT_VARS = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")


def _drop_cv2_qt_env() -> None:
    before = {key: os.environ.get(key) for key in _CV2_QT_VARS}
    try:
        import cv2
    except ImportError:  # no OpenCV: nothing to undo (the camera then reports itself unavailable)
        return
    cv2_dir = os.path.realpath(os.path.dirname(cv2.__file__))
    for key in _CV2_QT_VARS:
        value = os.environ.get(key)
        if value and os.path.realpath(value).startswith(cv2_dir):
            previous = before[key]
            if previous and not os.path.realpath(previous).startswith(cv2_dir):
                os.environ[key] = previous
            else:
                os.environ.pop(key, None)


_drop_cv2_qt_env()

__all__: list[str] = []
