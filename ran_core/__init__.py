"""ran_core: pose- and occlusion-robust facial expression recognition with Region Attention Networks."""

from ran_core.config import ModelConfig
from ran_core.losses import RANCriterion, region_biased_loss
from ran_core.models import create_model, list_backbones, list_models
from ran_core.regions import RegionConfig, crop_regions, region_boxes
from ran_core.saved_model import ModelLoadError, list_bundled_models, load_model, read_config, save_model
from ran_core.structures import FERPLUS_CLASSES, FaceResult, ModelOutput, RegionResult

__version__ = "0.1.0"


def __getattr__(name: str):
    # The Predictor pulls in OpenCV and the face detectors: import it on first use so `import ran_core` stays light.
    if name == "Predictor":
        from ran_core.predictor import Predictor

        return Predictor
    raise AttributeError(f"module 'ran_core' has no attribute {name!r}")


__all__ = [
    "FERPLUS_CLASSES",
    "FaceResult",
    "ModelConfig",
    "ModelLoadError",
    "ModelOutput",
    "Predictor",
    "RANCriterion",
    "RegionConfig",
    "RegionResult",
    "create_model",
    "crop_regions",
    "list_backbones",
    "list_bundled_models",
    "list_models",
    "load_model",
    "read_config",
    "region_biased_loss",
    "region_boxes",
    "save_model",
]
