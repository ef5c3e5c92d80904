"""Process-wide fixes that must run before the first Qt import; :mod:`ran_viewer` and :mod:`ran_viewer.app` run them.

Idempotent. Kept apart from ``ran_viewer/__init__.py`` so the entry point can call it even where the package was
installed as a namespace package (an editable install made before ``__init__.py`` existed skips it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import NamedTuple

# The non-headless opencv-python wheel points QT_QPA_PLATFORM_PLUGIN_PATH and QT_QPA_FONTDIR at the Qt5 plugins and
# fonts bundled inside cv2 as soon as ``cv2`` is imported. PySide6 (Qt6) then searches cv2's Qt5 platform plugins
# first (depending on the versions this aborts start-up with "Could not load the Qt platform plugin xcb") and takes its
# fonts from cv2's small font folder only. Importing cv2 here, before any QApplication exists, and dropping the
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


# PySide6 6.12 on Python 3.11 drops one reference to None on every call of a void Qt method (and to True on some
# pyqtgraph paths): its wheels assume the immortal singletons of Python >= 3.12 (PEP 683). A viewer makes thousands of
# such calls a second, so None's reference count reaches zero within minutes and Python aborts with "deallocating
# None". Until a fixed PySide6 is installed (6.11.x does not have the bug), give these singletons the huge reference
# count Python 3.12 gives them; they are never freed anyway, so nothing else changes.
_IMMORTAL = 1 << 40


def _pyside_needs_immortal_singletons() -> bool:
    if sys.version_info >= (3, 12):
        return False
    try:
        from importlib.metadata import PackageNotFoundError, version

        major, minor = (int(p) for p in version("PySide6").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (6, 12)


def _immortalize_singletons() -> None:
    import ctypes

    for obj in (None, True, False):
        count = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is the first field of every object
        before = sys.getrefcount(obj)
        if before >= _IMMORTAL:
            continue
        count.value += _IMMORTAL
        if sys.getrefcount(obj) != before + _IMMORTAL:  # an unusual object layout: undo and leave it alone
            count.value -= _IMMORTAL


def prepare_qt_environment() -> None:
    """Undo OpenCV's Qt5 plugin paths and guard against PySide6 6.12's reference leak (see above)."""
    _drop_cv2_qt_env()
    if _pyside_needs_immortal_singletons():
        _immortalize_singletons()


# Qt aborts the whole process (qFatal, no Python exception) when its platform plugin cannot start, with a message that
# does not say what to install. These are the cases users hit on Linux; each gets an answer before Qt is touched.
_XCB_LIBS = {  # library (for ctypes.util.find_library) -> Debian/Ubuntu package
    "xcb-cursor": "libxcb-cursor0",
    "xkbcommon-x11": "libxkbcommon-x11-0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-image": "libxcb-image0",
}


class QtPlatformProblem(NamedTuple):
    message: str  # what is wrong and what to do about it
    certain: bool  # Qt cannot start (True), or a library lookup failed that Qt itself may still resolve (False)


def qt_platform_problem(environ: Mapping[str, str] | None = None, find_library=None) -> QtPlatformProblem | None:  # noqa: ANN001
    """Why Qt's window system will not start here, with what to do about it; ``None`` when nothing is known wrong.

    Only checks Linux with the X11 (xcb) platform, Qt's default there outside Wayland sessions.
    """
    if not sys.platform.startswith("linux"):
        return None
    env = os.environ if environ is None else environ
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    if platform not in ("", "xcb") or (not platform and env.get("WAYLAND_DISPLAY")):
        return None
    if not env.get("DISPLAY"):
        return QtPlatformProblem(
            "no screen to open a window on (DISPLAY is not set). Run ran-viewer in a desktop session, under "
            "`xvfb-run ran-viewer ...`, or render to a file with `QT_QPA_PLATFORM=offscreen ran-viewer --screenshot "
            "out.png`.",
            certain=True,
        )
    if find_library is None:
        from ctypes.util import find_library
    missing = [pkg for lib, pkg in _XCB_LIBS.items() if find_library(lib) is None]
    if missing:
        return QtPlatformProblem(
            "Qt's X11 plugin needs system libraries that are not installed: " + ", ".join(missing) + ". On Debian or "
            "Ubuntu: `sudo apt-get install " + " ".join(missing) + "` (other systems: the same libraries from their "
            "package manager).",
            certain=False,
        )
    return None
