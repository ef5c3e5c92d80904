"""(b) Inference throughput: faces/s per batch size and precision variant, PyTorch against ONNX Runtime, and the
CPU thread count that serves best."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ran_core.bench._common import (
    BenchPlan,
    autocast,
    parse_variant,
    prepared_copy,
    progress_bar,
    random_inputs,
    skipped,
    time_fn,
)


def bench_inference(
    model: nn.Module,
    device: torch.device,
    batch_sizes: Iterable[int] = (1, 8, 32),
    variants: Iterable[str] = ("fp32", "channels_last", "bf16"),
    plan: BenchPlan | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Faces/s and ms/batch under ``torch.inference_mode`` in eval mode, per batch size and variant.

    Each low-precision variant also reports how far its probabilities are from fp32 and how often the predicted
    class agrees, so a speed-up is never bought with silently different answers.
    """
    plan = plan or BenchPlan.full()
    batch_sizes, variants = list(batch_sizes), list(variants)
    rows: list[dict[str, Any]] = []
    reference: dict[int, torch.Tensor] = {}
    jobs = [(v, b) for v in variants for b in batch_sizes]
    prepared: dict[str, nn.Module] = {}
    for variant, batch in progress_bar(jobs, f"inference {model.config.name}", progress):
        cl, dtype = parse_variant(variant, device)
        m = prepared.setdefault(variant, prepared_copy(model, cl).to(device).eval())
        x = random_inputs(m, batch, device)

        def step(m: nn.Module = m, x: torch.Tensor = x, dtype: torch.dtype | None = dtype) -> Any:
            with torch.inference_mode(), autocast(dtype, device):
                return m(x)

        probs = step().logits.float().softmax(1)
        if variant == "fp32":
            reference[batch] = probs
        t = time_fn(step, device, plan.min_time, plan.min_iters, plan.warmup)
        row = {"variant": variant, "batch": batch, "ms_per_batch": 1000 * t, "faces_per_s": batch / t}
        if batch in reference and variant != "fp32":
            ref = reference[batch]
            row["max_prob_diff_vs_fp32"] = (probs - ref).abs().max().item()
            row["argmax_agreement_vs_fp32"] = (probs.argmax(1) == ref.argmax(1)).float().mean().item()
        rows.append(row)
    best = {}
    for batch in batch_sizes:
        candidates = [r for r in rows if r["batch"] == batch]
        win = max(candidates, key=lambda r: r["faces_per_s"])
        fp32 = next((r for r in candidates if r["variant"] == "fp32"), None)
        best[str(batch)] = {
            "variant": win["variant"],
            "faces_per_s": win["faces_per_s"],
            "speedup_vs_fp32": win["faces_per_s"] / fp32["faces_per_s"] if fp32 else None,
        }
    return {"model": model.config.name, "rows": rows, "best": best}


def bench_onnx(
    model: nn.Module, batch_sizes: Iterable[int] = (1, 8, 32), plan: BenchPlan | None = None
) -> dict[str, Any]:
    """PyTorch (fp32, CPU) against ONNX Runtime on the same exported graph: faces/s per batch size and the largest
    difference of the logits. Skipped (with the reason) when onnx / onnxruntime is not installed."""
    import tempfile

    from ran_core.export import OnnxModel, OnnxUnavailable, export_onnx

    plan = plan or BenchPlan.full()
    cpu = torch.device("cpu")
    model = copy.deepcopy(model).to(cpu).eval()
    try:
        with tempfile.TemporaryDirectory(prefix="ran_core_bench_") as tmp:
            onnx_model = OnnxModel(export_onnx(model, Path(tmp) / "model.onnx"), threads=torch.get_num_threads())
            rows = []
            for batch in batch_sizes:
                x = random_inputs(model, batch, cpu)
                with torch.inference_mode():
                    ref = model(x).logits
                    t_torch = time_fn(lambda x=x: model(x), cpu, plan.min_time, plan.min_iters, plan.warmup)
                diff = float((onnx_model(x).logits - ref).abs().max())
                t_onnx = time_fn(lambda x=x: onnx_model(x), cpu, plan.min_time, plan.min_iters, plan.warmup)
                rows.append(
                    {
                        "batch": batch,
                        "torch_faces_per_s": batch / t_torch,
                        "onnx_faces_per_s": batch / t_onnx,
                        "onnx_vs_torch_speedup": t_torch / t_onnx,
                        "max_logit_diff": diff,
                    }
                )
    except OnnxUnavailable as exc:
        return skipped(str(exc))
    first = rows[0] if rows else {}
    return {"model": model.config.name, "rows": rows, "onnx_vs_torch_speedup": first.get("onnx_vs_torch_speedup")}


def bench_threads(
    model: nn.Module,
    batch_sizes: Iterable[int] = (1, 8),
    counts: Iterable[int] | None = None,
    plan: BenchPlan | None = None,
) -> dict[str, Any]:
    """fp32 CPU inference at 1 thread and at torch's current thread count.

    On a machine shared with other work (a training run, the camera, the GUI) OpenMP threads wait at every barrier
    for a sibling that lost its core, and fewer threads can be much faster; this measures it instead of guessing.
    """
    plan = plan or BenchPlan.full()
    device = torch.device("cpu")
    before = torch.get_num_threads()
    counts = sorted(set(counts or (1, before)))
    m = copy.deepcopy(model).cpu().eval()
    rows = []
    try:
        for n in counts:
            torch.set_num_threads(n)
            for batch in batch_sizes:
                x = random_inputs(m, batch, device)

                def step(x: torch.Tensor = x) -> Any:
                    with torch.inference_mode():
                        return m(x)

                t = time_fn(step, device, plan.min_time, plan.min_iters, plan.warmup)
                rows.append({"threads": n, "batch": batch, "ms_per_batch": 1000 * t, "faces_per_s": batch / t})
    finally:
        torch.set_num_threads(before)
    best = {
        str(b): max((r for r in rows if r["batch"] == b), key=lambda r: r["faces_per_s"])["threads"]
        for b in batch_sizes
    }
    return {"model": model.config.name, "rows": rows, "best_threads": best}
