"""ONNX export and the ONNX Runtime backend: the same numbers as PyTorch, everywhere the model is used."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from ran_core import create_model, save_model  # noqa: E402
from ran_core.cli import main  # noqa: E402
from ran_core.data.pipeline import RegionBatcher  # noqa: E402
from ran_core.export import OnnxModel, config_path_for, export_onnx, onnx_for  # noqa: E402
from ran_core.imageio import read_image, to_gray  # noqa: E402
from ran_core.models import infer  # noqa: E402
from ran_core.predictor import Predictor  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "resources" / "samples"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple]:
    out = {}
    root = tmp_path_factory.mktemp("onnx")
    for name in ("ran_compact", "baseline_compact"):
        torch.manual_seed(0)
        model = create_model(name).eval()
        out[name] = (model, OnnxModel(export_onnx(model, root / f"{name}.onnx")))
    return out


@pytest.mark.parametrize("name", ["ran_compact", "baseline_compact"])
def test_onnxruntime_matches_torch_on_random_and_real_crops(exported, name) -> None:
    model, onnx_model = exported[name]
    k = model.config.regions.num_regions
    faces = []
    for p in sorted(SAMPLES.glob("*.jpg")):  # real pictures, cut square and shrunk like faces
        g = to_gray(read_image(p))
        side = min(g.shape)
        faces.append(cv2.resize(g[:side, :side], (48, 48), interpolation=cv2.INTER_AREA))
    real = RegionBatcher(model.config)(torch.from_numpy(np.stack(faces))[:, None])
    for x in (torch.randn(5, k, 1, 48, 48), torch.randn(1, k, 1, 48, 48), real):
        with torch.inference_mode():
            ref = model(x)
        got = onnx_model(x)
        assert (got.logits - ref.logits).abs().max() <= 1e-4
        if ref.alpha is not None:
            assert (got.alpha - ref.alpha).abs().max() <= 1e-4 and (got.beta - ref.beta).abs().max() <= 1e-4
        else:
            assert got.alpha is None
    # TTA and the logit bias are applied outside the graph, the same way
    with torch.inference_mode():
        torch.testing.assert_close(
            infer(onnx_model, real, "flip").logits, infer(model, real, "flip").logits, atol=1e-4, rtol=0
        )


def test_export_cli_writes_graph_and_config(tmp_path, capsys) -> None:
    torch.manual_seed(0)
    save_model(create_model("ran_compact", tta="flip"), tmp_path / "m")
    out = tmp_path / "x" / "ran.onnx"
    assert main(["export", str(tmp_path / "m"), "--onnx", str(out), "--check"]) == 0
    assert out.is_file() and json.loads(config_path_for(out).read_text())["tta"] == "flip"
    printed = capsys.readouterr().out
    assert "max |onnxruntime - torch|" in printed and "outputs logits, alpha, beta" in printed
    import onnx

    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["crops"] and [o.name for o in graph.output] == ["logits", "alpha", "beta"]
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch dimension
    assert main(["export", str(tmp_path / "nothing"), "--onnx", str(out)]) == 2


def test_predictor_onnx_backend_gives_the_torch_answers(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAN_CORE_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    save_model(create_model("ran_compact"), tmp_path / "m")
    hopper = SAMPLES / "grace_hopper.jpg"
    (a,) = Predictor(tmp_path / "m", detector="mtcnn")(hopper)
    (b,) = Predictor(tmp_path / "m", detector="mtcnn", backend="onnx")(hopper)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
    np.testing.assert_allclose([r.alpha for r in a.regions], [r.alpha for r in b.regions], atol=1e-5)
    cached = onnx_for(tmp_path / "m")
    assert cached.parent == tmp_path / "cache" / "onnx" and cached.is_file()
    (c,) = Predictor(cached, detector="mtcnn")(hopper)  # a .onnx path directly
    np.testing.assert_allclose(a.probabilities, c.probabilities, atol=1e-5)
    out = tmp_path / "r.json"
    rc = main(["predict", str(hopper), "--model", str(tmp_path / "m"), "--backend", "onnx", "--json", str(out)])
    assert rc == 0 and len(json.loads(out.read_text())["inputs"][0]["faces"]) == 1


def test_int8_export_and_eval_of_onnx_models(ferplus_root, tmp_path) -> None:
    torch.manual_seed(0)
    save_model(create_model("ran_compact"), tmp_path / "m")
    out = tmp_path / "ran.onnx"
    assert main(["export", str(tmp_path / "m"), "--onnx", str(out), "--int8"]) == 0
    q = tmp_path / "ran.int8.onnx"
    assert q.is_file() and config_path_for(q).is_file() and q.stat().st_size < out.stat().st_size
    accs = {}
    for name, ref in (("torch", tmp_path / "m"), ("onnx", out), ("int8", q)):
        argv = ["eval", "--checkpoint", str(ref), "--dataset", "ferplus", "--data-root", str(ferplus_root)]
        argv += ["--split", "valid", "--out", str(tmp_path / name), "--workers", "0"]
        assert main(argv) == 0, name
        accs[name] = json.loads((tmp_path / name / "metrics.json").read_text())["overall"]
    assert accs["onnx"] == accs["torch"]  # the same graph: the same answers
    assert accs["int8"]["n"] == accs["torch"]["n"]


def test_cli_logging_shows_ran_core_info_but_not_other_libraries() -> None:
    """The ONNX exporter logs INFO lines of its own; the command line shows ran_core's progress only."""
    import logging

    from ran_core.cli import configure_logging

    root, ours = logging.getLogger(), logging.getLogger("ran_core")
    saved = root.level, ours.level
    try:
        configure_logging(verbose=False)
        assert logging.getLogger("ran_core.engine.trainer").isEnabledFor(logging.INFO)
        assert not logging.getLogger("onnxscript").isEnabledFor(logging.INFO)
        assert logging.getLogger("onnxscript").isEnabledFor(logging.WARNING)
        configure_logging(verbose=True)
        assert logging.getLogger("onnxscript").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("ran_core.engine.trainer").isEnabledFor(logging.DEBUG)
    finally:
        root.setLevel(saved[0])
        ours.setLevel(saved[1])
