"""``ran-core train``: train RAN or the baseline; see :class:`ran_core.engine.trainer.TrainConfig` for every option."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ran_core.cli import DefaultsHelpFormatter
from ran_core.config import TTA_MODES

logger = logging.getLogger(__name__)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text + " Flags override --config; the resolved config is written to OUT/config.yaml. "
        "Under `torchrun --nproc_per_node N` the same command trains with DistributedDataParallel.",
        formatter_class=DefaultsHelpFormatter,
    )
    a = p.add_argument
    # Every default is None so that only flags actually given override the --config file (defaults: TrainConfig).
    a("--config", type=Path, help="YAML file of options (keys as in OUT/config.yaml)")
    a("--dataset", choices=["ferplus", "rafdb", "affectnet", "sfew", "folder"], help="dataset layout [ferplus]")
    a("--data-root", help="dataset root folder")
    a("--out", help="run directory [runs/ran]")
    a("--model", choices=["ran", "baseline"], help="RAN or the whole-face baseline [ran]")
    a("--backbone", help="compact, compact_wide, compact_deep, sepconv(_wide), resnet18/34/50 or vgg16 [compact]")
    a("--pretrained", help="local backbone checkpoint to start from (e.g. an MS-Celeb-1M ResNet-18)")
    a("--regions", choices=["fixed", "random", "landmark"], help="region scheme [fixed]")
    a(
        "--region-names",
        nargs="+",
        help="fixed regions to use, 'face' first; known: face top_left top_right center_down center_95 center_90 "
        "center_75 center_top bottom (mouth and chin, not in the paper) [face top_left top_right center_down "
        "center_90 center_75]",
    )
    a("--num-random", type=int, help="regions of the random scheme [6]")
    a("--landmark-ratio", type=float, help="landmark square side / face side [0.4]")
    a(
        "--landmark-detector",
        help="detector that finds landmarks once for --regions landmark on datasets without them [auto]",
    )
    a("--landmark-cache", help="folder of the landmark cache [~/.cache/ran_core/landmarks]")
    a("--input-size", type=int, help="crop side in pixels [the backbone's: 48 compact, 224 others]")
    a("--color-mode", choices=["gray", "rgb"], help="[the backbone's: gray compact, rgb others]")
    a("--attention-norm", choices=["softmax", "none"], help="softmax alpha/beta across regions (official) [softmax]")
    a("--drop-rate", type=float, help="dropout before the classifier [0.5]")
    a("--attention-dropout", type=_bool, help="dropout also before the alpha/beta layers (not official) [false]")
    a("--tta", choices=TTA_MODES, help="test-time augmentation saved with the model and used to validate [none]")
    a("--label-mode", choices=["majority", "probability"], help="FERPlus training targets [majority]")
    a("--num-classes", type=int, choices=[7, 8], help="AffectNet setting [8]")
    a("--epochs", type=int, help="[30]")
    a("--batch-size", type=int, help="[64]")
    a("--lr", type=float, help="peak learning rate [0.01 official, 0.002 modern]")
    a("--recipe", choices=["official", "modern"], help="official: SGD+steps; modern: AdamW+cosine+augmentation")
    a("--optimizer", choices=["sgd", "adam", "adamw"], help="[sgd official, adamw modern]")
    a(
        "--schedule",
        choices=["steps", "cosine", "plateau"],
        help="learning-rate schedule [steps official, cosine modern]",
    )
    a("--plateau-patience", type=int, help="epochs without a lower validation loss before halving the lr [5]")
    a("--plateau-factor", type=float, help="lr factor of the plateau schedule [0.5]")
    a("--early-stop", type=int, help="stop after this many epochs without a better validation accuracy [never]")
    a(
        "--ema",
        type=float,
        help="validate and save an exponential moving average of the weights with this decay per step, e.g. 0.999 "
        "[off]",
    )
    a(
        "--augment",
        choices=["none", "official", "modern", "strong"],
        help="augmentation preset [official or modern, by recipe]; strong = rotation 30, shift/shear/zoom 20%%, "
        "brightness x0.2-1.2, erasing",
    )
    a(
        "--erase-fill",
        choices=["gray", "black", "mixed"],
        help="fill of the erased rectangles of --augment modern/strong: gray, black, or mixed (black, gray or noise "
        "per face) [gray]",
    )
    a(
        "--occlude-parts",
        type=float,
        help="probability of covering a whole face part in training (eye band, mouth and chin, or the upper, lower, "
        "left or right half, edges jittered by 8%% of the face; filled as --erase-fill) [0]",
    )
    a(
        "--init-from",
        help="saved model, bundled name or run directory to start from (e.g. a trained baseline gives RAN its "
        "backbone)",
    )
    a(
        "--freeze-backbone",
        type=int,
        metavar="N",
        help="keep the --init-from backbone fixed for the first N epochs while the attention and classifier learn, "
        "then train everything (linear probe, then fine-tuning) [0]",
    )
    a(
        "--freeze-stages",
        type=int,
        metavar="N",
        help="keep the first N stages of the --init-from backbone (stem first) fixed for the whole run: its "
        "low-level features stay as trained and each step is cheaper [0]",
    )
    a(
        "--teacher",
        nargs="+",
        metavar="MODEL",
        help="knowledge distillation: saved models (or bundled names) whose mean probabilities on each step's "
        "augmented faces join the targets (their logit adjustment left out) [none]",
    )
    a(
        "--teacher-weight",
        type=float,
        metavar="W",
        help="the teachers' share of the targets: (1 - W) x labels + W x teachers [0.5]",
    )
    a("--weight-decay", type=float, help="[1e-4 official, 0.05 modern]")
    a("--label-smoothing", type=float, help="[0 official, 0.1 modern]")
    a("--lambda-rb", type=float, help="weight of the region-biased loss [1.0]")
    a("--rb-margin", type=float, help="margin of the region-biased loss [0.02]")
    a("--device", help="auto, cpu or cuda [auto]")
    a("--amp", choices=["auto", "off", "bf16", "fp16"], help="mixed precision [auto]")
    a("--channels-last", type=_bool, help="NHWC tensors [true]")
    a("--workers", type=int, help="DataLoader workers when not caching [4 cuda, 2 cpu]")
    a("--cache", choices=["auto", "memory", "none"], help="decode images into memory once [auto: if < 4 GB]")
    a("--max-samples", type=int, help="cap per split, for smoke runs")
    a("--balanced", type=_bool, help="class-balanced sampling [false]")
    a("--seed", type=int, help="[0]")
    a("--train-split", help="[train]")
    a("--val-split", help="split to select the best model on [valid]")
    a("--eval-batch-size", type=int, help="[256]")
    a(
        "--resume",
        action="store_true",
        help="continue OUT/checkpoints/last.pt (with OUT/config.yaml as the base config)",
    )
    return p


def run(args: argparse.Namespace) -> int:
    from ran_core.engine.trainer import CheckpointWriteError, TrainConfig, Trainer, TrainingDiverged

    keys = [k for k in vars(args) if k not in ("config", "resume", "command", "_run", "verbose")]
    overrides = {k: getattr(args, k) for k in keys}
    config_file = args.config
    if args.resume and args.out and config_file is None and (Path(args.out) / "config.yaml").is_file():
        config_file = Path(args.out) / "config.yaml"
    try:
        cfg = TrainConfig.from_sources(config_file, **overrides)
    except (ValueError, OSError, TypeError) as exc:
        print(f"ran-core train: {exc}", file=sys.stderr)
        return 2
    try:
        summary = Trainer(cfg, resume=args.resume).run()
    except KeyboardInterrupt:
        print(f"Interrupted. Resume with: ran-core train --out {cfg.out} --resume", file=sys.stderr)
        return 130
    except TrainingDiverged as exc:
        print(f"ran-core train: {exc}", file=sys.stderr)
        return 3
    except CheckpointWriteError as exc:
        print(f"ran-core train: {exc.strerror}", file=sys.stderr)
        return 4
    except (FileNotFoundError, ValueError) as exc:
        print(f"ran-core train: {exc}", file=sys.stderr)
        return 2
    best = summary.get("best", {})
    if best:
        print(
            f"best valid accuracy {best['val_acc']:.2f}% (mean-class {best['val_mca']:.2f}%) at epoch {best['epoch']}; "
            f"model saved in {Path(cfg.out) / 'best'}"
        )
    print(json.dumps({"run_dir": summary["run_dir"], "epochs_done": summary["epochs_done"]}))
    return 0
