"""Model registry: ``create_model(name)`` builds ``<arch>_<backbone>`` models from a :class:`ModelConfig`."""

from __future__ import annotations

from typing import Any

from torch import nn

from ran_core.config import ARCHS, ModelConfig
from ran_core.models.backbones import BACKBONES, load_pretrained_backbone
from ran_core.models.ran import BaselineNet, RegionAttentionNetwork

_ARCH_CLASSES: dict[str, type[nn.Module]] = {"ran": RegionAttentionNetwork, "baseline": BaselineNet}


def list_models() -> list[str]:
    """Every registered model name, e.g. ``ran_resnet18`` or ``baseline_compact``."""
    return [f"{arch}_{bb}" for arch in ARCHS for bb in sorted(BACKBONES)]


def create_model(name: str | ModelConfig = "ran_compact", pretrained: str | None = None, **kwargs: Any) -> nn.Module:
    """Build a model.

    Args:
        name: a name from :func:`list_models`, or a :class:`ModelConfig`.
        pretrained: optional path to a local backbone checkpoint (e.g. an MS-Celeb-1M ResNet-18), loaded with
            :func:`load_pretrained_backbone`; the report of missing/unexpected keys is kept in
            ``model.pretrained_report``.
        **kwargs: :class:`ModelConfig` fields overriding the defaults (``input_size``, ``color_mode``, ``regions``...).

    Returns:
        the model, in training mode, with its ``config`` attached.
    """
    if isinstance(name, ModelConfig):
        config = name
    else:
        arch, _, backbone = name.partition("_")
        if arch not in _ARCH_CLASSES or backbone not in BACKBONES:
            raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}")
        info = BACKBONES[backbone]
        defaults: dict[str, Any] = {"input_size": info.default_input_size, "color_mode": info.default_color}
        color = kwargs.get("color_mode", defaults["color_mode"])
        if "mean" not in kwargs:
            defaults["mean"] = (0.5,) if color == "gray" else (0.485, 0.456, 0.406)
            defaults["std"] = (0.25,) if color == "gray" else (0.229, 0.224, 0.225)
        config = ModelConfig(arch=arch, backbone=backbone, **{**defaults, **kwargs})
    model = _ARCH_CLASSES[config.arch](config)
    if pretrained:
        model.pretrained_report = load_pretrained_backbone(model.backbone, pretrained)
    return model
