"""Every registered model: forward shapes, finite outputs, the RAN aggregation against a float64 reference, region
batching, gradients, and loading pretrained backbones."""

from __future__ import annotations

import copy
import dataclasses
import functools
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision import models as tvm

from ran_core import ModelOutput, RANCriterion, create_model, list_models, region_biased_loss
from ran_core.models import (
    BaselineNet,
    RegionAttentionNetwork,
    build_backbone,
    list_backbones,
    load_pretrained_backbone,
)

NORMS = ("softmax", "none")


@functools.cache
def _cached(name: str, norm: str = "softmax") -> nn.Module:
    """Models are built once per session (VGG/ResNet-50 take a while); tests must deepcopy before mutating them."""
    torch.manual_seed(0)
    return create_model(name, input_size=32, attention_norm=norm).eval()


def _regions(model: nn.Module, batch: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k, c = model.config.regions.num_regions, model.config.in_chans
    return torch.randn(batch, k, c, size, size, generator=g)


def _spread_attention(model: RegionAttentionNetwork) -> RegionAttentionNetwork:
    """A copy whose attention layers give clearly different weights per region, so a wrong formula cannot hide
    behind near-uniform attention."""
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for fc in (model.alpha_fc, model.beta_fc):
            fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) * 4 / fc.weight.shape[1] ** 0.5)
            fc.bias.fill_(0.3)
    return model


def test_registry_lists_every_arch_and_backbone() -> None:
    names = list_models()
    assert len(names) == len(set(names)) == 2 * len(list_backbones())
    for bb in list_backbones():
        assert f"ran_{bb}" in names and f"baseline_{bb}" in names
    with pytest.raises(ValueError, match="unknown model"):
        create_model("ran_nonexistent")
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("nonexistent")


def _with_norm(model: nn.Module, norm: str) -> nn.Module:
    """The same weights under another attention_norm (the head reads it from the config at call time)."""
    other = copy.copy(model)
    other.config = dataclasses.replace(model.config, attention_norm=norm)
    return other


@pytest.mark.parametrize("name", list_models())
def test_forward_every_model(name: str) -> None:
    model = _cached(name)
    assert model.config.name == name
    k = model.config.regions.num_regions
    assert k == (6 if name.startswith("ran_") else 1)
    for size in (32, 48):
        x = _regions(model, 2, size)
        with torch.inference_mode():
            outs = {"softmax": model(x)}
            if isinstance(model, RegionAttentionNetwork):
                feats = model.forward_features(x)
                outs["none"] = _with_norm(model, "none").forward_head(feats)
        for norm, out in outs.items():
            assert isinstance(out, ModelOutput)
            assert out.logits.shape == (2, model.config.num_classes)
            assert torch.isfinite(out.logits).all()
            assert out.features is not None and torch.isfinite(out.features).all()
            if isinstance(model, BaselineNet):
                assert out.alpha is None and out.beta is None and out.weights is None
                assert out.features.shape == (2, model.num_features)
                continue
            assert out.features.shape == (2, 2 * model.num_features)
            for t in (out.alpha, out.beta, out.alpha_raw, out.beta_raw, out.weights):
                assert t.shape == (2, k)
                assert torch.isfinite(t).all()
                # sigmoid outputs of a random deep net may round to exactly 0 or 1 in float32
                assert ((t >= 0) & (t <= 1)).all()
            torch.testing.assert_close(out.weights.sum(1), torch.ones(2))
            if norm == "softmax":
                assert ((out.alpha > 0) & (out.alpha < 1) & (out.beta > 0) & (out.beta < 1)).all()
                torch.testing.assert_close(out.alpha.sum(1), torch.ones(2))
                torch.testing.assert_close(out.beta.sum(1), torch.ones(2))
            else:
                assert torch.equal(out.alpha, out.alpha_raw) and torch.equal(out.beta, out.beta_raw)


def test_model_input_shapes() -> None:
    ran, base = _cached("ran_compact"), _cached("baseline_compact")
    x = _regions(ran, 2, 32)
    with torch.inference_mode():
        # The baseline accepts RAN's region tensor and uses region 0, the whole face.
        torch.testing.assert_close(base(x).logits, base(x[:, :1]).logits)
        torch.testing.assert_close(base(x).logits, base(x[:, 0]).logits)
        assert ran(x[:, 0]).alpha.shape == (2, 1)  # a plain image batch is one region per face
        with pytest.raises(ValueError, match="expected"):
            ran(x[0, 0])


def _reference_head(model: RegionAttentionNetwork, feats: torch.Tensor) -> dict[str, torch.Tensor]:
    """The paper's equations, written out in float64 from the layer weights."""
    f = feats.double()
    wa, ba = model.alpha_fc.weight.double(), model.alpha_fc.bias.double()
    wb, bb = model.beta_fc.weight.double(), model.beta_fc.bias.double()
    wc, bc = model.classifier.weight.double(), model.classifier.bias.double()
    softmax = model.config.attention_norm == "softmax"
    alpha_raw = torch.sigmoid(f @ wa.T + ba)[..., 0]  # (B, K)
    alpha = torch.softmax(alpha_raw, dim=1) if softmax else alpha_raw
    b, k, d = f.shape
    f_m = torch.zeros(b, d, dtype=torch.float64)
    for i in range(k):
        f_m += alpha[:, i : i + 1] * f[:, i]
    f_m /= alpha.sum(1, keepdim=True)
    joint = torch.cat([f, f_m[:, None].expand(b, k, d)], dim=2)
    beta_raw = torch.sigmoid(joint @ wb.T + bb)[..., 0]
    beta = torch.softmax(beta_raw, dim=1) if softmax else beta_raw
    p = torch.zeros(b, 2 * d, dtype=torch.float64)
    for i in range(k):
        p += (alpha[:, i] * beta[:, i])[:, None] * joint[:, i]
    p /= (alpha * beta).sum(1, keepdim=True)
    return {"alpha": alpha, "beta": beta, "alpha_raw": alpha_raw, "beta_raw": beta_raw, "features": p,
            "logits": p @ wc.T + bc}  # fmt: skip


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", ["ran_compact", "ran_resnet18"])
def test_aggregation_matches_float64_reference(name: str, norm: str) -> None:
    model = _spread_attention(_cached(name, norm))
    x = _regions(model, 3, 32)
    with torch.inference_mode():
        feats = model.forward_features(x)
        out = model.forward_head(feats)
        full = model(x)
    assert feats.shape == (3, 6, model.num_features)
    ref = _reference_head(model, feats)
    # The test must be able to tell regions apart: attention far from uniform.
    assert (ref["alpha"].max(1).values - ref["alpha"].min(1).values).min() > 1e-3
    assert (ref["beta"].max(1).values - ref["beta"].min(1).values).min() > 1e-3
    for key, want in ref.items():
        got = getattr(out, key)
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5, msg=f"{key} differs from the reference")
    torch.testing.assert_close(full.logits, out.logits, atol=0, rtol=0)


def test_identical_regions_pool_to_that_region() -> None:
    """With every region equal, any weighting gives P = [f ; f]: the classifier sees the face twice."""
    model = _spread_attention(_cached("ran_compact", "none"))
    f = torch.randn(2, 1, model.num_features).expand(2, 6, -1)
    with torch.inference_mode():
        out = model.forward_head(f)
    torch.testing.assert_close(out.features, torch.cat([f[:, 0], f[:, 0]], dim=1))
    torch.testing.assert_close(out.alpha, out.alpha[:, :1].expand(2, 6))


@pytest.mark.parametrize("name", ["ran_compact", "ran_resnet18"])
def test_batched_regions_equal_per_region_loop(name: str) -> None:
    model = copy.deepcopy(_cached(name))
    x = _regions(model, 2, 32, seed=3)
    outs = {}
    with torch.inference_mode():
        for chunk in (None, 1, 3, 4):  # all at once, the official per-region loop, halves, and an uneven split
            model.region_chunk = chunk
            outs[chunk] = (model.forward_features(x), model(x))
    ref_feats, ref = outs[None]
    for chunk, (feats, out) in outs.items():
        torch.testing.assert_close(feats, ref_feats, atol=1e-5, rtol=1e-5, msg=f"region_chunk={chunk}")
        for key in ("logits", "alpha", "beta"):
            torch.testing.assert_close(getattr(out, key), getattr(ref, key), atol=1e-5, rtol=1e-5)
    # Feature i must come from region i: a per-region backbone call agrees region by region.
    with torch.inference_mode():
        for i in range(x.shape[1]):
            torch.testing.assert_close(model.backbone(x[:, i]), ref_feats[:, i], atol=1e-5, rtol=1e-5)


def test_autotune_region_chunk_picks_a_candidate_and_keeps_mode() -> None:
    model = copy.deepcopy(_cached("ran_compact")).train()
    chosen = model.autotune_region_chunk(batch_size=2, repeats=1)
    assert chosen in (None, 3, 1)
    assert model.region_chunk == chosen
    assert model.training
    assert copy.deepcopy(_cached("baseline_compact")).autotune_region_chunk() is None


@pytest.mark.parametrize("name", ["ran_compact", "ran_resnet18"])
def test_gradients_reach_attention_layers_and_backbone(name: str) -> None:
    model = copy.deepcopy(_cached(name)).train()
    x = _regions(model, 4, 32)
    out = model(x)
    # margin 1 keeps the RB term active whatever alpha is, so both loss terms send gradients.
    loss, parts = RANCriterion(lambda_rb=1.0, margin=1.0)(out, torch.tensor([0, 1, 2, 3]))
    assert parts["rb"] > 0
    loss.backward()
    for mod in (model.alpha_fc, model.beta_fc, model.classifier):
        assert mod.weight.grad is not None and mod.weight.grad.abs().sum() > 0
    backbone_grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert all(g is not None for g in backbone_grads)
    assert sum(g.abs().sum() for g in backbone_grads) > 0


def test_rb_loss_alone_trains_alpha_fc() -> None:
    model = copy.deepcopy(_cached("ran_compact")).train()
    out = model(_regions(model, 2, 32))
    region_biased_loss(out.alpha, margin=1.0).backward()
    assert model.alpha_fc.weight.grad.abs().sum() > 0
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0
    assert model.classifier.weight.grad is None and model.beta_fc.weight.grad is None


# --- pretrained backbones -------------------------------------------------------------------------------------------


class _Sneaky:
    """Unpickling this runs code; the loader must refuse it without running it."""

    ran = False

    def __reduce__(self):  # noqa: ANN204
        return (_set_ran, ())


def _set_ran() -> None:
    _Sneaky.ran = True


def _resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(5)
    return tvm.resnet18(weights=None).state_dict()


def test_pretrained_resnet18_with_prefix_and_head(tmp_path: Path) -> None:
    src = _resnet18_state()
    dropped = "layer4.1.bn2.bias"
    ckpt = {f"module.{k}": v for k, v in src.items() if k != dropped}
    ckpt["module.extra.weight"] = torch.zeros(3)
    path = tmp_path / "ms_celeb_res18.pth"
    torch.save({"state_dict": ckpt, "epoch": 3}, path)

    backbone = build_backbone("resnet18", 3)
    report = load_pretrained_backbone(backbone, path)
    state = backbone.state_dict()
    assert f"net.{dropped}" in report.missing
    assert report.unexpected == ["net.extra.weight"]
    assert report.mismatched == []
    assert not any("fc." in k for k in report.loaded + report.unexpected)  # the classifier is ignored, not reported
    for k, v in src.items():
        if not k.startswith("fc.") and k != dropped:
            assert torch.equal(state[f"net.{k}"], v), k
    assert "1 missing, 1 unexpected" in report.summary()

    model = create_model("ran_resnet18", pretrained=str(path), input_size=32)
    assert torch.equal(model.backbone.net.conv1.weight, src["conv1.weight"])
    assert model.pretrained_report.missing == [f"net.{dropped}"]


def test_pretrained_rgb_conv_into_gray_backbone_is_summed(tmp_path: Path) -> None:
    src = _resnet18_state()
    path = tmp_path / "r18.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in src.items()}, str(path))
    backbone = build_backbone("resnet18", 1)
    report = load_pretrained_backbone(backbone, path)
    assert "net.conv1.weight" in report.loaded and report.mismatched == []
    torch.testing.assert_close(backbone.net.conv1.weight, src["conv1.weight"].sum(1, keepdim=True))


@pytest.mark.parametrize("wrong", ["resnet50", "compact", "vgg16"])
def test_pretrained_wrong_architecture_is_refused(tmp_path: Path, wrong: str) -> None:
    path = tmp_path / f"{wrong}.pt"
    torch.save(build_backbone(wrong, 3).state_dict(), path)
    with pytest.raises(ValueError, match="architecture"):
        load_pretrained_backbone(build_backbone("resnet18", 3), path)


def test_pretrained_pickled_object_is_refused_without_running_it(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"conv1.weight": _Sneaky()}, fh, protocol=2)
    _Sneaky.ran = False
    with pytest.raises(ValueError, match="plain tensors"):
        load_pretrained_backbone(build_backbone("resnet18", 3), path)
    assert not _Sneaky.ran
    torch.save({"net": _Sneaky()}, path)  # torch's own zip format, same refusal
    with pytest.raises(ValueError, match="plain tensors"):
        load_pretrained_backbone(build_backbone("resnet18", 3), path)
    assert not _Sneaky.ran


def test_pretrained_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_pretrained_backbone(build_backbone("compact", 1), tmp_path / "missing.pt")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="state dict"):
        load_pretrained_backbone(build_backbone("compact", 1), tmp_path / "list.pt")


def test_vgg16_backbone_keeps_torchvision_layout() -> None:
    """Pretrained VGG checkpoints load by key, so the feature layers keep torchvision's names and shapes."""
    feats = build_backbone("vgg16", 3).features
    convs = [(i, m.out_channels) for i, m in enumerate(feats) if isinstance(m, nn.Conv2d)]
    assert [c for _, c in convs] == [64, 64, 128, 128, 256, 256, 256] + [512] * 6
    assert convs[0][0] == 0 and convs[-1][0] == 40  # torchvision's vgg16_bn indices
    assert isinstance(feats[1], nn.BatchNorm2d) and len(feats) == 44
    conv = build_backbone("vgg16", 1).features[0]
    assert isinstance(conv, nn.Conv2d) and conv.in_channels == 1
