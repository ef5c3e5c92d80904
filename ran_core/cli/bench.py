"""``ran-core bench``: measure latency and throughput on this machine and say which settings are fastest."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ran_core.config import TTA_MODES

SECTIONS = ("regions", "inference", "training", "camera")


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text
        + " Sections: (a) batched regions vs the official per-region loop, (b) inference throughput, (c) training"
        " throughput and memory, (d) the live camera path on a recorded 640x480 video.",
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="also write every number to this JSON file")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: auto (CUDA if any)")
    p.add_argument(
        "--model", help="RAN model: saved model or registered name (default: bundled ran-ferplus, else ran_compact)"
    )
    p.add_argument(
        "--baseline", help="baseline model likewise (default: bundled baseline-ferplus, else baseline_compact)"
    )
    p.add_argument(
        "--input-size", type=int, metavar="PX", help="input size of models given as registered names (e.g. 112)"
    )
    p.add_argument("--detector", default="auto", help="face detector for the camera path (default: auto)")
    p.add_argument(
        "--camera-tta",
        choices=TTA_MODES,
        help="test-time augmentation of the camera path (default: the model's saved one), as ran-viewer --camera-tta",
    )
    p.add_argument("--quick", action="store_true", help="small batches and short timings: a fast rough look")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), metavar="S", help=f"any of {SECTIONS}"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from ran_core.bench import BenchPlan, format_report, run_bench
    from ran_core.saved_model import ModelLoadError

    if args.threads:
        torch.set_num_threads(args.threads)
    plan = BenchPlan.quick() if args.quick else BenchPlan.full()
    try:
        result = run_bench(
            model=args.model,
            baseline=args.baseline,
            device=args.device,
            plan=plan,
            detector=args.detector,
            sections=args.sections,
            progress=not args.no_progress,
            input_size=args.input_size,
            camera_tta=args.camera_tta,
        )
    except (ModelLoadError, ValueError) as exc:
        print(f"ran-core bench: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")
        print(f"\nwrote {args.json}")
    return 0
