"""What importing ran_viewer does to the process environment."""

from __future__ import annotations

from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "ran_viewer"


def test_importing_ran_viewer_drops_opencvs_qt_plugin_paths() -> None:
    """opencv-python points Qt at its bundled Qt5 plugins on import, which aborts PySide6 under X11."""
    import subprocess
    import sys

    keys = "('QT_QPA_PLATFORM_PLUGIN_PATH', 'QT_QPA_FONTDIR')"
    code = f"import os, ran_viewer, cv2; print(*(os.environ.get(k) for k in {keys}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["None", "None"]


def test_singletons_are_immortal_where_pyside_leaks_them() -> None:
    import sys

    from ran_viewer._env import _IMMORTAL, _pyside_needs_immortal_singletons

    if not _pyside_needs_immortal_singletons():
        pytest.skip("this Python/PySide6 pair does not leak references to None")
    assert sys.getrefcount(None) > _IMMORTAL // 2 and sys.getrefcount(True) > _IMMORTAL // 2
