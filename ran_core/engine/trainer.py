"""The training loop: one epoch loop, checkpoints that resume exactly, validation, the best model saved for use.

Layout of a run directory::

    RUN_DIR/config.yaml            # the resolved TrainConfig (flags over --config file over defaults)
    RUN_DIR/metrics.csv            # one row per epoch
    RUN_DIR/curves.png             # loss and accuracy per epoch
    RUN_DIR/checkpoints/last.pt    # training state (torch.load(weights_only=True)), written atomically
    RUN_DIR/best/                  # the best model on the validation split, as a saved model (safetensors + JSON)
    RUN_DIR/summary.json           # best epoch and its validation metrics

Runs under ``torchrun`` use PyTorch DistributedDataParallel: each rank trains on its shard of every epoch
(DistributedSampler), metrics are summed across ranks, and only rank 0 writes files.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import signal
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

from ran_core.config import ModelConfig
from ran_core.data.pipeline import (
    AUGMENT_PRESETS,
    ERASE_FILLS,
    AugmentConfig,
    CachedFaces,
    FaceDataset,
    RegionBatcher,
    cache_faces,
    iterate_batches,
)
from ran_core.devices import resolve_device
from ran_core.engine.distill import Teacher, mix_targets
from ran_core.engine.evaluate import predict_split
from ran_core.engine.metrics import SetMetrics, confusion_matrix
from ran_core.losses import RANCriterion, max_rb_gap
from ran_core.models import create_model
from ran_core.models.backbones import backbone_stages, fix_stages
from ran_core.regions import AFFECTNET_FIXED_REGIONS, DEFAULT_FIXED_REGIONS, RegionConfig
from ran_core.saved_model import save_model

logger = logging.getLogger(__name__)

RECIPES = ("official", "modern")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("steps", "cosine", "plateau")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is left as it was."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (disk full, no permission); the last good one is left as it was."""


@dataclass
class TrainConfig:
    """Everything a training run needs. Written to ``RUN_DIR/config.yaml``; ``--config`` files use these keys.

    Attributes:
        dataset: ``ferplus``, ``rafdb``, ``affectnet``, ``sfew`` or ``folder``.
        data_root: the dataset's root folder.
        out: run directory.
        model: ``ran`` or ``baseline``.
        backbone: a backbone name (``compact``, ``resnet18``, ``resnet34``, ``resnet50``, ``vgg16``).
        regions: region scheme for RAN: ``fixed``, ``random`` or ``landmark``.
        region_names: fixed regions to use (default: the paper's 6 for FERPlus, all 8 for AffectNet).
        num_random: number of regions of the random scheme.
        landmark_ratio: side of the landmark squares, fraction of the face.
        landmark_detector: for ``regions=landmark`` on a dataset without landmarks (FERPlus): the detector that finds
            them once (``auto``: fan if its weights are here, else mtcnn), cached on disk; faces where none is found
            get fixed crops, face by face.
        landmark_cache: folder of that cache (default ``~/.cache/ran_core/landmarks``, or ``$RAN_CORE_CACHE``).
        input_size: crop side fed to the backbone (default: the backbone's).
        color_mode: ``gray`` or ``rgb`` (default: the backbone's).
        attention_norm: ``softmax`` (official code) or ``none`` (the paper's equations).
        drop_rate: dropout before the classifier (see ``attention_dropout``).
        label_mode: FERPlus training targets: ``majority`` or ``probability`` (soft). Validation is always majority.
        num_classes: AffectNet setting, 7 or 8.
        epochs: number of epochs.
        batch_size: faces per step (per process under torchrun).
        lr: peak learning rate (default 0.01 for ``official``, 0.002 for ``modern``).
        recipe: ``official`` = SGD momentum 0.9, weight decay 1e-4, lr x0.1 at 30/50/80% of the epochs, flips and small
            shifts; ``modern`` = AdamW (weight decay 0.05) with 1 warm-up epoch then cosine decay, label smoothing 0.1,
            flips, rotations, zoom, shifts, brightness/contrast and random erasing.
        optimizer: ``sgd`` (momentum 0.9), ``adam`` (weight decay as an L2 term in the gradient) or ``adamw``
            (decoupled weight decay); default by recipe (sgd / adamw).
        schedule: ``steps`` (x0.1 at 30/50/80 % of the epochs), ``cosine`` (1 warm-up epoch, cosine decay) or
            ``plateau`` (multiply by ``plateau_factor`` when the validation loss has not improved for
            ``plateau_patience`` epochs); default by recipe (steps / cosine).
        plateau_patience: epochs without a lower validation loss before ``plateau`` lowers the learning rate.
        plateau_factor: learning-rate factor of the ``plateau`` schedule.
        early_stop: stop when validation accuracy has not improved for this many epochs (None: never).
        ema: keep an exponential moving average of the weights with this decay per step (e.g. 0.999; None: off),
            buffers included; validation, the best model and early stopping then use the averaged weights, which
            smooth out the noise of the last steps (timm's ``--model-ema``).
        augment: augmentation preset, ``none``, ``official``, ``modern`` or ``strong`` (see
            :class:`~ran_core.data.pipeline.AugmentConfig`); default by recipe (official / modern).
        erase_fill: fill of erased rectangles and covered parts: ``gray``, ``black`` or ``mixed``.
        occlude_parts: probability of covering a whole face part (eye band, mouth and chin, a half of the face) in
            training, jittered; see :data:`~ran_core.data.pipeline.PART_OCCLUDERS`.
        init_from: a saved model, bundled model name or run directory whose weights start this run: every tensor
            whose name and shape fit is copied (a whole-face baseline gives RAN its backbone, which costs 1/K as much
            to train). Ignored when resuming, whose checkpoint holds the weights.
        freeze_backbone: keep the backbone fixed for the first N epochs (no gradient, no weight decay, batch-norm
            statistics unchanged) while the new layers (RAN's attention, the classifier) learn on a warm-started
            backbone; it trains with the rest afterwards. A linear probe before fine-tuning (LP-FT, Kumar et al.
            2022), which keeps more of the starting features than fine-tuning everything at once. Needs
            ``init_from`` or ``pretrained``.
        freeze_stages: keep the backbone's first N stages (:func:`~ran_core.models.backbones.backbone_stages`: the
            stem, then each downsampling stage) fixed for the whole run, weights and batch-norm statistics, as
            detectron2's ``FREEZE_AT``: the warm-started low-level features stay as trained, and no gradient flows
            into those layers, which makes each step cheaper (RAN runs the backbone K times a face). Needs
            ``init_from`` or ``pretrained``.
        attention_dropout: also drop features entering the α/β layers (not in the official code; off).
        tta: test-time augmentation stored in the saved model and used for validation: ``none`` or ``flip``.
        weight_decay: default 1e-4 (official) or 0.05 (modern).
        label_smoothing: default 0 (official) or 0.1 (modern).
        lambda_rb: weight of the region-biased loss.
        rb_margin: margin of the region-biased loss.
        device: ``auto``, ``cpu`` or ``cuda``.
        amp: mixed precision: ``auto`` (bf16 on CPUs and GPUs that support it, else fp16 on GPU), ``off``, ``bf16``,
            ``fp16``.
        channels_last: NHWC tensors (``None``: on, measured faster on CPU and GPU).
        workers: DataLoader worker processes (``None``: 4 on CUDA, 2 on CPU) when images are not cached.
        cache: ``auto`` (decode into memory when it needs under 4 GB), ``memory`` or ``none``.
        max_samples: cap per split, for smoke runs.
        balanced: class-balanced sampling (the official AffectNet training used it).
        seed: seed for initialisation, shuffling and augmentation.
        pretrained: local backbone checkpoint to start from.
        train_split: split name to train on.
        val_split: split name to select the best model on.
        eval_batch_size: faces per step at validation.
        teacher: saved models whose mean probabilities on each step's augmented faces join the targets
            (knowledge distillation, :mod:`ran_core.engine.distill`); ``None`` trains on the labels alone.
        teacher_weight: the teachers' share of the targets, ``(1 - w) * label + w * teacher``, in (0, 1].
    """

    dataset: str = "ferplus"
    data_root: str = ""
    out: str = "runs/ran"
    model: str = "ran"
    backbone: str = "compact"
    regions: str = "fixed"
    region_names: list[str] | None = None
    num_random: int = 6
    landmark_ratio: float = 0.4
    landmark_detector: str = "auto"
    landmark_cache: str | None = None
    input_size: int | None = None
    color_mode: str | None = None
    attention_norm: str = "softmax"
    drop_rate: float = 0.5
    label_mode: str = "majority"
    num_classes: int | None = None
    epochs: int = 30
    batch_size: int = 64
    lr: float | None = None
    recipe: str = "official"
    optimizer: str | None = None
    schedule: str | None = None
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    early_stop: int | None = None
    ema: float | None = None
    augment: str | None = None
    erase_fill: str = "gray"
    occlude_parts: float = 0.0
    init_from: str | None = None
    freeze_backbone: int = 0
    freeze_stages: int = 0
    attention_dropout: bool = False
    tta: str = "none"
    weight_decay: float | None = None
    label_smoothing: float | None = None
    lambda_rb: float = 1.0
    rb_margin: float = 0.02
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool | None = None
    workers: int | None = None
    cache: str = "auto"
    max_samples: int | None = None
    balanced: bool = False
    seed: int = 0
    pretrained: str | None = None
    train_split: str = "train"
    val_split: str = "valid"
    eval_batch_size: int = 256
    teacher: list[str] | None = None
    teacher_weight: float = 0.5
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in ("ran", "baseline"):
            raise ValueError(f"--model must be ran or baseline, got {self.model!r}")
        if self.recipe not in RECIPES:
            raise ValueError(f"--recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.label_mode not in ("majority", "probability"):
            raise ValueError(f"--label-mode must be majority or probability, got {self.label_mode!r}")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise ValueError(f"--amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if self.cache not in ("auto", "memory", "none"):
            raise ValueError(f"--cache must be auto, memory or none, got {self.cache!r}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("epochs must be >= 1 and batch size >= 2 (batch norm needs two samples)")
        if not self.data_root:
            raise ValueError("--data-root is required")
        if self.model == "baseline" and self.regions != "fixed":
            logger.info("the baseline sees the whole face only; --regions %s is ignored", self.regions)
        if self.lr is None:
            self.lr = 0.01 if self.recipe == "official" else 0.002
        if self.weight_decay is None:
            self.weight_decay = 1e-4 if self.recipe == "official" else 0.05
        if self.label_smoothing is None:
            self.label_smoothing = 0.0 if self.recipe == "official" else 0.1
        if self.lr <= 0:
            raise ValueError("--lr must be positive")
        if self.optimizer is None:
            self.optimizer = "sgd" if self.recipe == "official" else "adamw"
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule is None:
            self.schedule = "steps" if self.recipe == "official" else "cosine"
        if self.schedule not in SCHEDULES:
            raise ValueError(f"--schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.augment is None:
            self.augment = self.recipe
        if self.augment != "none" and self.augment not in AUGMENT_PRESETS:
            raise ValueError(f"--augment must be none or one of {AUGMENT_PRESETS}, got {self.augment!r}")
        if self.erase_fill not in ERASE_FILLS:
            raise ValueError(f"--erase-fill must be one of {ERASE_FILLS}, got {self.erase_fill!r}")
        if not 0 <= self.occlude_parts <= 1:
            raise ValueError(f"--occlude-parts must be a probability in [0, 1], got {self.occlude_parts}")
        if self.occlude_parts > 0 and self.augment == "none":
            raise ValueError("--occlude-parts needs an augmentation preset (--augment official, modern or strong)")
        if self.plateau_patience < 0 or not 0 < self.plateau_factor < 1:
            raise ValueError("--plateau-patience must be >= 0 and --plateau-factor in (0, 1)")
        if self.early_stop is not None and self.early_stop < 1:
            raise ValueError("--early-stop must be at least 1 epoch")
        if self.ema is not None and not 0 < self.ema < 1:
            raise ValueError(f"--ema is a decay per step in (0, 1), e.g. 0.999; got {self.ema}")
        if not 0 <= self.freeze_backbone <= self.epochs:
            raise ValueError(
                f"--freeze-backbone must be between 0 and --epochs ({self.epochs}), got {self.freeze_backbone}"
            )
        if self.freeze_backbone and not (self.init_from or self.pretrained):
            raise ValueError(
                "--freeze-backbone keeps a trained backbone fixed: give it one with --init-from or --pretrained "
                "(a freshly initialised backbone would stay random)"
            )
        if self.freeze_stages < 0:
            raise ValueError(f"--freeze-stages must be >= 0, got {self.freeze_stages}")
        if self.freeze_stages and not (self.init_from or self.pretrained):
            raise ValueError(
                "--freeze-stages keeps trained backbone stages fixed: give them weights with --init-from or "
                "--pretrained (freshly initialised ones would stay random)"
            )
        if isinstance(self.teacher, str):
            self.teacher = [self.teacher]
        if self.teacher is not None and not self.teacher:
            self.teacher = None
        if not 0 < self.teacher_weight <= 1:
            raise ValueError(
                f"--teacher-weight is the teachers' share of the targets, in (0, 1]; got {self.teacher_weight}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_sources(cls, file: str | Path | None = None, **overrides: Any) -> TrainConfig:
        """Defaults < YAML ``file`` < ``overrides`` (command-line flags that were given)."""
        values: dict[str, Any] = {}
        if file:
            data = yaml.safe_load(Path(file).read_text()) or {}
            if not isinstance(data, dict):
                raise ValueError(f"{file}: a training config must be a YAML mapping of option: value")
            unknown = set(data) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"{file}: unknown option(s) {sorted(unknown)}")
            values.update(data)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def _rank() -> int:
    return dist.get_rank() if _is_dist() else 0


def _world() -> int:
    return dist.get_world_size() if _is_dist() else 1


def _all_sum(t: torch.Tensor) -> torch.Tensor:
    if _is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pt")
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())  # on disk before it replaces the last good checkpoint
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def resolve_amp(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype to use, or None for full precision."""
    if name == "off":
        return None
    if name == "fp16":
        return torch.float16
    if name == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # On CPUs with native bf16 (AVX512-BF16 / AMX) autocast made the compact RAN ~2x faster to train.
    return torch.bfloat16 if torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def model_from_train_config(cfg: TrainConfig, class_names: list[str]) -> nn.Module:
    if cfg.model == "baseline":
        regions = RegionConfig.whole_face()
    elif cfg.regions == "fixed":
        default = AFFECTNET_FIXED_REGIONS if cfg.dataset == "affectnet" else DEFAULT_FIXED_REGIONS
        regions = RegionConfig(scheme="fixed", names=tuple(cfg.region_names or default))
    else:
        regions = RegionConfig(
            scheme=cfg.regions, num_random=cfg.num_random, landmark_ratio=cfg.landmark_ratio, seed=cfg.seed
        )
    kwargs: dict[str, Any] = {
        "class_names": class_names,
        "regions": regions,
        "attention_norm": cfg.attention_norm,
        "drop_rate": cfg.drop_rate,
        "attention_dropout": cfg.attention_dropout,
        "tta": cfg.tta,
    }
    if cfg.input_size:
        kwargs["input_size"] = cfg.input_size
    if cfg.color_mode:
        kwargs["color_mode"] = cfg.color_mode
    return create_model(f"{cfg.model}_{cfg.backbone}", pretrained=cfg.pretrained, **kwargs)


def init_from_saved(model: nn.Module, source: str | Path) -> dict[str, list[str]]:
    """Start ``model`` from the weights of a saved model / bundled name / run directory (``--init-from``).

    Every tensor whose name and shape match is copied: from a baseline this gives RAN its backbone (the attention
    layers and the classifier, whose input is [f; F_m] and so twice as wide, start fresh); from a RAN of the same
    backbone it gives everything.

    Raises:
        ValueError: the source has another backbone or colour mode, or no tensor fits.
    """
    from safetensors.torch import load_file

    from ran_core.saved_model import ModelLoadError, read_config, resolve_model_path

    try:
        weights, _ = resolve_model_path(source)
        src_cfg = read_config(source)
    except ModelLoadError as exc:
        raise ValueError(f"--init-from: {exc}") from None
    mine = model.config
    if (src_cfg.backbone, src_cfg.in_chans) != (mine.backbone, mine.in_chans):
        raise ValueError(
            f"--init-from {source}: its backbone is {src_cfg.backbone} ({src_cfg.color_mode}), this run trains "
            f"{mine.backbone} ({mine.color_mode}); they must be the same"
        )
    src = load_file(str(weights))
    target = model.state_dict()
    fit = {k: v for k, v in src.items() if k in target and target[k].shape == v.shape}
    if not any(k.startswith("backbone.") for k in fit):
        raise ValueError(f"--init-from {source}: none of its backbone tensors fits this model")
    if src_cfg.class_names != mine.class_names:
        fit = {k: v for k, v in fit.items() if not k.startswith("classifier.")}
    model.load_state_dict(fit, strict=False)
    report = {
        "loaded": sorted(fit),
        "fresh": sorted(k for k in target if k not in fit and not k.endswith("num_batches_tracked")),
    }
    logger.info(
        "initialised from %s: %d tensors copied, %d start fresh (%s)",
        source,
        len(report["loaded"]),
        len(report["fresh"]),
        ", ".join(report["fresh"][:6]),
    )
    return report


class Trainer:
    """Train one model as described by a :class:`TrainConfig`.

    Args:
        cfg: the run configuration.
        resume: continue from ``RUN_DIR/checkpoints/last.pt`` when it exists.
        interrupt_after_steps: test hook: behave as if Ctrl-C was pressed after this many optimiser steps.
    """

    def __init__(self, cfg: TrainConfig, resume: bool = False, interrupt_after_steps: int | None = None) -> None:
        self.cfg = cfg
        self.resume = resume
        self.interrupt_after_steps = interrupt_after_steps
        self.run_dir = Path(cfg.out)
        self.ckpt_path = self.run_dir / "checkpoints" / "last.pt"
        self._stop_requested = False

    # ----------------------------------------------------------------------------------------------------- setup
    def _setup(self) -> None:
        from ran_core.data import class_balanced_weights, has_votes, open_dataset

        cfg = self.cfg
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not _is_dist():
            backend = "nccl" if cfg.device != "cpu" and torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=backend)
        self.rank, self.world = _rank(), _world()
        self.device = resolve_device(cfg.device)
        if self.device.type == "cuda" and _is_dist():
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        train_mode = cfg.label_mode if has_votes(cfg.dataset) else "majority"
        self.train_split = open_dataset(
            cfg.dataset, cfg.data_root, cfg.train_split, train_mode, cfg.num_classes, cfg.max_samples, cfg.seed
        )
        self.val_split = open_dataset(
            cfg.dataset, cfg.data_root, cfg.val_split, "majority", cfg.num_classes, cfg.max_samples, cfg.seed
        )
        self.landmark_reports: dict[str, Any] = {}
        if cfg.model == "ran" and cfg.regions == "landmark":
            from ran_core.data.landmarks import attach_landmarks
            from ran_core.faces import DetectorUnavailable

            for name, split in (("train", self.train_split), ("valid", self.val_split)):
                try:
                    report = attach_landmarks(split, cfg.landmark_detector, cfg.landmark_cache, progress=self.rank == 0)
                except DetectorUnavailable as exc:
                    raise ValueError(f"--regions landmark: {exc}") from None
                self.landmark_reports[name] = report.to_json()
                logger.info("%s: %s", name, report.summary())
        if len(self.train_split) < 2 or len(self.val_split) < 1:
            raise ValueError(
                f"not enough data: {len(self.train_split)} training and {len(self.val_split)} validation images"
            )
        self.model = model_from_train_config(cfg, list(self.train_split.class_names))
        self.config: ModelConfig = self.model.config
        if cfg.freeze_stages:
            stages = backbone_stages(self.model.backbone)
            if cfg.freeze_stages > len(stages):
                raise ValueError(
                    f"--freeze-stages {cfg.freeze_stages}: the {cfg.backbone} backbone has {len(stages)} stages "
                    "(use --freeze-backbone to fix all of it for some epochs)"
                )
            # before DDP and the optimiser see them: they never get a gradient
            fixed = sum(p.numel() for s in fix_stages(self.model.backbone, cfg.freeze_stages) for p in s.parameters())
            total = sum(p.numel() for p in self.model.backbone.parameters())
            logger.info(
                "the first %d of the backbone's %d stages stay fixed (%s of its %s parameters)",
                cfg.freeze_stages,
                len(stages),
                f"{fixed:,}",
                f"{total:,}",
            )
        if cfg.init_from and not (self.resume and self.ckpt_path.is_file()):
            self.init_report = init_from_saved(self.model, cfg.init_from)
        self.amp = resolve_amp(cfg.amp, self.device)
        self.channels_last = True if cfg.channels_last is None else cfg.channels_last
        self.model.channels_last = self.channels_last
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model.to(self.device)
        self.soft = has_votes(cfg.dataset) and cfg.label_mode == "probability"
        size, c = self.config.input_size, self.config.num_classes
        train_ds = FaceDataset(self.train_split.samples, self.config, size, c, soft=self.soft)
        val_ds = FaceDataset(self.val_split.samples, self.config, size, c)
        bytes_needed = (len(train_ds) + len(val_ds)) * self.config.in_chans * size * size
        use_cache = cfg.cache == "memory" or (cfg.cache == "auto" and bytes_needed < 4e9)
        self.workers = cfg.workers if cfg.workers is not None else (4 if self.device.type == "cuda" else 2)
        if use_cache:
            self.train_src: CachedFaces | FaceDataset = cache_faces(train_ds, desc="decoding train")
            self.val_src: CachedFaces | FaceDataset = cache_faces(val_ds, desc="decoding valid")
            for name, src in (("train", self.train_src), ("valid", self.val_src)):
                if src.errors:
                    shown = "; ".join(e for _, e in src.errors[:3])
                    logger.warning("%d %s image(s) could not be read and are skipped: %s", len(src.errors), name, shown)
        else:
            self.train_src, self.val_src = train_ds, val_ds
        self.sample_weights = class_balanced_weights(self.train_split) if cfg.balanced else None
        k = self.config.regions.num_regions
        if cfg.model == "ran" and k > 1 and cfg.lambda_rb > 0:
            bound = max_rb_gap(k, self.config.attention_norm)
            if cfg.rb_margin >= bound:
                raise ValueError(
                    f"--rb-margin {cfg.rb_margin} can never be met: with attention_norm={self.config.attention_norm} "
                    f"and {k} regions the gap between the best crop and the whole face stays below {bound:.4f} "
                    "(see ran_core.losses.max_rb_gap); choose a smaller margin"
                )
        self.criterion = RANCriterion(cfg.lambda_rb, cfg.rb_margin, cfg.label_smoothing)
        aug = AugmentConfig.preset(cfg.augment, cfg.erase_fill, cfg.occlude_parts)
        self.batcher = RegionBatcher(self.config, aug, seed=cfg.seed + 1000 * self.rank)
        self.teacher: Teacher | None = None
        if cfg.teacher:
            self.teacher = Teacher(
                cfg.teacher,
                list(self.train_split.class_names),
                self.device,
                self.amp,
                student_landmarks=self.config.regions.scheme == "landmark",
            )
            logger.info(
                "distillation: targets = %.2f x labels + %.2f x the mean of %s",
                1 - cfg.teacher_weight,
                cfg.teacher_weight,
                self.teacher.describe(),
            )
        params = self.model.parameters()
        if cfg.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        elif cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = max(1, len(self._epoch_batches(0)))
        total = cfg.epochs * self.steps_per_epoch
        self.scheduler: Any
        if cfg.schedule == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
            )
        else:
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda(total))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == torch.float16)
        self.ema: AveragedModel | None = None
        if cfg.ema is not None:
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        self.net: nn.Module = self.model
        if _is_dist():
            ids = [self.device.index] if self.device.type == "cuda" else None
            # a fixed backbone gets no gradients in its epochs, which DDP must be told to expect
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=cfg.freeze_backbone > 0
            )
        self.history: list[dict[str, Any]] = []
        self.best_acc = -1.0
        self.start_epoch, self.start_step = 0, 0
        self.partial: dict[str, float] = {}
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if self.rank == 0:
            for stale in self.ckpt_path.parent.glob(".tmp-*.pt"):  # left by a run killed while writing
                stale.unlink(missing_ok=True)
        if self.resume and self.ckpt_path.is_file():
            self._load_checkpoint()
        elif self.resume:
            logger.info("no checkpoint at %s: starting a new run", self.ckpt_path)

    def _lr_lambda(self, total_steps: int):
        cfg = self.cfg
        if cfg.schedule == "steps":
            marks = [int(f * total_steps) for f in (0.3, 0.5, 0.8)]
            return lambda step: 0.1 ** sum(step >= m for m in marks)
        warm = min(self.steps_per_epoch, max(1, total_steps // 10))

        def cosine(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            t = (step - warm) / max(1, total_steps - warm)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        return cosine

    def _epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        n = len(self.train_split)
        if self.sample_weights is not None:
            g = torch.Generator().manual_seed(self.cfg.seed + epoch)
            w = torch.as_tensor(self.sample_weights, dtype=torch.double)
            order = torch.multinomial(w, n, replacement=True, generator=g)
            order = order[self.rank :: self.world]
        else:
            sampler = DistributedSampler(range(n), num_replicas=self.world, rank=self.rank, seed=self.cfg.seed)
            sampler.set_epoch(epoch)
            order = torch.tensor(list(sampler))
        bs = self.cfg.batch_size
        batches = list(order.split(bs))
        if len(batches) > 1 and len(batches[-1]) < 2:
            batches = batches[:-1]  # a final batch of one would break batch norm
        return batches

    # ------------------------------------------------------------------------------------------------ checkpoint
    def _state(self, epoch: int, step: int) -> dict[str, Any]:
        return {
            "format": "ran_core.train_state/1",
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            **({"ema": self.ema.state_dict()} if self.ema is not None else {}),
            "epoch": epoch,
            "step": step,
            "partial": dict(self.partial),
            "history": self.history,
            "best_acc": self.best_acc,
            "torch_rng": torch.get_rng_state(),
            "batcher": self.batcher.state_dict(),
            "config": self.cfg.to_dict(),
        }

    def save_checkpoint(self, epoch: int, step: int) -> None:
        if self.rank == 0:
            try:
                _atomic_torch_save(self._state(epoch, step), self.ckpt_path)
            except OSError as exc:
                raise CheckpointWriteError(
                    exc.errno,
                    f"could not write the checkpoint {self.ckpt_path} ({exc.strerror or exc}); the last good one is "
                    "kept: free some space and continue with --resume",
                ) from exc

    def _load_checkpoint(self) -> None:
        state = torch.load(self.ckpt_path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != "ran_core.train_state/1":
            raise ValueError(f"{self.ckpt_path} is not a ran_core training checkpoint")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if "ema" in state:
                self.ema.load_state_dict(state["ema"])
            else:
                logger.info("the checkpoint has no weight average: --ema starts from its weights")
        self.start_epoch, self.start_step = int(state["epoch"]), int(state["step"])
        self.partial = dict(state["partial"])
        self.history = list(state["history"])
        self.best_acc = float(state["best_acc"])
        torch.set_rng_state(state["torch_rng"])
        self.batcher.load_state_dict(state["batcher"])
        logger.info("resumed %s at epoch %d, step %d", self.ckpt_path, self.start_epoch + 1, self.start_step)

    # ------------------------------------------------------------------------------------------------------ loop
    def run(self) -> dict[str, Any]:
        """Train; returns the summary (best epoch and validation metrics)."""
        self._setup()
        cfg = self.cfg
        prev = signal.getsignal(signal.SIGTERM)
        if self.rank == 0 and _is_main_thread():
            signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            for epoch in range(self.start_epoch, cfg.epochs):
                if self._early_stopped():
                    break
                self._train_epoch(epoch)
                row = self._validate(epoch)
                if cfg.schedule == "plateau":
                    self.scheduler.step(row["val_loss"])
                self.partial, self.start_step = {}, 0
                self.save_checkpoint(epoch + 1, 0)
                if self.rank == 0:
                    self._log(row)
        except KeyboardInterrupt:
            logger.warning("interrupted: training state saved to %s; continue with --resume", self.ckpt_path)
            raise
        finally:
            if self.rank == 0 and _is_main_thread():
                signal.signal(signal.SIGTERM, prev)
        summary = self._summary()
        if _is_dist():
            dist.barrier()
        return summary

    def _early_stopped(self) -> bool:
        """True when the last ``early_stop`` epochs brought no better validation accuracy (read from the history,
        so a resumed run decides the same way)."""
        patience = self.cfg.early_stop
        if patience is None or len(self.history) <= patience:
            return False
        best_epoch = max(range(len(self.history)), key=lambda i: self.history[i]["val_acc"])
        if len(self.history) - 1 - best_epoch >= patience:
            logger.info(
                "early stop: no better validation accuracy for %d epochs (best %.2f%% at epoch %d)",
                patience,
                self.history[best_epoch]["val_acc"],
                best_epoch + 1,
            )
            return True
        return False

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._stop_requested = True

    def _set_train_mode(self, epoch: int) -> bool:
        """Training mode; during the first ``freeze_backbone`` epochs the backbone is fixed: its parameters need no
        gradient (so the optimiser skips them, weight decay included) and it runs in eval mode (batch-norm
        statistics kept). Returns whether it is fixed."""
        self.net.train()
        frozen = epoch < self.cfg.freeze_backbone
        backbone = self.model.backbone
        for p in backbone.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            backbone.eval()
        if self.cfg.freeze_stages:  # fixed in every epoch
            fix_stages(backbone, self.cfg.freeze_stages)
        return frozen

    def _train_epoch(self, epoch: int) -> None:
        cfg = self.cfg
        frozen = self._set_train_mode(epoch)
        batches = self._epoch_batches(epoch)
        p = self.partial
        loss_sum, correct, seen, skipped = p.get("loss", 0.0), p.get("correct", 0.0), p.get("seen", 0.0), 0
        bar = tqdm(
            total=len(batches),
            initial=self.start_step,
            desc=f"epoch {epoch + 1}/{cfg.epochs}" + (" (backbone fixed)" if frozen else ""),
            disable=self.rank != 0,
            dynamic_ncols=True,
        )
        t0, n0 = time.perf_counter(), seen
        step = self.start_step
        pin = self.device.type == "cuda"
        try:
            for batch in iterate_batches(self.train_src, batches[step:], workers=self.workers, pin_memory=pin):
                if batch["errors"]:
                    skipped += len(batch["errors"])
                    if skipped == len(batch["errors"]):
                        logger.warning("skipping unreadable image(s): %s", batch["errors"][0][1])
                if len(batch["index"]) < 2:
                    step += 1
                    bar.update(1)
                    continue
                faces, lm = self.batcher.augment_faces(
                    batch["image"].to(self.device, non_blocking=True), batch["landmarks"]
                )
                x = self.batcher.crop(faces, lm)
                target = batch["target"].to(self.device, non_blocking=True)
                hard = target.argmax(1) if target.is_floating_point() else target
                if self.teacher is not None:  # the teachers read the very faces the student does
                    target = mix_targets(target, self.teacher(faces, lm), cfg.teacher_weight)
                with torch.autocast(self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
                    out = self.net(x)
                loss, parts = self.criterion(out, target)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"the loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}; the last good "
                        f"checkpoint ({self.ckpt_path}) was kept. Lower --lr (now {cfg.lr}) or use --amp off."
                    )
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                if self.cfg.schedule != "plateau":
                    self.scheduler.step()
                if self.ema is not None:
                    self.ema.update_parameters(self.model)
                b = len(hard)
                loss_sum += float(parts["ce"]) * b
                correct += float((out.logits.argmax(1) == hard).sum())
                seen += b
                step += 1
                rate = (seen - n0) * self.world / max(1e-9, time.perf_counter() - t0)
                bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{100 * correct / seen:.1f}", fps=f"{rate:.0f}")
                bar.update(1)
                self.partial = {"loss": loss_sum, "correct": correct, "seen": seen}
                interrupted = self.interrupt_after_steps is not None and step >= self.interrupt_after_steps
                if interrupted or self._stop_requested:
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            self.save_checkpoint(epoch, step)
            raise
        finally:
            bar.close()
        totals = _all_sum(torch.tensor([loss_sum, correct, seen], dtype=torch.float64))
        elapsed = time.perf_counter() - t0
        self._epoch_train = {
            "train_loss": float(totals[0] / max(1, totals[2])),
            "train_acc": float(100 * totals[1] / max(1, totals[2])),
            "samples_per_s": float((seen - n0) * self.world / max(1e-9, elapsed)),
            "epoch_time_s": elapsed,
        }

    @property
    def _eval_model(self) -> nn.Module:
        """The weights that are validated and saved: the moving average when ``--ema`` is on."""
        return self.ema.module if self.ema is not None else self.model

    def _validate(self, epoch: int) -> dict[str, Any]:
        c = self.config.num_classes
        out = predict_split(
            self._eval_model,
            self.val_src,
            self.cfg.eval_batch_size,
            self.device,
            shard=(self.rank, self.world),
            amp=self.amp,
        )
        self.model.train()
        preds = out["probs"].argmax(1) if len(out["probs"]) else np.zeros(0, dtype=np.int64)
        cm = torch.from_numpy(confusion_matrix(out["targets"], preds, c))
        n_local = len(out["targets"])
        loss_local = out["loss"] * n_local if n_local else 0.0
        cm = _all_sum(cm)
        agg = _all_sum(torch.tensor([loss_local, n_local], dtype=torch.float64))
        metrics = SetMetrics.from_confusion(cm.numpy())
        row = {
            "epoch": epoch + 1,
            "lr": self.optimizer.param_groups[0]["lr"],
            **self._epoch_train,
            "val_loss": float(agg[0] / max(1, agg[1])),
            "val_acc": metrics.accuracy,
            "val_mca": metrics.mean_class_accuracy,
        }
        self.history.append(row)
        if metrics.accuracy > self.best_acc:
            self.best_acc = metrics.accuracy
            if self.rank == 0:
                self._save_best(row, metrics)
        return row

    def _save_best(self, row: dict[str, Any], metrics: SetMetrics) -> None:
        cfg = self.cfg
        provenance = {
            "dataset": cfg.dataset,
            "train_split": cfg.train_split,
            "val_split": cfg.val_split,
            "label_mode": cfg.label_mode,
            "recipe": cfg.recipe,
            "optimizer": cfg.optimizer,
            "lr": cfg.lr,
            "augment": {"preset": cfg.augment, "erase_fill": cfg.erase_fill, "occlude_parts": cfg.occlude_parts},
            "epochs": cfg.epochs,
            "best_epoch": row["epoch"],
            "metrics": {
                "val_accuracy": round(metrics.accuracy, 3),
                "val_mean_class_accuracy": round(metrics.mean_class_accuracy, 3),
                "val_per_class_accuracy": {
                    n: round(float(a), 3) for n, a in zip(self.config.class_names, metrics.per_class_accuracy())
                },
                "val_n": metrics.n,
            },
            "train_samples": len(self.train_split),
            "seed": cfg.seed,
            "regions_trained": {
                "scheme": self.config.regions.scheme,
                "num_regions": self.config.regions.num_regions,
                # Faces without landmarks were trained on the fixed crops (per face); how many is said here.
                **({"landmarks": self.landmark_reports} if self.landmark_reports else {}),
            },
        }
        if cfg.init_from:
            provenance["init_from"] = str(cfg.init_from)
        if cfg.ema is not None:
            provenance["ema"] = cfg.ema
        if cfg.freeze_backbone:
            provenance["freeze_backbone"] = cfg.freeze_backbone
        if cfg.freeze_stages:
            provenance["freeze_stages"] = cfg.freeze_stages
        if cfg.teacher:
            provenance["teacher"] = {"models": [str(t) for t in cfg.teacher], "weight": cfg.teacher_weight}
        save_model(self._eval_model, self.run_dir / "best", provenance=provenance)

    def _log(self, row: dict[str, Any]) -> None:
        path = self.run_dir / "metrics.csv"
        new = not path.exists() or row["epoch"] == 1
        with path.open("w" if new else "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new:
                writer.writeheader()
            writer.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            pass
        else:
            with SummaryWriter(str(self.run_dir / "tb")) as tb:
                for k, v in row.items():
                    if k != "epoch":
                        tb.add_scalar(k, v, row["epoch"])
        logger.info(
            "epoch %d: train loss %.4f acc %.2f%% | valid loss %.4f acc %.2f%% (mean-class %.2f%%) | %.0f samples/s",
            row["epoch"],
            row["train_loss"],
            row["train_acc"],
            row["val_loss"],
            row["val_acc"],
            row["val_mca"],
            row["samples_per_s"],
        )

    def _summary(self) -> dict[str, Any]:
        best = max(self.history, key=lambda r: r["val_acc"]) if self.history else {}
        summary = {"run_dir": str(self.run_dir), "best": best, "epochs_done": len(self.history)}
        if self.rank == 0 and self.history:
            from ran_core.engine.plots import plot_curves

            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
            plot_curves(self.history, self.run_dir / "curves.png", title=f"{self.config.name} on {self.cfg.dataset}")
        return summary


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
