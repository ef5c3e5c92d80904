"""``ran-core export``: write a saved model as ONNX (input ``crops`` (B, K, C, H, W), outputs ``logits``, ``alpha``,
``beta``), with its config beside it so any runtime can reproduce the preprocessing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("model", help="saved model folder, training run folder, or bundled model name")
    p.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx", help="ONNX file to write (+ OUT.json)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: 18)")
    p.add_argument("--check", action="store_true", help="compare ONNX Runtime with PyTorch on random crops after")
    p.add_argument("--int8", action="store_true", help="also write OUT.int8.onnx, dynamically quantised to int8")
    return p


def run(args: argparse.Namespace) -> int:
    import torch

    from ran_core.export import OPSET, OnnxModel, OnnxUnavailable, config_path_for, export_onnx
    from ran_core.saved_model import ModelLoadError, load_model

    try:
        model = load_model(args.model)
    except ModelLoadError as exc:
        print(f"ran-core export: {exc}", file=sys.stderr)
        return 2
    try:
        path = export_onnx(model, args.onnx, opset=args.opset or OPSET)
    except OnnxUnavailable as exc:
        print(f"ran-core export: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {path} and {config_path_for(path)} (opset {args.opset or OPSET}, input crops of shape (B, "
        f"{1 if model.config.arch == 'baseline' else model.config.regions.num_regions}, {model.config.in_chans}, "
        f"{model.config.input_size}, {model.config.input_size}), outputs logits, alpha, beta)"
    )
    if args.int8:
        from ran_core.export import quantize_int8

        try:
            q = quantize_int8(path)
        except OnnxUnavailable as exc:
            print(f"ran-core export: --int8: {exc}", file=sys.stderr)
            return 2
        print(f"wrote {q} (dynamic int8; check its accuracy with ran-core eval --checkpoint {q})")
    if args.check:
        try:
            onnx_model = OnnxModel(path)
        except OnnxUnavailable as exc:
            print(f"ran-core export: --check: {exc}", file=sys.stderr)
            return 2
        cfg = model.config
        k = 1 if cfg.arch == "baseline" else cfg.regions.num_regions
        x = torch.randn(8, k, cfg.in_chans, cfg.input_size, cfg.input_size, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            ref = model.eval()(x)
        got = onnx_model(x)
        diffs = {"logits": float((got.logits - ref.logits).abs().max())}
        if ref.alpha is not None:
            diffs["alpha"] = float((got.alpha - ref.alpha).abs().max())
            diffs["beta"] = float((got.beta - ref.beta).abs().max())
        print("max |onnxruntime - torch|: " + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
        if max(diffs.values()) > 1e-4:
            print("ran-core export: ONNX Runtime disagrees with PyTorch by more than 1e-4", file=sys.stderr)
            return 1
    return 0
