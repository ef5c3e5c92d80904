"""Weight averaging of saved models (``ran-core average``)."""

from __future__ import annotations

import pytest
import torch

from ran_core import create_model, load_model, save_model
from ran_core.cli import main as cli_main
from ran_core.engine.average import average_models


def _saved(tmp_path, name: str, seed: int, arch: str = "ran_compact", **cfg):
    torch.manual_seed(seed)
    model = create_model(arch)
    for k, v in cfg.items():
        setattr(model.config, k, v)
    model.train()
    model(torch.randn(4, *((6,) if arch.startswith("ran") else (1,)), 1, 48, 48))  # batch-norm statistics move
    model.eval()
    return save_model(model, tmp_path / name, provenance={"seed": seed})


def test_average_is_the_weighted_mean_of_every_float_tensor(tmp_path) -> None:
    a = _saved(tmp_path, "a", 0, tta="flip", logit_bias=[0.1] * 8)
    b = _saved(tmp_path, "b", 1)
    sa, sb = load_model(a).state_dict(), load_model(b).state_dict()
    avg = average_models([a, b], [3, 1])
    out = avg.state_dict()
    floats = [k for k, v in sa.items() if v.is_floating_point()]
    assert any("running_mean" in k for k in floats)
    for k in floats:
        torch.testing.assert_close(out[k], 0.75 * sa[k] + 0.25 * sb[k], rtol=1e-6, atol=1e-7, msg=k)
    assert avg.config.tta == "flip"  # the first model's inference setting
    assert avg.config.logit_bias is None  # fitted to one model: refit with calibrate
    sources = avg.config.provenance["averaged_from"]
    assert [s["weight"] for s in sources] == [0.75, 0.25] and sources[1]["provenance"]["seed"] == 1


def test_average_refuses_what_cannot_be_averaged(tmp_path) -> None:
    a = _saved(tmp_path, "a", 0)
    with pytest.raises(ValueError, match="at least two"):
        average_models([a])
    with pytest.raises(ValueError, match="one non-negative weight per model"):
        average_models([a, a], [1.0])
    base = _saved(tmp_path, "base", 0, arch="baseline_compact")
    with pytest.raises(ValueError, match="cannot be averaged.*arch"):
        average_models([a, base])


def test_average_cli_saves_a_loadable_model_and_explains_errors(tmp_path, capsys) -> None:
    a, b = _saved(tmp_path, "a", 0), _saved(tmp_path, "b", 1)
    assert cli_main(["average", str(a), str(b), "--out", str(tmp_path / "soup")]) == 0
    soup = load_model(tmp_path / "soup")
    x = torch.randn(2, 6, 1, 48, 48)
    assert torch.isfinite(soup(x).logits).all()
    assert len(soup.config.provenance["averaged_from"]) == 2
    assert cli_main(["average", str(a), str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ran-core average:") and "missing" in err
    assert not (tmp_path / "x").exists()
