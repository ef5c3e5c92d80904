"""The model configuration: everything needed to rebuild a model and feed it the way it was trained."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ran_core.regions import RegionConfig
from ran_core.structures import FERPLUS_CLASSES

ARCHS: tuple[str, ...] = ("ran", "baseline")
ATTENTION_NORMS: tuple[str, ...] = ("softmax", "none")
COLOR_MODES: tuple[str, ...] = ("gray", "rgb")
TTA_MODES: tuple[str, ...] = ("none", "flip", "shift", "flip_shift")
FORMAT_VERSION = 1


def check_tta(tta: str | None, what: str = "tta") -> None:
    """Raise ``ValueError`` unless ``tta`` is one of :data:`TTA_MODES` or ``None`` (a model's saved one)."""
    if tta is not None and tta not in TTA_MODES:
        raise ValueError(f"{what} must be one of {', '.join(TTA_MODES)} (or None: the saved one), got {tta!r}")


@dataclass
class ModelConfig:
    """Rebuilds a model and says how to preprocess its input. Saved as ``config.json`` beside the weights.

    Attributes:
        arch: ``ran`` (Region Attention Network) or ``baseline`` (the backbone on the whole face, as in the paper).
        backbone: a name from :func:`ran_core.models.list_backbones`.
        class_names: output classes, in logit order.
        input_size: side of every region crop fed to the backbone, in pixels.
        color_mode: ``gray`` (1 channel) or ``rgb`` (3 channels).
        mean: per-channel mean subtracted after scaling pixels to [0, 1].
        std: per-channel std divided after subtracting ``mean``.
        regions: how faces are cut into regions (the baseline uses the whole face only).
        attention_norm: ``softmax`` normalises α and β across regions before aggregating, as the authors' official
            code does (FERplus_dir/attention_rank_loss.py); ``none`` uses the sigmoid outputs directly, as the paper's
            equations are written.
        drop_rate: dropout before the classifier (and, with ``attention_dropout``, before the attention layers).
        attention_dropout: also apply dropout to the features entering the α and β layers. The authors' official
            code has none there; older ran_core models were trained with it (``True`` in their configs).
        tta: test-time augmentation at inference: ``none``, ``flip`` (average the class probabilities of the
            face and its mirror image), ``shift`` (of the crops and the crops moved 1 px per 48 left, right, up and
            down) or ``flip_shift`` (those five and their mirror images; see :func:`ran_core.models.infer`).
            Honoured by eval, predict, the Predictor, the camera path and the viewer.
        logit_bias: per-class values added to the log-probabilities at inference (a logit adjustment, e.g.
            ``-tau * log(prior)`` to trade overall accuracy for accuracy on rare classes; set by
            ``ran-core calibrate``), or None.
        face_margin: extra margin added around a detected face box on each side, as a fraction of its size, so that
            faces found in the wild are framed like the training images.
        provenance: free-form record of how the weights were made (dataset, epochs, metrics, command).
    """

    arch: str = "ran"
    backbone: str = "compact"
    class_names: list[str] = field(default_factory=lambda: list(FERPLUS_CLASSES))
    input_size: int = 48
    color_mode: str = "gray"
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.25,)
    regions: RegionConfig = field(default_factory=RegionConfig)
    attention_norm: str = "softmax"
    drop_rate: float = 0.5
    attention_dropout: bool = False
    tta: str = "none"
    logit_bias: list[float] | None = None
    face_margin: float = 0.1
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.regions, dict):
            self.regions = RegionConfig.from_dict(self.regions)
        self.mean = tuple(float(v) for v in self.mean)
        self.std = tuple(float(v) for v in self.std)
        self.class_names = list(self.class_names)
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.attention_norm not in ATTENTION_NORMS:
            raise ValueError(f"attention_norm must be one of {ATTENTION_NORMS}, got {self.attention_norm!r}")
        if self.color_mode not in COLOR_MODES:
            raise ValueError(f"color_mode must be one of {COLOR_MODES}, got {self.color_mode!r}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"mean/std need {self.in_chans} values for color_mode {self.color_mode!r}")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be positive")
        if self.input_size < 16:
            raise ValueError(f"input_size must be at least 16 px, got {self.input_size}")
        if len(self.class_names) < 2:
            raise ValueError("a model needs at least two classes")
        if not 0 <= self.drop_rate < 1:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")
        if self.tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {TTA_MODES}, got {self.tta!r}")
        if self.logit_bias is not None:
            self.logit_bias = [float(v) for v in self.logit_bias]
            if len(self.logit_bias) != len(self.class_names):
                raise ValueError(
                    f"logit_bias needs one value per class ({len(self.class_names)}), got {len(self.logit_bias)}"
                )
        if self.arch == "baseline" and self.regions.num_regions != 1:
            self.regions = RegionConfig.whole_face()

    @property
    def in_chans(self) -> int:
        return 1 if self.color_mode == "gray" else 3

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def name(self) -> str:
        return f"{self.arch}_{self.backbone}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["regions"] = self.regions.to_dict()
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["format_version"] = FORMAT_VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        if not isinstance(d, dict) or "arch" not in d or "backbone" not in d:
            raise ValueError("not a ran_core model config (it has no 'arch' and 'backbone')")
        version = int(d.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"model config format {version} is newer than this ran_core understands ({FORMAT_VERSION})"
            )
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)
