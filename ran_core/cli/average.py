"""``ran-core average``: save the weighted mean of the weights of several saved models (a model soup)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text
        + " For example runs started with --init-from the same model, whose mean often predicts better than each; "
        "evaluate the result, and fit its logit adjustment again with ran-core calibrate (a source's adjustment is "
        "dropped).",
    )
    a = p.add_argument
    a("models", nargs="+", help="saved model folders, training run folders or bundled model names (two or more)")
    a("--weights", type=float, nargs="+", help="one weight per model (default: equal)")
    a("--out", type=Path, required=True, help="folder for the averaged saved model")
    return p


def run(args: argparse.Namespace) -> int:
    from ran_core.engine.average import average_models
    from ran_core.saved_model import ModelLoadError, save_model

    try:
        model = average_models(args.models, args.weights)
    except (ModelLoadError, ValueError) as exc:
        print(f"ran-core average: {exc}", file=sys.stderr)
        return 2
    save_model(model, args.out)
    print(f"averaged {len(args.models)} models into {args.out}")
    return 0
