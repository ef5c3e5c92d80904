"""Feature extractors shared by RAN and the baseline: torchvision ResNets/VGG and a compact CPU-friendly CNN.

Every backbone maps ``(N, C, H, W)`` images to ``(N, D)`` pooled features and exposes ``num_features = D``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchvision import models as tvm

logger = logging.getLogger(__name__)


def _split_at_pools(layers: nn.Sequential) -> list[nn.Module]:
    """``layers`` cut into stages, each ending with a max-pooling layer (and the spatial dropout right after it). The
    stages hold the modules themselves, not copies: fixing a stage's parameters fixes the backbone's."""
    groups: list[list[nn.Module]] = []
    current: list[nn.Module] = []
    for m in layers:
        if isinstance(m, nn.Dropout2d) and groups and not current:
            groups[-1].append(m)
            continue
        current.append(m)
        if isinstance(m, nn.MaxPool2d):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return [nn.Sequential(*g) for g in groups]


class TorchvisionResNet(nn.Module):
    """A torchvision ResNet without its classifier."""

    def __init__(self, depth: int, in_chans: int = 3) -> None:
        super().__init__()
        builder = {18: tvm.resnet18, 34: tvm.resnet34, 50: tvm.resnet50}[depth]
        net = builder(weights=None)
        if in_chans != 3:
            net.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.fc = nn.Identity()
        self.net = net
        self.num_features = 2048 if depth == 50 else 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TorchvisionVGG16(nn.Module):
    """torchvision VGG-16 (with batch norm, which trains from scratch) convolutional part, globally average pooled."""

    def __init__(self, in_chans: int = 3) -> None:
        super().__init__()
        # Only the convolutional part: tvm.vgg16_bn() would also build and initialise its 120M-parameter classifier
        # (~2 s and ~0.5 GB per model) just to throw it away. Same layer names and initialisation as torchvision.
        features = tvm.vgg.make_layers(tvm.vgg.cfgs["D"], batch_norm=True)
        for m in features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if in_chans != 3:
            features[0] = nn.Conv2d(in_chans, 64, kernel_size=3, padding=1)
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Block(nn.Module):
    """A ResNet basic block."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn(cin, cout, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = (
            nn.Identity()
            if stride == 1 and cin == cout
            else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.short(x))


class CompactResNet(nn.Module):
    """A small ResNet for 40-112 px faces, sized so RAN trains on a 2-core CPU.

    A 3x3 stride-1 stem keeps the fine detail of 48 px FER images (a 7x7 stride-2 stem plus max-pool, as in ImageNet
    ResNets, would leave 12x12 maps after two layers), then three stride-2 stages double the width, each of
    ``blocks_per_stage`` basic blocks (the first one strided). ``stages`` holds the blocks in order, one flat sequence
    whatever the depth, so the weights of the one-block models keep their names.
    """

    def __init__(
        self,
        in_chans: int = 1,
        widths: tuple[int, ...] = (16, 32, 64, 128),
        drop_rate: float = 0.0,
        blocks_per_stage: int = 1,
    ):
        super().__init__()
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be at least 1, got {blocks_per_stage}")
        self.stem = _conv_bn(in_chans, widths[0], stride=1)
        self.blocks_per_stage = blocks_per_stage
        blocks = []
        cin = widths[0]
        for cout in widths[1:]:
            for i in range(blocks_per_stage):
                blocks.append(_Block(cin, cout, stride=2 if i == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for block in self.stages:
            nn.init.zeros_(block.conv2[1].weight)  # start each residual branch at zero: trains faster from scratch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.stages(self.stem(x))).flatten(1)


class SeparableCNN(nn.Module):
    """A plain depthwise-separable CNN for 48 px faces: about 46 k parameters.

    Four stages of two 3x3 separable convolutions (depthwise 3x3, pointwise 1x1, batch norm, LeakyReLU), each stage
    followed by 2x2 max-pooling and spatial dropout, then global average pooling: the layout of the small from-scratch
    FERPlus CNNs that reach ~88 % on FERPlus Valid with strong augmentation and long training (a 1x1 convolution to
    the classes after global pooling equals the linear classifier RAN and the baseline put on these features).

    The very first convolution is a full 3x3 one: on a 1-channel image a separable one degenerates to a rank-1
    filter, and the full one costs under 1 % more.
    """

    def __init__(
        self,
        in_chans: int = 1,
        widths: tuple[int, ...] = (48, 48, 48, 48, 96, 96, 96, 96),
        convs_per_stage: int = 2,
        spatial_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_chans
        for i, cout in enumerate(widths):
            if i == 0:
                layers.append(nn.Conv2d(cin, cout, 3, 1, 1, bias=False))
            else:
                layers += [nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1, bias=False)]
            layers += [nn.BatchNorm2d(cout), nn.LeakyReLU(0.1, inplace=True)]
            if (i + 1) % convs_per_stage == 0:
                layers.append(nn.MaxPool2d(2))
                if spatial_dropout > 0:
                    layers.append(nn.Dropout2d(spatial_dropout))
            cin = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = cin
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu", a=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def backbone_stages(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's stages from the input on: the first N of them are what ``ran-core train --freeze-stages N``
    keeps fixed (as detectron2's ``FREEZE_AT``). A stage is a group of the backbone's own modules.

    - ResNets (torchvision): the stem (conv1, bn1), then layer1 ... layer4;
    - ``compact`` / ``compact_wide`` / ``compact_deep``: the 3x3 stem, then each stride-2 residual stage (its blocks);
    - VGG-16 and ``sepconv``: the layers up to and including each max-pooling layer.

    Raises:
        TypeError: a backbone of a kind this function does not know.
    """
    if isinstance(backbone, TorchvisionResNet):
        n = backbone.net
        return [nn.ModuleList([n.conv1, n.bn1]), n.layer1, n.layer2, n.layer3, n.layer4]
    if isinstance(backbone, CompactResNet):
        k = backbone.blocks_per_stage
        blocks = list(backbone.stages)
        return [backbone.stem, *(nn.Sequential(*blocks[i : i + k]) for i in range(0, len(blocks), k))]
    if isinstance(backbone, (TorchvisionVGG16, SeparableCNN)):
        return _split_at_pools(backbone.features)
    raise TypeError(f"no stages are defined for a {type(backbone).__name__} backbone")


def fix_stages(backbone: nn.Module, n: int) -> list[nn.Module]:
    """Keep the backbone's first ``n`` stages (:func:`backbone_stages`) fixed: no gradient into their parameters and
    their batch norms in eval mode (statistics unchanged). Returns those stages. ``train()`` on a parent module puts
    them back into training mode, so call this again after it."""
    stages = backbone_stages(backbone)[:n]
    for stage in stages:
        stage.eval()
        stage.requires_grad_(False)
    return stages


@dataclass
class BackboneInfo:
    builder: Callable[[int], nn.Module]
    description: str
    default_input_size: int
    default_color: str = "rgb"
    extra: dict = field(default_factory=dict)


BACKBONES: dict[str, BackboneInfo] = {
    "resnet18": BackboneInfo(
        lambda c: TorchvisionResNet(18, c), "torchvision ResNet-18 (the paper's main backbone)", 224
    ),
    "resnet34": BackboneInfo(lambda c: TorchvisionResNet(34, c), "torchvision ResNet-34", 224),
    "resnet50": BackboneInfo(lambda c: TorchvisionResNet(50, c), "torchvision ResNet-50", 224),
    "vgg16": BackboneInfo(lambda c: TorchvisionVGG16(c), "torchvision VGG-16 with batch norm", 224),
    "compact": BackboneInfo(
        lambda c: CompactResNet(c), "compact 4-stage ResNet for 40-112 px faces, CPU-trainable", 48, "gray"
    ),
    "compact_wide": BackboneInfo(
        lambda c: CompactResNet(c, widths=(24, 48, 96, 192)),
        "compact ResNet at 1.5x width (~0.68 M parameters; ~0.6x the training speed of compact on a CPU)",
        48,
        "gray",
    ),
    "compact_deep": BackboneInfo(
        lambda c: CompactResNet(c, widths=(24, 48, 96, 192), blocks_per_stage=2),
        "compact_wide with two residual blocks a stage (~1.3 M parameters, 13 convolutions instead of 7)",
        48,
        "gray",
    ),
    "sepconv": BackboneInfo(
        lambda c: SeparableCNN(c), "depthwise-separable CNN for 48 px faces (~46 k parameters)", 48, "gray"
    ),
    "sepconv_wide": BackboneInfo(
        lambda c: SeparableCNN(c, widths=(64, 64, 96, 96, 128, 128, 192, 192)),
        "wider depthwise-separable CNN for 48 px faces (~0.12 M parameters)",
        48,
        "gray",
    ),
}


def list_backbones() -> list[str]:
    return sorted(BACKBONES)


def build_backbone(name: str, in_chans: int = 3) -> nn.Module:
    """Build a randomly initialised backbone by name."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; available: {', '.join(list_backbones())}")
    return BACKBONES[name].builder(in_chans)


# Prefixes found in third-party checkpoints (DataParallel, Lightning, the RAN authors' MS-Celeb ResNet ...).
_PREFIXES = ("module.", "model.", "backbone.", "encoder.", "base.", "features_extractor.")


@dataclass
class PretrainedReport:
    loaded: list[str]
    missing: list[str]
    unexpected: list[str]
    mismatched: list[str]

    def summary(self) -> str:
        return (
            f"loaded {len(self.loaded)} tensors; {len(self.missing)} missing, {len(self.unexpected)} unexpected, "
            f"{len(self.mismatched)} with a different shape"
        )


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # the weights_only unpickler refuses anything but tensors and plain containers
        raise ValueError(
            f"{path} cannot be read as plain tensors ({exc.__class__.__name__}). "
            "Only state dicts saved with torch.save(model.state_dict()) or .safetensors files are accepted; "
            "files that need arbitrary code to unpickle are refused."
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "net"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a state dict of tensors")
    return obj


def load_pretrained_backbone(backbone: nn.Module, path: str | Path) -> PretrainedReport:
    """Load a user's local checkpoint into ``backbone``, tolerating the usual key prefixes.

    Classifier weights (``fc.*``, ``classifier.*``) are ignored. A 3-channel first convolution loaded into a
    1-channel backbone is summed over its input channels (grayscale = R + G + B, up to normalisation).

    Raises:
        ValueError: the file is not a plain state dict, or no tensor fits, or some tensor has another shape (a
            checkpoint of another architecture).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained checkpoint not found: {path}")
    src = _read_state_dict(path)
    target = backbone.state_dict()
    # The torchvision wrappers hold the network as ``net``; accept keys with or without it.
    inner = "net." if any(k.startswith("net.") for k in target) else ""
    remapped: dict[str, torch.Tensor] = {}
    for key, value in src.items():
        k = key
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p) :], True
        if k.startswith(("fc.", "classifier.")):
            continue
        if inner and not k.startswith(inner):
            k = inner + k
        remapped[k] = value
    loaded, mismatched = [], []
    final: dict[str, torch.Tensor] = {}
    for k, v in remapped.items():
        if k not in target:
            continue
        t = target[k]
        if v.shape != t.shape and v.ndim == 4 and t.ndim == 4 and v.shape[1] == 3 and t.shape[1] == 1:
            v = v.sum(dim=1, keepdim=True)
        if v.shape != t.shape:
            mismatched.append(k)
            continue
        final[k] = v
        loaded.append(k)
    backbone.load_state_dict(final, strict=False)
    report = PretrainedReport(
        loaded=loaded,
        missing=[k for k in target if k not in final and not k.endswith("num_batches_tracked")],
        unexpected=[k for k in remapped if k not in target],
        mismatched=mismatched,
    )
    # A shape mismatch means another architecture (e.g. a ResNet-50 checkpoint for a ResNet-18, whose stems agree):
    # loading the few tensors that happen to fit would leave a mostly random backbone that looks pretrained.
    if not loaded or mismatched:
        shown = f": {', '.join(mismatched[:3])}{' ...' if len(mismatched) > 3 else ''}" if mismatched else ""
        raise ValueError(
            f"{path}: the checkpoint does not fit the backbone ({report.summary()}{shown}); "
            "is it the right architecture?"
        )
    logger.info("pretrained %s: %s", path.name, report.summary())
    return report
