"""The viewer's layers: ``widgets -> workers -> services -> model``, never back, and no Qt below the workers.

napari's rule: the model must run where Qt is not installed. This is checked for real, by importing every module of
``ran_viewer.model`` and ``ran_viewer.services`` in a fresh interpreter where Qt and pyqtgraph cannot be imported, so
a new module is covered without anyone keeping a list.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "ran_viewer"
LAYERS = ("model", "services", "workers", "widgets")  # each may import the ones before it, never the ones after
QT = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "qtpy", "shiboken6")

_BLOCK_QT = f"""
import importlib.abc, sys
class _NoQt(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {QT!r}:
            raise ImportError(f'{{name}} is not importable in this test')
sys.meta_path.insert(0, _NoQt())
"""


def _modules(layer: str) -> list[str]:
    return sorted(f"ran_viewer.{layer}.{p.stem}" for p in (PKG / layer).glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("layer", ["model", "services"])
def test_layer_imports_without_qt(layer: str) -> None:
    modules = _modules(layer)
    assert len(modules) >= 3
    code = _BLOCK_QT + "".join(f"import {m}\n" for m in modules)
    code += f"bad = [m for m in sys.modules if m.split('.')[0] in {QT!r}]\nassert not bad, bad\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_the_qt_blocker_really_blocks() -> None:
    """The check above must be able to fail: a widget module cannot be imported under it."""
    code = _BLOCK_QT + "import ran_viewer.widgets.common\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PKG.parent, timeout=120)
    assert out.returncode != 0 and "not importable in this test" in out.stderr


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_only_point_down(layer: str) -> None:
    above = LAYERS[LAYERS.index(layer) + 1 :]
    for path in sorted((PKG / layer).glob("*.py")):
        bad = {m for m in _imports(path) if m.startswith(tuple(f"ran_viewer.{a}" for a in above) + ("ran_viewer.app",))}
        assert not bad, f"{layer}/{path.name} imports {sorted(bad)} from a layer above it"


def test_the_viewer_has_no_modules_outside_the_layers() -> None:
    top = sorted(p.name for p in PKG.glob("*.py"))
    assert top == ["__init__.py", "_env.py", "app.py"]
