"""``ran-core calibrate``: fit a logit adjustment (and choose test-time augmentation) on a validation split and save
the model with it, so every tool that loads the model gives the adjusted answers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from ran_core.cli import DefaultsHelpFormatter
from ran_core.config import TTA_MODES


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text
        + " The bias is -tau*log(prior) with the prior counted on the training split; tau is the one with the best "
        "mean-class accuracy whose accuracy stays within --max-drop points of the unadjusted model.",
        formatter_class=DefaultsHelpFormatter,
    )
    a = p.add_argument
    a("--checkpoint", required=True, help="saved model folder, training run folder, or bundled model name")
    a("--dataset", required=True, choices=["ferplus", "rafdb", "affectnet", "sfew", "folder"])
    a("--data-root", required=True, help="dataset root folder")
    a("--split", default="valid", help="split to fit on")
    a("--prior-split", default="train", help="split whose class frequencies are the prior")
    a("--out", type=Path, required=True, help="folder for the adjusted saved model, calibration.json and a plot")
    a("--max-drop", type=float, default=0.5, help="accepted loss of overall accuracy, in points")
    a(
        "--min-mean-class",
        type=float,
        help="instead of the best mean-class accuracy, the most accurate tau whose mean-class accuracy reaches this "
        "(in %%, within --max-drop; if none does, the best mean-class accuracy)",
    )
    a("--tta", choices=TTA_MODES, help="test-time augmentation to fit with and save (default: the model's)")
    a("--num-classes", type=int, choices=[7, 8], help="AffectNet setting (default: the model's class count)")
    a("--batch-size", type=int, default=128, help="faces per step")
    a("--device", default="auto", help="auto, cpu or cuda")
    a("--max-samples", type=int, help="use at most N images (smoke runs)")
    return p


def run(args: argparse.Namespace) -> int:
    from ran_core.data import open_dataset
    from ran_core.devices import resolve_device
    from ran_core.engine.calibrate import fit_tau
    from ran_core.engine.evaluate import evaluate
    from ran_core.engine.plots import plot_calibration
    from ran_core.saved_model import ModelLoadError, load_model, save_model

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"ran-core calibrate: {exc}", file=sys.stderr)
        return 2
    try:
        model = load_model(args.checkpoint, device=device)
    except ModelLoadError as exc:
        print(f"ran-core calibrate: {exc}", file=sys.stderr)
        return 2
    cfg = model.config
    num_classes = args.num_classes or cfg.num_classes
    try:
        split = open_dataset(args.dataset, args.data_root, args.split, "majority", num_classes, args.max_samples)
        prior_split = open_dataset(args.dataset, args.data_root, args.prior_split, "majority", num_classes)
    except (FileNotFoundError, ValueError) as exc:
        print(f"ran-core calibrate: {exc}", file=sys.stderr)
        return 2
    previous = cfg.logit_bias
    cfg.logit_bias = None  # fit on the model's own probabilities
    if args.tta:
        cfg.tta = args.tta
    bar = tqdm(total=len(split), desc=f"predicting {args.split}", unit="img")
    try:
        res = evaluate(model, split, None, args.batch_size, device, progress=lambda d, t: bar.update(d - bar.n))
        cal = fit_tau(
            res.probs, res.targets, prior_split.class_counts(), args.max_drop, min_mean_class=args.min_mean_class
        )
    except ValueError as exc:
        print(f"ran-core calibrate: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    cfg.logit_bias = cal.bias if cal.tau > 0 else None
    args.out.mkdir(parents=True, exist_ok=True)
    save_model(
        model,
        args.out,
        provenance={
            "calibration": {
                "dataset": args.dataset,
                "split": args.split,
                "prior_split": args.prior_split,
                "tau": cal.tau,
                "max_drop": args.max_drop,
                "min_mean_class": args.min_mean_class,
                "tta": cfg.tta,
                "base": cal.base,
                "chosen": cal.chosen,
                "replaced_logit_bias": previous,
            }
        },
    )
    (args.out / "calibration.json").write_text(json.dumps(cal.to_json(), indent=2) + "\n")
    plot_calibration(cal, args.out / "calibration.png", title=f"{Path(str(args.checkpoint)).name}: logit adjustment")
    b, c = cal.base, cal.chosen
    print(
        f"tta={cfg.tta}: accuracy {b['accuracy']:.2f}% -> {c['accuracy']:.2f}%, mean-class "
        f"{b['mean_class_accuracy']:.2f}% -> {c['mean_class_accuracy']:.2f}% at tau={cal.tau:g} "
        f"(accepted accuracy loss {args.max_drop:g} points)"
    )
    if args.min_mean_class is not None and c["mean_class_accuracy"] < args.min_mean_class:
        print(f"no tau within {args.max_drop:g} points reaches mean-class {args.min_mean_class:g}%: kept the best one")
    print(f"wrote the adjusted model to {args.out} (with calibration.json and calibration.png)")
    return 0
