"""(c) Training throughput and peak memory of full RAN training steps."""

from __future__ import annotations

import functools
import math
import resource
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
    time_fn,
)
from ran_core.losses import RANCriterion
from ran_core.models.backbones import fix_stages


class _PeakMemory:
    """Peak memory of a block: CUDA's allocator peak on GPU; on CPU the peak resident set size (psutil cannot
    report a peak, and tracemalloc does not see torch's allocations), reset per block through
    ``/proc/self/clear_refs`` on Linux, else the growth of the process's lifetime peak ``ru_maxrss``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.method = "cuda max_memory_allocated" if device.type == "cuda" else "ru_maxrss growth (lifetime peak)"
        self.peak_mb: float | None = None

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            return self
        _trim_heap()  # hand freed heap pages back first, so earlier runs' leftovers do not hide this one's growth
        self._base = _rss_kb("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.method = "peak RSS (VmHWM after /proc/self/clear_refs) minus RSS before"
        except OSError:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif self.method.startswith("peak RSS"):
            self.peak_mb = (_rss_kb("VmHWM") - self._base) / 1024
        else:
            self.peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._base) / 1024


def _trim_heap() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_kb(key: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _train_step(
    m: nn.Module,
    opt: torch.optim.Optimizer,
    criterion: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    dtype: torch.dtype | None,
    device: torch.device,
    losses: list[float],
) -> None:
    opt.zero_grad(set_to_none=True)
    with autocast(dtype, device):
        out = m(x)
    loss, _ = criterion(out, y)
    loss.backward()
    opt.step()
    losses.append(loss.item())


def bench_training(
    model: nn.Module,
    device: torch.device,
    batch_size: int = 32,
    variants: Iterable[str] = ("fp32", "channels_last", "bf16"),
    plan: BenchPlan | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Samples/s and peak memory of full training steps (forward, RANCriterion, backward, SGD) on random data.

    A variant ending in ``+loop`` runs the backbone once per region (the official code's loop, ``region_chunk=1``)
    instead of once over all regions; the result then also holds ``batched_vs_loop_speedup`` (the same precision
    batched against looped). A ``+fixN`` part keeps the backbone's first N stages fixed, as ``ran-core train
    --freeze-stages N`` does (no gradient into them, their batch norms in eval mode); the result then also holds
    ``fixed_stages_speedup`` (against the same variant with every stage trained).
    """
    plan = plan or BenchPlan.full()
    rows = []
    for variant in progress_bar(list(variants), f"training {model.config.name}", progress):
        cl, dtype = parse_variant(variant, device)
        m = prepared_copy(model, cl).to(device).train()
        m.region_chunk = 1 if "loop" in variant.split("+") else None
        fixed = next((int(p[3:]) for p in variant.split("+") if p.startswith("fix")), 0)
        fix_stages(m.backbone, fixed)
        trained = [p for p in m.parameters() if p.requires_grad]
        opt = torch.optim.SGD(trained, lr=1e-3, momentum=0.9, weight_decay=1e-4)
        criterion = RANCriterion()
        x = random_inputs(m, batch_size, device)
        y = torch.randint(0, m.config.num_classes, (batch_size,), device=device)
        losses: list[float] = []
        step = functools.partial(_train_step, m, opt, criterion, x, y, dtype, device, losses)
        with _PeakMemory(device) as mem:
            t = time_fn(step, device, plan.min_time, plan.min_iters, plan.warmup)
        rows.append(
            {
                "variant": variant,
                "batch": batch_size,
                "ms_per_step": 1000 * t,
                "samples_per_s": batch_size / t,
                "peak_mem_mb": mem.peak_mb,
                "loss_finite": bool(all(math.isfinite(v) for v in losses)),
            }
        )
        del m, opt, step
    win = max(rows, key=lambda r: r["samples_per_s"])
    result = {
        "model": model.config.name,
        "input_size": model.config.input_size,
        "rows": rows,
        "best": win["variant"],
        "memory_method": mem.method,
        "optimizer": "SGD(momentum=0.9) + RANCriterion (CE + RB-loss)",
    }
    speedups = loop_speedups(rows)
    if speedups:
        result["batched_vs_loop_speedup"] = speedups
    fixed = fixed_stage_speedups(rows)
    if fixed:
        result["fixed_stages_speedup"] = fixed
    return result


def loop_speedups(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``{variant: samples/s batched over samples/s with +loop}`` for each variant measured both ways."""
    rate = {r["variant"]: r["samples_per_s"] for r in rows}
    batched = {v.removesuffix("+loop"): v for v in rate if v.endswith("+loop")}
    return {b: rate[b] / rate[looped] for b, looped in batched.items() if b in rate}


def fixed_stage_speedups(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``{variant+fixN: its samples/s over the variant's with every stage trained}`` where both were measured."""
    rate = {r["variant"]: r["samples_per_s"] for r in rows}
    out = {}
    for v in rate:
        parts = v.split("+")
        base = "+".join(p for p in parts if not p.startswith("fix"))
        if base != v and base in rate:
            out[v] = rate[v] / rate[base]
    return out
