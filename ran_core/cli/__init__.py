"""The ``ran-core`` command line: ``train``, ``eval``, ``calibrate``, ``average``, ``predict``, ``export``, ``bench``.

Each subcommand lives in its own module exposing ``add_parser(subparsers)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

SUBCOMMANDS = {
    "train": "Train RAN or the baseline on a dataset.",
    "eval": "Evaluate a model (and the occlusion/pose subsets); write metrics.json and confusion matrices.",
    "calibrate": "Fit a logit adjustment for rare classes on a validation split and save the model with it.",
    "average": "Average the weights of models fine-tuned from one parent (a model soup) into one saved model.",
    "predict": "Detect faces in images or videos and classify their expressions.",
    "export": "Write a saved model as ONNX (with its config beside it) for ONNX Runtime and other runtimes.",
    "bench": "Measure latency and throughput on this machine.",
}


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help when it has a real default and its help does not already say it.

    argparse's ``ArgumentDefaultsHelpFormatter`` also writes ``(default: None)`` for options without one, which
    ``train`` has for every flag (None lets only the flags given override ``--config``; its help names the defaults
    in brackets instead) and ``calibrate`` for its required ones."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.default is None
            or action.default is argparse.SUPPRESS
            or action.default is False
            or not action.option_strings
            or "default" in text  # the help already says it, in its own words or as %(default)s
        ):
            return text
        return text + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    from ran_core import __version__

    parser = argparse.ArgumentParser(
        prog="ran-core",
        description="Pose- and occlusion-robust facial expression recognition with Region Attention Networks.",
    )
    parser.add_argument("--version", action="version", version=f"ran-core {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS.items():
        module = importlib.import_module(f"ran_core.cli.{name}")
        p = module.add_parser(sub, name, help_text)
        p.set_defaults(_run=module.run)
    return parser


def configure_logging(verbose: bool = False) -> None:
    """ran_core's own messages at INFO (DEBUG with ``--verbose``); other libraries' (the ONNX exporter's, onnxscript's)
    only from WARNING up unless ``--verbose``."""
    logging.basicConfig(format="%(levelname)s: %(message)s")
    logging.getLogger().setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("ran_core").setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
