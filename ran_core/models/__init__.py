"""Models: RAN, the whole-face baseline, their backbones and the registry."""

from ran_core.models._registry import create_model, list_models
from ran_core.models.backbones import build_backbone, list_backbones, load_pretrained_backbone
from ran_core.models.inference import infer
from ran_core.models.ran import BaselineNet, RegionAttentionNetwork

__all__ = [
    "BaselineNet",
    "RegionAttentionNetwork",
    "build_backbone",
    "create_model",
    "infer",
    "list_backbones",
    "list_models",
    "load_pretrained_backbone",
]
