"""`ran-core train` (not implemented yet)."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_text + " [not implemented yet]", description=help_text)


def run(args: argparse.Namespace) -> int:
    print("ran-core train is not implemented yet in this version.", file=sys.stderr)
    return 2
