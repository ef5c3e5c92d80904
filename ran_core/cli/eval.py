"""``ran-core eval``: accuracy, mean-class accuracy and confusion matrices, overall and on occlusion/pose subsets."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm


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
    from ran_core.engine.evaluate import evaluate
    from ran_core.engine.plots import plot_confusion
    from ran_core.engine.trainer import resolve_device
    from ran_core.saved_model import ModelLoadError, load_model

    device = resolve_device(args.device)
    models = []
    for ref in [args.checkpoint] + ([args.compare] if args.compare else []):
        try:
            models.append((ref, load_model(ref, device=device)))
        except ModelLoadError as exc:
            print(f"ran-core eval: {exc}", file=sys.stderr)
            return 2
    num_classes = args.num_classes or models[0][1].config.num_classes
    try:
        split = open_dataset(args.dataset, args.data_root, args.split, "majority", num_classes, args.max_samples)
        subsets = load_subset_lists(args.dataset, args.subset_lists) if args.subset_lists else {}
    except (FileNotFoundError, ValueError) as exc:
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
