"""The wheel: the library installs without Qt, the bundled files live inside our namespace, every package ships."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)]
    subprocess.run(cmd, check=True, capture_output=True, cwd=build, timeout=600)
    (whl,) = out.glob("ran_fer-*.whl")
    return whl


def test_wheel_layout_and_requirements(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = z.read(next(n for n in names if n.endswith("dist-info/METADATA"))).decode()
    assert {n.split("/")[0] for n in names} == {"ran_core", "ran_viewer", wheel.name.split("-py3")[0] + ".dist-info"}
    assert "ran_core/bundled/models/ran-ferplus/model.safetensors" in names
    assert any(n.startswith("ran_core/bundled/samples/") and n.endswith(".jpg") for n in names)
    for init in ROOT.glob("ran_*/**/__init__.py"):  # every package of the tree is in the wheel
        assert str(init.relative_to(ROOT)) in names, init
    required = [line for line in meta.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not any(q in line for line in required for q in ("PySide6", "pyqtgraph", "face-alignment"))
    assert 'extra == "viewer"' in meta and 'extra == "fan"' in meta


def test_installed_wheel_finds_its_models_and_imports_without_qt(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    code = (
        "import sys; sys.modules['PySide6'] = None; sys.modules['pyqtgraph'] = None\n"  # Qt made unimportable
        "import ran_core, ran_core.cli, ran_core.predictor\n"
        "from ran_core.saved_model import bundled_models_dir, list_bundled_models, load_model\n"
        "assert 'site' in str(bundled_models_dir()), bundled_models_dir()\n"
        "print(list_bundled_models(), load_model('ran-ferplus').config.arch)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(target)}, cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "ran-ferplus" in out.stdout and "baseline-ferplus" in out.stdout and out.stdout.strip().endswith("ran")


def test_viewer_without_qt_says_what_to_install(monkeypatch, capsys) -> None:
    import importlib.util

    from ran_viewer import app

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "PySide6" else real(name, *a))
    assert app.main(["--screenshot", "x.png"]) == 1
    assert "pip install 'ran-fer[viewer]'" in capsys.readouterr().err
