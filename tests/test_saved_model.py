"""Saved models: exact round trips for every registered model, every accepted path form, and clear refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ran_core import (
    ModelConfig,
    ModelLoadError,
    RegionConfig,
    create_model,
    list_bundled_models,
    list_models,
    load_model,
    read_config,
    save_model,
)
from ran_core.saved_model import CONFIG_NAME, WEIGHTS_NAME


def _inputs(model: nn.Module, batch: int = 2, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    k, c = model.config.regions.num_regions, model.config.in_chans
    return torch.randn(batch, k, c, size, size, generator=g)


def _assert_same_outputs(a: nn.Module, b: nn.Module, size: int = 32) -> None:
    x = _inputs(a, size=size)
    with torch.inference_mode():
        oa, ob = a.eval()(x), b.eval()(x)
    assert torch.equal(oa.logits, ob.logits)
    for key in ("alpha", "beta"):
        va, vb = getattr(oa, key), getattr(ob, key)
        assert (va is None and vb is None) or torch.equal(va, vb)


def _perturb_batchnorm(model: nn.Module) -> None:
    """Give BN buffers non-default values so a round trip that forgot buffers would show."""
    g = torch.Generator().manual_seed(2)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


@pytest.mark.parametrize("name", list_models())
def test_round_trip_every_model(name: str, tmp_path: Path) -> None:
    model = create_model(name, input_size=32)
    _perturb_batchnorm(model)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert not loaded.training
    assert loaded.config.to_dict() == model.config.to_dict()
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if name.endswith(("_compact", "_resnet18")):  # same config + same tensors; running the big ones adds only time
        _assert_same_outputs(model, loaded)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]  # no temp files left


def _custom_model() -> nn.Module:
    regions = RegionConfig(scheme="random", num_random=4, random_scale=(0.3, 0.7), seed=5)
    return create_model(
        "ran_compact",
        class_names=["calm", "joy", "shock"],
        input_size=40,
        mean=(0.4,),
        std=(0.2,),
        regions=regions,
        attention_norm="none",
        face_margin=0.25,
        provenance={"dataset": "toy"},
    )


def test_config_round_trips(tmp_path: Path) -> None:
    model = _custom_model()
    save_model(model, tmp_path / "m", provenance={"epochs": 3, "metrics": {"acc": 0.5}})
    cfg = read_config(tmp_path / "m")
    assert cfg.class_names == ["calm", "joy", "shock"] and cfg.num_classes == 3
    assert cfg.regions == model.config.regions and cfg.regions.scheme == "random" and cfg.regions.seed == 5
    assert (cfg.input_size, cfg.color_mode, cfg.mean, cfg.std) == (40, "gray", (0.4,), (0.2,))
    assert (cfg.attention_norm, cfg.face_margin) == ("none", 0.25)
    assert cfg.provenance == {"dataset": "toy", "epochs": 3, "metrics": {"acc": 0.5}}
    data = json.loads((tmp_path / "m" / CONFIG_NAME).read_text())
    assert data["format_version"] == 1 and data["regions"]["num_random"] == 4
    loaded = load_model(tmp_path / "m")
    assert loaded.config == cfg and loaded.num_regions == 4
    _assert_same_outputs(model, loaded, size=40)


def test_every_path_form_loads_the_same_model(tmp_path: Path) -> None:
    model = _custom_model()
    save_model(model, tmp_path / "m")
    # the weights file alone: its metadata carries the config
    (tmp_path / "alone").mkdir()
    shutil.copy(tmp_path / "m" / WEIGHTS_NAME, tmp_path / "alone" / "renamed.safetensors")
    # a training run folder: the model is in best/
    shutil.copytree(tmp_path / "m", tmp_path / "run" / "best")
    (tmp_path / "run" / "metrics.json").write_text("{}")
    forms = [
        tmp_path / "m",
        str(tmp_path / "m"),
        tmp_path / "m" / CONFIG_NAME,
        tmp_path / "m" / WEIGHTS_NAME,
        tmp_path / "alone" / "renamed.safetensors",
        tmp_path / "run",
    ]
    for form in forms:
        loaded = load_model(form)
        assert loaded.config.to_dict() == model.config.to_dict(), form
        _assert_same_outputs(model, loaded, size=40)
    assert load_model(tmp_path / "run").source_path == tmp_path / "run" / "best"


def test_load_onto_device_and_eval_mode(tmp_path: Path) -> None:
    save_model(create_model("baseline_compact").train(), tmp_path / "b")
    loaded = load_model(tmp_path / "b", device="cpu")
    assert not loaded.training and loaded.config.arch == "baseline"
    assert next(loaded.parameters()).device.type == "cpu"


def test_pickles_are_refused(tmp_path: Path) -> None:
    model = create_model("ran_compact")
    torch.save(model.state_dict(), tmp_path / "model.pt")
    with pytest.raises(ModelLoadError, match="pickled checkpoints .* are never loaded"):
        load_model(tmp_path / "model.pt")
    # a pickle dressed up as safetensors, alone and beside a valid config
    (tmp_path / "fake").mkdir()
    torch.save(model.state_dict(), tmp_path / "fake" / WEIGHTS_NAME)
    with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
        load_model(tmp_path / "fake" / WEIGHTS_NAME)
    (tmp_path / "fake" / CONFIG_NAME).write_text(json.dumps(model.config.to_dict()))
    for form in (tmp_path / "fake", tmp_path / "fake" / CONFIG_NAME):
        with pytest.raises(ModelLoadError, match="not a readable safetensors file"):
            load_model(form)


def _saved(tmp_path: Path, edit=None) -> Path:
    d = tmp_path / "m"
    save_model(create_model("ran_compact"), d)
    if edit is not None:
        data = json.loads((d / CONFIG_NAME).read_text())
        edit(data)
        (d / CONFIG_NAME).write_text(json.dumps(data))
    return d


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(arch="transformer"), "unknown arch 'transformer'"),
        (lambda d: d.update(backbone="resnet9000"), "unknown backbone 'resnet9000'"),
        (lambda d: d.update(format_version=99), "format 99 is newer"),
        (lambda d: d.pop("backbone"), "not a ran_core model config"),
        (lambda d: d.update(color_mode="cmyk"), "color_mode"),
        (lambda d: d["regions"].update(names=["mouth"]), "unknown fixed region"),
    ],
)
def test_bad_configs_are_refused(tmp_path: Path, edit, match: str) -> None:
    d = _saved(tmp_path, edit)
    with pytest.raises(ModelLoadError, match=match) as info:
        load_model(d)
    assert CONFIG_NAME in str(info.value)  # the message names the file


_RGB = {"color_mode": "rgb", "mean": [0, 0, 0], "std": [1, 1, 1]}


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d.update(class_names=["a", "b", "c"]),  # classifier of another shape
        lambda d: d.update(backbone="resnet18", **_RGB),  # another backbone
        lambda d: d.update(arch="baseline"),  # no attention layers, classifier of another shape
        lambda d: d.update(**_RGB),  # a 3-channel stem
    ],
    ids=["classes", "backbone", "arch", "channels"],
)
def test_weights_not_matching_the_config_are_refused(tmp_path: Path, edit) -> None:
    with pytest.raises(ModelLoadError, match=r"model\.safetensors does not match its config"):
        load_model(_saved(tmp_path, edit))


def test_extra_or_missing_weights_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    d = _saved(tmp_path)
    state = load_file(str(d / WEIGHTS_NAME))
    meta = {"ran_core_config": (d / CONFIG_NAME).read_text()}
    save_file({**state, "extra.weight": torch.zeros(1)}, str(d / WEIGHTS_NAME), metadata=meta)
    with pytest.raises(ModelLoadError, match="unexpected .*extra.weight"):
        load_model(d)
    state.pop("alpha_fc.bias")
    save_file(state, str(d / WEIGHTS_NAME), metadata=meta)
    with pytest.raises(ModelLoadError, match="missing .*alpha_fc.bias"):
        load_model(d)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model not found"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match="model not found"):
        load_model("no-such-bundled-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="folder without"):
        load_model(tmp_path / "empty")
    d = _saved(tmp_path)
    (d / CONFIG_NAME).write_text("{not json")
    with pytest.raises(ModelLoadError, match="invalid ran_core model config"):
        load_model(d)
    (d / WEIGHTS_NAME).unlink()
    with pytest.raises(ModelLoadError, match="weights file missing"):
        load_model(d / CONFIG_NAME)
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))  # no config anywhere
    with pytest.raises(ModelLoadError, match="no embedded ran_core config"):
        load_model(tmp_path / "plain.safetensors")


def test_model_config_validation() -> None:
    with pytest.raises(ValueError, match="mean/std"):
        ModelConfig(color_mode="rgb", mean=(0.5,), std=(0.25,))
    with pytest.raises(ValueError, match="std"):
        ModelConfig(std=(0.0,))
    with pytest.raises(ValueError, match="input_size"):
        ModelConfig(input_size=8)
    with pytest.raises(ValueError, match="two classes"):
        ModelConfig(class_names=["only"])
    with pytest.raises(ValueError, match="attention_norm"):
        ModelConfig(attention_norm="sparsemax")
    # the baseline always looks at the whole face
    assert ModelConfig(arch="baseline").regions.num_regions == 1


@pytest.mark.parametrize("name", list_bundled_models() or ["<none bundled>"])
def test_bundled_models_load_and_run(name: str) -> None:
    if name == "<none bundled>":
        pytest.skip("no bundled models in resources/models")
    model = load_model(name)
    assert model.config.num_classes == len(model.config.class_names) >= 2
    x = _inputs(model, batch=1, size=model.config.input_size)
    with torch.inference_mode():
        out = model(x)
    assert torch.isfinite(out.logits).all()
