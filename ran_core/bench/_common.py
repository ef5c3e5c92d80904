"""What every benchmark section shares: the plan, the machine description, the models, and the timing helpers."""

from __future__ import annotations

import copy
import os
import platform
import re
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ran_core._paths import bundled_dir

SAMPLES_DIR = bundled_dir() / "samples"
# Which sample photo the camera video is made from: a frontal, well-lit face that every detector finds.
CAMERA_SAMPLE = "grace_hopper.jpg"


@dataclass
class BenchPlan:
    """What to measure and how long. :meth:`full` for reporting, :meth:`quick` for a fast look.

    Attributes:
        region_cases: ``(label, model name or None for the main model, input size or None, batch size)`` for (a).
        inference_batches: batch sizes for (b).
        inference_variants: variants for (b) and (c): ``fp32``, ``channels_last``, ``bf16``, ``bf16+channels_last``
            (``fp16`` variants too on CUDA).
        train_batch: batch size for (c).
        train_variants: variants for (c).
        fixed_stages: (c) also trains RAN's fastest variant with its first N backbone stages fixed, for each N here
            (``train --freeze-stages N``).
        camera_frames: frames in the recorded video for (d).
        detector_frames: frames given to each available detector alone in (d).
        min_time: seconds each measurement runs at least.
        min_iters: iterations each measurement runs at least.
        warmup: untimed iterations first (allocator, oneDNN/cuDNN kernel choice).
        autotune_repeats: ``repeats`` passed to ``autotune_region_chunk``.
    """

    region_cases: list[tuple[str, str | None, int | None, int]] = field(
        default_factory=lambda: [
            ("main model", None, None, 16),
            ("resnet18 112px", "ran_resnet18", 112, 16),
            ("resnet18 224px", "ran_resnet18", 224, 8),
        ]
    )
    inference_batches: tuple[int, ...] = (1, 8, 32)
    inference_variants: tuple[str, ...] = ("fp32", "channels_last", "bf16", "bf16+channels_last")
    train_batch: int = 32
    train_variants: tuple[str, ...] = ("fp32", "channels_last", "bf16")
    fixed_stages: tuple[int, ...] = (1, 2, 3)
    camera_frames: int = 90
    detector_frames: int = 5
    min_time: float = 1.0
    min_iters: int = 5
    warmup: int = 2
    autotune_repeats: int = 3

    @classmethod
    def full(cls) -> BenchPlan:
        return cls()

    @classmethod
    def quick(cls) -> BenchPlan:
        return cls(
            region_cases=[
                ("main model", None, None, 8),
                ("resnet18 112px", "ran_resnet18", 112, 4),
                ("resnet18 224px", "ran_resnet18", 224, 2),
            ],
            train_batch=8,
            fixed_stages=(2,),
            camera_frames=24,
            detector_frames=2,
            min_time=0.2,
            min_iters=2,
            warmup=1,
            autotune_repeats=1,
        )


# --- machine and models ---------------------------------------------------------------------------------------------


def _cpu_model() -> tuple[str, set[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), set()
    name, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not name:
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return name or platform.processor() or platform.machine(), flags


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU, core count, threads, library versions, load, and the CUDA device when used."""
    import torchvision

    cpu, flags = _cpu_model()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info: dict[str, Any] = {
        "cpu": cpu,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16_hardware": sorted(flags & {"avx512_bf16", "amx_bf16"}),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "load_average_1min_at_start": load_average(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["cuda_device"] = props.name
        info["cuda_capability"] = f"{props.major}.{props.minor}"
        info["cuda_memory_gb"] = round(props.total_memory / 2**30, 1)
        info["cuda_runtime"] = torch.version.cuda
    return info


def load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def resolve_models(
    model: str | None = None,
    baseline: str | None = None,
    device: torch.device | str = "cpu",
    input_size: int | None = None,
) -> tuple[nn.Module, nn.Module, list[str]]:
    """The RAN and baseline models to measure, and notes on where they came from.

    Each may be a saved model (bundled name or path) or a registered name (built fresh, random weights). ``None``
    picks the bundled ``ran-ferplus`` / ``baseline-ferplus`` when installed, else ``ran_compact`` /
    ``baseline_compact`` built fresh (speed does not depend on the weights). ``input_size`` sets the input of the
    registered names built fresh (a saved model keeps its own).
    """
    from ran_core.saved_model import list_bundled_models

    bundled = list_bundled_models()
    notes: list[str] = []
    out = []
    for given, saved, fresh in (
        (model, "ran-ferplus", "ran_compact"),
        (baseline, "baseline-ferplus", "baseline_compact"),
    ):
        name = given or (saved if saved in bundled else fresh)
        m, note = _load_or_create(name, device, input_size)
        if given is None and name == fresh:
            note += f" (bundled {saved!r} not installed)"
        notes.append(note)
        out.append(m)
    return out[0], out[1], notes


def _load_or_create(name: str, device: torch.device | str, input_size: int | None = None) -> tuple[nn.Module, str]:
    from ran_core.models import create_model, list_models
    from ran_core.saved_model import load_model

    if name in list_models():
        torch.manual_seed(0)
        m = create_model(name, **({"input_size": input_size} if input_size else {})).to(device).eval()
        return m, f"{name}: freshly created at {m.config.input_size} px, random weights"
    model = load_model(name, device=device)
    return model, f"{name}: saved model {model.config.name} from {getattr(model, 'source_path', name)}"


def describe_model(model: nn.Module) -> dict[str, Any]:
    cfg = model.config
    return {
        "name": cfg.name,
        "input_size": cfg.input_size,
        "in_chans": cfg.in_chans,
        "regions": cfg.regions.num_regions,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


# --- timing helpers -------------------------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, min_time: float, min_iters: int, warmup: int) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def parse_variant(name: str, device: torch.device) -> tuple[bool, torch.dtype | None]:
    """``(channels_last, autocast dtype)`` of a variant name such as ``bf16+channels_last`` (a ``+loop`` part, the
    official per-region loop, and a ``+fixN`` part, the first N backbone stages fixed, are read by the callers that
    support them)."""
    parts = name.split("+")
    if any(p not in ("channels_last", "loop") and not re.fullmatch(r"fix[1-9]", p) for p in parts[1:]):
        raise ValueError(f"unknown variant {name!r}")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(parts[0])
    if parts[0] not in ("fp32", "channels_last", "bf16", "fp16"):
        raise ValueError(f"unknown variant {name!r}")
    if dtype is torch.float16 and device.type != "cuda":
        raise ValueError("fp16 autocast is only measured on CUDA")
    return "channels_last" in parts, dtype


def autocast(dtype: torch.dtype | None, device: torch.device) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def prepared_copy(model: nn.Module, channels_last: bool) -> nn.Module:
    m = copy.deepcopy(model)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        if hasattr(m, "channels_last"):
            m.channels_last = True  # the model converts each backbone input to NHWC too
    return m


def random_inputs(model: nn.Module, batch: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.regions.num_regions, cfg.in_chans, cfg.input_size, cfg.input_size, generator=g)
    return x.to(device)


def progress_bar(items: list[Any], desc: str, enabled: bool) -> Iterable[Any]:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False, file=sys.stderr)


def skipped(reason: str) -> dict[str, Any]:
    return {"skipped": reason}
