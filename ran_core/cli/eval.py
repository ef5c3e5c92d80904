"""``ran-core eval``: accuracy, mean-class accuracy and confusion matrices, overall and on occlusion/pose subsets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from ran_core.config import TTA_MODES


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    a = p.add_argument
    a("--checkpoint", required=True, help="saved model folder, training run folder, or bundled model name")
    a("--dataset", required=True, choices=["ferplus", "rafdb", "affectnet", "sfew", "folder"])
    a("--data-root", required=True, help="dataset root folder")
    a("--split", default="test", help="split to evaluate (default: test; FERPlus users without the test set: valid)")
    a("--subset-lists", type=Path, help="folder of the RAN authors' occlusion/pose lists")
    a("--out", type=Path, required=True, help="output folder for metrics.json and confusion-matrix PNGs")
    a("--compare", help="a second model evaluated in the same run (e.g. the baseline); differences are reported")
    a("--num-classes", type=int, choices=[7, 8], help="AffectNet setting (default: the model's class count)")
    a(
        "--occlude",
        choices=["eyes", "mouth", "lower_half", "left_half", "random"],
        help="black out this part of every face (a reproducible synthetic occlusion test)",
    )
    photo = p.add_argument_group(
        "photo path",
        "also run every face through the photo path (detect, align, regions: what `predict` does), pasted "
        "upscaled into a larger picture, and compare its accuracy with the dataset-framed one",
    )
    photo.add_argument("--through-predict", action="store_true", help="evaluate the photo path too")
    photo.add_argument("--upscale", type=int, default=192, help="face side in the picture (default: 192 px)")
    photo.add_argument("--canvas", type=int, default=320, help="picture side (default: 320 px)")
    photo.add_argument("--detector", default="mtcnn", help="face detector for the photo path (default: mtcnn)")
    a("--tta", choices=TTA_MODES, help="test-time augmentation (default: the one saved with each model)")
    a(
        "--pose-bins",
        action="store_true",
        help="accuracy by estimated |yaw| (<15, 15-30, 30-45, >=45 degrees, unknown) from landmarks found once and "
        "cached; also writes OUT/per_image.csv (image,true,pred,yaw,pitch,roll)",
    )
    a(
        "--by-agreement",
        action="store_true",
        help="accuracy by how many annotators chose each face's label (FERPlus votes: 50-60%%, ..., 90-100%%), "
        "to tell errors on faces people read alike from errors on faces people dispute",
    )
    a(
        "--deletion",
        action="store_true",
        help="region deletion curves: cover regions by decreasing / increasing weight and at random, record accuracy; "
        "writes OUT/deletion.json and OUT/deletion.png",
    )
    a("--deletion-orders", type=int, default=3, help="random orders averaged for the deletion curve (default: 3)")
    a(
        "--landmark-detector",
        default="auto",
        help="for landmark-region models on datasets without landmarks: the detector that finds them once (cached)",
    )
    a("--batch-size", type=int, default=128)
    a("--device", default="auto", help="auto, cpu or cuda")
    a("--workers", type=int, default=2, help="image decoding processes")
    a("--max-samples", type=int, help="evaluate at most N images (smoke runs)")
    return p


def _table(results: list, labels: list[str]) -> str:
    sets = ["overall", *results[0].subsets]
    width = max(16, *(len(lab) + 2 for lab in labels))  # each model's full name heads its accuracy column
    head = f"{'set':<12}{'n':>7}{'missing':>9}" + "".join(f"{lab:>{width}}{'mean-class':>12}" for lab in labels)
    if len(results) == 2:
        head += f"{'diff':>9}"
    lines = [head, "-" * len(head)]
    for s in sets:
        ms = [r.overall if s == "overall" else r.subsets[s] for r in results]
        line = f"{s:<12}{ms[0].n:>7}{ms[0].missing:>9}"
        if ms[0].n == 0:
            lines.append(line + "   no image of this list is in the evaluated split")
            continue
        for m in ms:
            line += f"{m.accuracy:>{width - 1}.2f}%{m.mean_class_accuracy:>11.2f}%"
        if len(ms) == 2:
            line += f"{ms[0].accuracy - ms[1].accuracy:>+8.2f}%"
        lines.append(line)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ran_core.data import load_subset_lists, open_dataset
    from ran_core.devices import resolve_device
    from ran_core.engine.evaluate import evaluate
    from ran_core.engine.plots import plot_confusion
    from ran_core.saved_model import ModelLoadError, load_model

    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        print(f"ran-core eval: {exc}", file=sys.stderr)
        return 2
    models = []
    for ref in [args.checkpoint] + ([args.compare] if args.compare else []):
        try:
            if str(ref).endswith(".onnx"):  # an exported model, run by ONNX Runtime (ran-core export)
                from ran_core.export import OnnxModel

                models.append((ref, OnnxModel(ref)))
            else:
                models.append((ref, load_model(ref, device=device)))
        except (ModelLoadError, FileNotFoundError, RuntimeError) as exc:
            print(f"ran-core eval: {exc}", file=sys.stderr)
            return 2
    num_classes = args.num_classes or models[0][1].config.num_classes
    try:
        split = open_dataset(args.dataset, args.data_root, args.split, "majority", num_classes, args.max_samples)
        subsets = load_subset_lists(args.dataset, args.subset_lists) if args.subset_lists else {}
    except (FileNotFoundError, ValueError) as exc:
        print(f"ran-core eval: {exc}", file=sys.stderr)
        return 2
    if args.pose_bins or any(m.config.regions.scheme == "landmark" for _, m in models):
        from ran_core.data.landmarks import attach_landmarks
        from ran_core.faces import DetectorUnavailable

        try:
            report = attach_landmarks(split, args.landmark_detector)
        except DetectorUnavailable as exc:
            print(f"ran-core eval: landmark regions: {exc}", file=sys.stderr)
            return 2
        print(report.summary(), file=sys.stderr)
    shares = None
    if args.by_agreement:
        from ran_core.engine.agreement import split_agreements

        try:
            shares = split_agreements(split)
        except ValueError as exc:
            print(f"ran-core eval: {exc}", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    results, labels = [], []
    for ref, model in models:
        label = Path(str(ref)).name or str(ref)
        bar = tqdm(total=len(split), desc=f"evaluating {label}", unit="img")

        def progress(done: int, total: int, bar: tqdm = bar) -> None:
            bar.update(done - bar.n)

        try:
            res = evaluate(
                model,
                split,
                subsets,
                args.batch_size,
                device,
                progress=progress,
                workers=args.workers,
                occlusion=args.occlude,
                tta=args.tta,
            )
        except ValueError as exc:
            print(f"ran-core eval: {exc}", file=sys.stderr)
            return 2
        finally:
            bar.close()
        results.append(res)
        labels.append(label)
    main = results[0].to_json()
    main["dataset"] = {"name": args.dataset, "root": str(args.data_root), "split": args.split, "n_listed": len(split)}
    main["occlusion"] = args.occlude
    main["tta"] = args.tta or models[0][1].config.tta
    if results[0].unreadable:
        print(f"warning: {results[0].unreadable} image(s) could not be read and were left out", file=sys.stderr)
    if len(results) == 2:
        other = results[1].to_json()
        diff = {
            s: {
                k: round(a[k] - b[k], 4)
                for k in ("accuracy", "mean_class_accuracy")
                if a[k] is not None and b[k] is not None
            }
            for s, a, b in [("overall", main["overall"], other["overall"])]
            + [(s, main["subsets"][s], other["subsets"][s]) for s in main["subsets"]]
        }
        main["compare"] = {**other, "difference": diff}
    if args.pose_bins:
        from ran_core.engine.pose_bins import pose_bin_metrics, split_poses, write_per_image_csv

        poses = split_poses(split)
        bins = [pose_bin_metrics(r, poses) for r in results]
        main["pose_bins"] = bins[0]
        if len(results) == 2:
            main["compare"]["pose_bins"] = bins[1]
        write_per_image_csv(args.out / "per_image.csv", results, labels, poses)
        print(_pose_table(bins, labels))
    if shares is not None:
        from ran_core.engine.agreement import agreement_bin_metrics

        bins = [agreement_bin_metrics(r, shares) for r in results]
        main["agreement_bins"] = bins[0]
        if len(results) == 2:
            main["compare"]["agreement_bins"] = bins[1]
        print(_agreement_table(bins, labels))
    if args.deletion:
        main["deletion"] = _deletion(args, models, split, labels)
    if args.through_predict:
        try:
            main["through_predict"] = _through_predict(args, models, results, split, labels)
        except (ValueError, RuntimeError) as exc:
            print(f"ran-core eval: photo path: {exc}", file=sys.stderr)
            return 2
    (args.out / "metrics.json").write_text(json.dumps(main, indent=2) + "\n")
    for res, label in zip(results, labels):
        prefix = "" if res is results[0] else f"{label}_"
        sets = {"overall": res.overall, **res.subsets}
        for name, m in sets.items():
            if m.n == 0:
                continue
            for norm in (False, True):
                suffix = "normalized" if norm else "counts"
                plot_confusion(
                    m.confusion,
                    res.class_names,
                    args.out / f"{prefix}confusion_{name}_{suffix}.png",
                    title=f"{label} - {name} (n={m.n})",
                    normalize=norm,
                )
    print(_table(results, labels))
    print(f"\nwrote {args.out / 'metrics.json'} and confusion matrices to {args.out}")
    return 0


def _deletion(args: argparse.Namespace, models: list, split, labels: list[str]) -> dict:
    """Deletion curves of every model on the same boxes; writes deletion.json / deletion.png, prints a summary."""
    from ran_core.data.pipeline import FaceDataset, cache_faces
    from ran_core.engine.deletion import deletion_curves
    from ran_core.engine.plots import plot_deletion

    regions = next((m.config.regions for _, m in models if m.config.arch == "ran"), None)
    results = {}
    for (_, model), label in zip(models, labels):
        cfg = model.config
        cache = cache_faces(FaceDataset(split.samples, cfg, cfg.input_size, cfg.num_classes), desc="decoding")
        bar = tqdm(total=len(split), desc=f"deletion curves {label}", unit="img")
        try:
            results[label] = deletion_curves(
                model,
                cache,
                regions,
                args.batch_size,
                args.deletion_orders,
                device=model_device(model),
                progress=lambda d, t, bar=bar: bar.update(d - bar.n),
                tta=args.tta,
            )
        finally:
            bar.close()
    report = {label: r.to_json() for label, r in results.items()}
    first = report[labels[0]]
    if len(labels) == 2:
        first = {**first, "compare": {"model": labels[1], **report[labels[1]]}}
    (args.out / "deletion.json").write_text(json.dumps(first, indent=2) + "\n")
    plot_deletion(results, args.out / "deletion.png", title=f"region deletion on {args.dataset} {args.split}")
    print("\nregion deletion (accuracy after covering 0..K-1 regions; AUC = mean accuracy, lower = falls faster)")
    for label, r in results.items():
        for order, acc in r.accuracy.items():
            curve = " ".join(f"{v:5.1f}" for v in acc)
            print(f"{label:<24}{order:<10}{curve}   AUC {r.auc[order]:.2f}")
    return report


def _bin_accuracies(bins: list[dict], name: str) -> str:
    """Each model's accuracy in bin ``name``, one 24-character column a model (``-`` for an empty bin)."""
    return "".join(
        f"{'-' if b[name]['accuracy'] is None else format(b[name]['accuracy'], '.2f') + '%':>24}" for b in bins
    )


def _pose_table(bins: list[dict], labels: list[str]) -> str:
    lines = [f"{'|yaw|':<10}{'n':>7}{'mean yaw':>10}" + "".join(f"{lab:>24}" for lab in labels)]
    for name, row in bins[0].items():
        mean = "" if row["mean_yaw"] is None else f"{row['mean_yaw']:.1f}"
        accs = _bin_accuracies(bins, name)
        lines.append(f"{name:<10}{row['n']:>7}{mean:>10}{accs}")
    return "\naccuracy by estimated head pose\n" + "\n".join(lines)


def _agreement_table(bins: list[dict], labels: list[str]) -> str:
    total = sum(row["n"] for row in bins[0].values()) or 1
    errors = sum(row["errors"] for row in bins[0].values()) or 1
    head = f"{'agreement':<11}{'n':>7}{'share':>8}" + "".join(f"{lab:>24}" for lab in labels)
    lines = [head + f"{'share of errors':>17}"]
    for name, row in bins[0].items():
        accs = _bin_accuracies(bins, name)
        share, err = 100 * row["n"] / total, 100 * row["errors"] / errors
        lines.append(f"{name:<11}{row['n']:>7}{share:>7.1f}%{accs}{err:>16.1f}%")
    return f"\naccuracy by annotator agreement (share of votes for the label; errors of {labels[0]})\n" + "\n".join(
        lines
    )


def _through_predict(args: argparse.Namespace, models: list, results: list, split, labels: list[str]) -> dict:
    """The photo path on the same faces; prints a comparison and returns it for metrics.json."""
    import numpy as np

    from ran_core.engine.pipeline_eval import evaluate_through_predictor
    from ran_core.predictor import Predictor

    predictors = [
        Predictor(model, detector=args.detector, device=model_device(model), tta=args.tta) for _, model in models
    ]
    bar = tqdm(total=len(split), desc=f"photo path ({args.detector})", unit="img")
    try:
        photo = evaluate_through_predictor(
            predictors, split, args.upscale, args.canvas, progress=lambda d, t: bar.update(d - bar.n)
        )
    finally:
        bar.close()
    report = {"upscale": args.upscale, "canvas": args.canvas, "detector": args.detector, "models": {}}
    print(
        f"\nphoto path: faces upscaled to {args.upscale} px in {args.canvas} px pictures, detector {args.detector}: "
        f"found {photo[0].found} of {photo[0].n}"
    )
    print(f"{'model':<24}{'eval':>9}{'photo path':>12}{'gap':>8}{'on found':>10}{'eval on found':>15}")
    for label, res, ph in zip(labels, results, photo):
        by_path = dict(zip(res.paths, res.preds))
        found = ph.preds >= 0
        eval_preds = np.array([by_path.get(str(split.samples[i].path), -1) for i in ph.indices])
        t = np.array([split.samples[i].label for i in ph.indices])
        eval_all = 100.0 * float((eval_preds == t).mean()) if len(t) else float("nan")
        eval_found = 100.0 * float((eval_preds[found] == t[found]).mean()) if found.any() else float("nan")
        gap = ph.overall.accuracy - eval_all
        print(
            f"{label:<24}{eval_all:>8.2f}%{ph.overall.accuracy:>11.2f}%{gap:>+7.2f}{ph.on_found.accuracy:>9.2f}%"
            f"{eval_found:>14.2f}%"
        )
        report["models"][label] = {**ph.to_json(), "eval_accuracy": eval_all, "eval_accuracy_on_found": eval_found}
    return report


def model_device(model):
    """Where a model's weights are (the CPU for an ONNX Runtime model)."""
    import torch

    params = getattr(model, "parameters", None)
    return next(params()).device if params is not None else torch.device("cpu")
