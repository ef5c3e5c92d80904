"""All sections under one plan: :func:`run_bench` returns the JSON-ready result ``ran-core bench`` prints and saves."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from ran_core.bench._common import BenchPlan, describe_model, load_average, machine_info, progress_bar, resolve_models
from ran_core.bench.camera import bench_camera
from ran_core.bench.inference import bench_inference, bench_onnx, bench_threads
from ran_core.bench.regions import compare_region_strategies
from ran_core.bench.training import bench_training, fixed_stage_speedups, loop_speedups
from ran_core.devices import resolve_device


def run_bench(
    model: str | None = None,
    baseline: str | None = None,
    device: str = "auto",
    plan: BenchPlan | None = None,
    detector: Any = "auto",
    sections: Iterable[str] = ("regions", "inference", "training", "camera"),
    progress: bool = True,
    input_size: int | None = None,
    camera_tta: str | None = None,
) -> dict[str, Any]:
    """Run the benchmark sections and return one JSON-ready dict (see :func:`format_report`).

    Args:
        model: RAN model to measure (saved model or registered name); ``None``: bundled ``ran-ferplus`` if installed,
            else a fresh ``ran_compact``.
        baseline: the baseline likewise (``baseline-ferplus`` / ``baseline_compact``).
        device: ``cpu``, ``cuda`` or ``auto``.
        plan: sizes and durations (:meth:`BenchPlan.full` by default).
        detector: face detector for the camera path (a name or a detector object).
        sections: any of ``regions``, ``inference``, ``training``, ``camera``.
        progress: show tqdm progress bars on stderr.
        input_size: input size of models given as registered names (saved models keep their own).
        camera_tta: test-time augmentation of the camera section (``None``: the model's saved one).
    """
    from ran_core.models import create_model

    plan = plan or BenchPlan.full()
    sections = set(sections)
    dev = resolve_device(device)
    ran, base, notes = resolve_models(model, baseline, dev, input_size)
    result: dict[str, Any] = {
        "machine": machine_info(dev),
        "plan": asdict(plan),
        "models": {"ran": describe_model(ran), "baseline": describe_model(base)},
        "notes": notes,
    }
    variants = [v for v in plan.inference_variants if dev.type == "cuda" or not v.startswith("fp16")]
    train_variants = [v for v in plan.train_variants if dev.type == "cuda" or not v.startswith("fp16")]
    if dev.type == "cuda":  # half precision is the usual GPU choice; measure it beside bf16
        variants += [v for v in ("fp16", "fp16+channels_last") if v not in variants]
        train_variants += [v for v in ("fp16",) if v not in train_variants]
    if "regions" in sections:
        cases = []
        for label, name, size, batch in progress_bar(plan.region_cases, "region batching", progress):
            if name is None:
                m = ran
            else:
                torch.manual_seed(0)
                m = create_model(name, **({"input_size": size} if size else {})).eval()
            case = compare_region_strategies(m, batch, dev, plan)
            case["case"] = label
            cases.append(case)
        result["region_batching"] = cases
        result["batched_vs_loop_speedup"] = cases[0]["batched_vs_loop_speedup"] if cases else None
    if "inference" in sections:
        result["inference"] = {
            key: bench_inference(m, dev, plan.inference_batches, variants, plan, progress)
            for key, m in (("ran", ran), ("baseline", base))
        }
    if "inference" in sections and dev.type == "cpu":
        result["threads"] = bench_threads(ran, (1, 8), None, plan)
        result["onnx"] = {
            key: bench_onnx(m, plan.inference_batches, plan) for key, m in (("ran", ran), ("baseline", base))
        }
        result["onnx_vs_torch_speedup"] = result["onnx"]["ran"].get("onnx_vs_torch_speedup")
    if "training" in sections:
        result["training"] = {
            key: bench_training(m, dev, plan.train_batch, train_variants, plan, progress)
            for key, m in (("ran", ran), ("baseline", base))
        }
        # RAN's fastest precision once more with the official per-region loop: what batching the regions buys
        ran_tr = result["training"]["ran"]
        best = ran_tr["best"]
        if ran.config.regions.num_regions > 1 and "loop" not in best.split("+"):
            looped = bench_training(ran, dev, plan.train_batch, [best + "+loop"], plan, progress)
            ran_tr["rows"] += looped["rows"]
            ran_tr["batched_vs_loop_speedup"] = loop_speedups(ran_tr["rows"])
        # ... and with its first backbone stages fixed: what `train --freeze-stages N` buys a warm-started RAN
        if ran.config.regions.num_regions > 1:
            fixed = [f"{best}+fix{n}" for n in plan.fixed_stages]
            rows = bench_training(ran, dev, plan.train_batch, fixed, plan, progress)["rows"]
            ran_tr["rows"] += rows
            ran_tr["fixed_stages_speedup"] = fixed_stage_speedups(ran_tr["rows"])
    if "camera" in sections:
        camera = bench_camera(
            ran, dev, detector, plan.camera_frames, progress, detector_frames=plan.detector_frames, tta=camera_tta
        )
        result["camera"] = camera
        result["end_to_end_fps"] = camera.get("end_to_end_fps")
    result["machine"]["load_average_1min_at_end"] = load_average()
    return _json_ready(result)


def _json_ready(obj: Any) -> Any:
    """Plain JSON: tuples to lists, NaN/inf to None, numpy scalars to Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_ready(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
