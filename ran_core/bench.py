"""Benchmarks behind ``ran-core bench``: is RAN fast enough for live use on this machine, and with which settings?

Four sections, each a function returning plain JSON-ready dicts:

(a) :func:`compare_region_strategies` - all K regions in one backbone call vs the official per-region loop (same
    weights, outputs checked equal) and what :meth:`autotune_region_chunk` picks;
(b) :func:`bench_inference` - faces/s at several batch sizes, fp32 / channels_last / bf16 autocast;
(c) :func:`bench_training` - samples/s and peak memory of SGD + :class:`~ran_core.losses.RANCriterion` steps;
(d) :func:`bench_camera` - the live camera path on a recorded 640x480 one-face video: decode, detection,
    alignment + regions, model, overlay, per stage and end to end.

:func:`run_bench` runs them all under a :class:`BenchPlan`; :func:`format_report` turns the result into tables.
Times are medians of repeated runs, so a short burst of competing work on a shared machine moves them little.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ran_core._paths import bundled_dir
from ran_core.devices import resolve_device
from ran_core.losses import RANCriterion

SAMPLES_DIR = bundled_dir() / "samples"
# Which sample photo the camera video is made from: a frontal, well-lit face that every detector finds.
CAMERA_SAMPLE = "grace_hopper.jpg"
# Outputs of the region strategies must agree this closely (probabilities and attention weights are in [0, 1]).
EQUAL_ATOL = 1e-5


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
        "load_average_1min_at_start": _load_average(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["cuda_device"] = props.name
        info["cuda_capability"] = f"{props.major}.{props.minor}"
        info["cuda_memory_gb"] = round(props.total_memory / 2**30, 1)
        info["cuda_runtime"] = torch.version.cuda
    return info


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def resolve_models(
    model: str | None = None, baseline: str | None = None, device: torch.device | str = "cpu"
) -> tuple[nn.Module, nn.Module, list[str]]:
    """The RAN and baseline models to measure, and notes on where they came from.

    Each may be a saved model (bundled name or path) or a registered name (built fresh, random weights). ``None``
    picks the bundled ``ran-ferplus`` / ``baseline-ferplus`` when installed, else ``ran_compact`` /
    ``baseline_compact`` built fresh (speed does not depend on the weights).
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
        m, note = _load_or_create(name, device)
        if given is None and name == fresh:
            note += f" (bundled {saved!r} not installed)"
        notes.append(note)
        out.append(m)
    return out[0], out[1], notes


def _load_or_create(name: str, device: torch.device | str) -> tuple[nn.Module, str]:
    from ran_core.models import create_model, list_models
    from ran_core.saved_model import load_model

    if name in list_models():
        torch.manual_seed(0)
        return create_model(name).to(device).eval(), f"{name}: freshly created, random weights"
    model = load_model(name, device=device)
    return model, f"{name}: saved model {model.config.name} from {getattr(model, 'source_path', name)}"


def _describe(model: nn.Module) -> dict[str, Any]:
    cfg = model.config
    return {
        "name": cfg.name,
        "input_size": cfg.input_size,
        "in_chans": cfg.in_chans,
        "regions": cfg.regions.num_regions,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


# --- timing helpers -------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, min_time: float, min_iters: int, warmup: int) -> float:
    """Median seconds per call of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _variant(name: str, device: torch.device) -> tuple[bool, torch.dtype | None]:
    """``(channels_last, autocast dtype)`` of a variant name."""
    parts = name.split("+")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(parts[0])
    if parts[0] not in ("fp32", "channels_last", "bf16", "fp16"):
        raise ValueError(f"unknown variant {name!r}")
    if dtype is torch.float16 and device.type != "cuda":
        raise ValueError("fp16 autocast is only measured on CUDA")
    return "channels_last" in parts, dtype


def _autocast(dtype: torch.dtype | None, device: torch.device) -> AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def _prepared(model: nn.Module, channels_last: bool) -> nn.Module:
    m = copy.deepcopy(model)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        if hasattr(m, "channels_last"):
            m.channels_last = True  # the model converts each backbone input to NHWC too
    return m


def _inputs(model: nn.Module, batch: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    cfg = model.config
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.regions.num_regions, cfg.in_chans, cfg.input_size, cfg.input_size, generator=g)
    return x.to(device)


def _progress(items: list[Any], desc: str, enabled: bool) -> Iterable[Any]:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, leave=False, file=sys.stderr)


# --- (a) region batching -------------------------------------------------------------------------------------------


def compare_region_strategies(
    model: nn.Module,
    batch_size: int,
    device: torch.device,
    plan: BenchPlan | None = None,
) -> dict[str, Any]:
    """All regions in one backbone call vs half of them vs the official per-region loop, with the same weights.

    Outputs are checked equal (eval mode; probabilities and attention within :data:`EQUAL_ATOL`, logits within
    ``EQUAL_ATOL`` relative), then each strategy is timed. In training the strategies are not interchangeable:
    BatchNorm statistics are taken per backbone call.
    """
    plan = plan or BenchPlan.full()
    model = copy.deepcopy(model).to(device).eval()
    k = model.config.regions.num_regions
    x = _inputs(model, batch_size, device)
    strategies = {"batched": None, "half": max(1, k // 2), "loop": 1}
    outputs, times = {}, {}
    with torch.inference_mode():
        for label, chunk in strategies.items():
            model.region_chunk = chunk
            outputs[label] = model(x)
            times[label] = time_fn(lambda: model(x), device, plan.min_time, plan.min_iters, plan.warmup)
    ref = outputs["batched"]
    diffs: dict[str, dict[str, float]] = {}
    equal = True
    for label in ("half", "loop"):
        out = outputs[label]
        d = {
            "logits": (out.logits - ref.logits).abs().max().item(),
            "probabilities": (out.logits.softmax(1) - ref.logits.softmax(1)).abs().max().item(),
        }
        if ref.alpha is not None:
            d["alpha"] = (out.alpha - ref.alpha).abs().max().item()
            d["beta"] = (out.beta - ref.beta).abs().max().item()
        logit_scale = max(1.0, ref.logits.abs().max().item())
        equal &= d["logits"] <= EQUAL_ATOL * logit_scale and all(v <= EQUAL_ATOL for n, v in d.items() if n != "logits")
        diffs[label] = d
    chosen = model.autotune_region_chunk(batch_size=batch_size, repeats=plan.autotune_repeats, device=device)
    picked = next((label for label, c in strategies.items() if c == chosen), str(chosen))
    result: dict[str, Any] = {
        "model": model.config.name,
        "input_size": model.config.input_size,
        "regions": k,
        "batch_size": batch_size,
        "region_chunk": {label: c for label, c in strategies.items()},
        "ms_per_batch": {label: 1000 * t for label, t in times.items()},
        "faces_per_s": {label: batch_size / t for label, t in times.items()},
        "crops_per_s": {label: batch_size * k / t for label, t in times.items()},
        # "Batched" is RAN's region-batched forward as shipped: B*K crops per backbone call, chunked when a chunk
        # measures faster (issue: "chunked if that measures faster"); the all-in-one-call ratio is reported too.
        "batched_vs_loop_speedup": times["loop"] / min(times["batched"], times["half"]),
        "all_at_once_vs_loop_speedup": times["loop"] / times["batched"],
        "fastest": min(times, key=times.get),
        "autotune_pick": picked,
        "max_abs_diff": diffs,
        "outputs_equal": bool(equal),
        "tolerance": EQUAL_ATOL,
    }
    return result


# --- (b) inference throughput ----------------------------------------------------------------------------------------


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
    for variant, batch in _progress(jobs, f"inference {model.config.name}", progress):
        cl, dtype = _variant(variant, device)
        m = prepared.setdefault(variant, _prepared(model, cl).to(device).eval())
        x = _inputs(m, batch, device)

        def step(m: nn.Module = m, x: torch.Tensor = x, dtype: torch.dtype | None = dtype) -> Any:
            with torch.inference_mode(), _autocast(dtype, device):
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
                x = _inputs(model, batch, cpu)
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
        return _skipped(str(exc))
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
                x = _inputs(m, batch, device)

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


# --- (c) training ---------------------------------------------------------------------------------------------------


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
    with _autocast(dtype, device):
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
    """Samples/s and peak memory of full training steps (forward, RANCriterion, backward, SGD) on random data."""
    plan = plan or BenchPlan.full()
    rows = []
    for variant in _progress(list(variants), f"training {model.config.name}", progress):
        cl, dtype = _variant(variant, device)
        m = _prepared(model, cl).to(device).train()
        opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
        criterion = RANCriterion()
        x = _inputs(m, batch_size, device)
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
    return {
        "model": model.config.name,
        "rows": rows,
        "best": win["variant"],
        "memory_method": mem.method,
        "optimizer": "SGD(momentum=0.9) + RANCriterion (CE + RB-loss)",
    }


# --- (d) camera path ------------------------------------------------------------------------------------------------


def write_camera_video(path: Path, frames: int, sample: Path | None = None, fps: float = 30.0) -> Path:
    """A 640x480 video of one face: a sample photo drifting and slightly zooming, like a person before a webcam.

    Raises:
        RuntimeError: OpenCV cannot write a video here (no codec).
    """
    import cv2

    from ran_core.imageio import read_image

    rgb = read_image(sample or SAMPLES_DIR / CAMERA_SAMPLE)
    scale = 440 / rgb.shape[0]  # the photo's height -> 440 of the frame's 480 rows
    photo = cv2.resize(rgb, (round(rgb.shape[1] * scale), 440), interpolation=cv2.INTER_AREA)
    h, w = photo.shape[:2]
    for fourcc, suffix in (("mp4v", ".mp4"), ("MJPG", ".avi")):
        out_path = path.with_suffix(suffix)
        writer = cv2.VideoWriter(str(out_path), cv2.VideoWriter_fourcc(*fourcc), fps, (640, 480))
        if writer.isOpened():
            break
    else:
        raise RuntimeError("OpenCV cannot write mp4v or MJPG video here")
    try:
        for i in range(frames):
            phase = 2 * math.pi * i / max(frames, 1)
            zoom = 1 + 0.04 * math.sin(2 * phase)
            dx, dy = 320 - w / 2 + 20 * math.sin(phase), 240 - h / 2 + 8 * math.cos(phase)
            matrix = np.array([[zoom, 0, dx - (zoom - 1) * w / 2], [0, zoom, dy - (zoom - 1) * h / 2]])
            frame = cv2.warpAffine(photo, matrix, (640, 480), borderValue=(96, 96, 96))
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return out_path


def _skipped(reason: str) -> dict[str, Any]:
    return {"skipped": reason}


_STAGES = ("decode", "detection", "alignment_regions", "model", "overlay", "total")


def _camera_pass(
    predictor: Any, video: Path, frames: int, detect_every: int, progress: bool
) -> tuple[dict[str, list[float]], list[int]]:
    """One pass over the video; returns per-frame seconds per stage and faces per frame (first frame untimed)."""
    import cv2

    from ran_core.faces.detectors import Detection
    from ran_core.faces.draw import draw_faces

    cap = cv2.VideoCapture(str(video))
    stages: dict[str, list[float]] = {k: [] for k in _STAGES}
    faces_per_frame: list[int] = []
    ok, bgr = cap.read()
    detections = predictor.detect(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) if ok else []  # warm-up, untimed
    if ok:
        predictor.predict_faces(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), detections)
    for i in _progress(list(range(1, frames)), f"camera (detect every {detect_every})", progress):
        t0 = time.perf_counter()
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        if i % detect_every == 0:
            faces = predictor(rgb)
            detections = [Detection.from_any(f) for f in faces]
        else:  # between detections the last boxes are reused, as a live viewer may do
            faces = predictor.predict_faces(rgb, detections)
        t2 = time.perf_counter()
        overlay = [f.to_dict() for f in faces]
        draw_faces(rgb, faces)
        t3 = time.perf_counter()
        tm = predictor.timings
        for key, value in zip(_STAGES, (t1 - t0, tm.detection, tm.alignment, tm.model, t3 - t2, t3 - t0)):
            stages[key].append(value)
        faces_per_frame.append(len(overlay))
    cap.release()
    return stages, faces_per_frame


# A face in a webcam frame is rarely under 1/6 of its height; detectors told so skip most of their pyramid.
LIVE_MIN_FACE = 80
_MIN_FACE_OPTION = {"haar": "min_size", "mtcnn": "min_face_size"}


def bench_detectors(frames: list[np.ndarray], device: torch.device) -> list[dict[str, Any]]:
    """Median detection ms per frame for every detector that can run here, at its defaults and told the smallest
    face is :data:`LIVE_MIN_FACE` pixels; detectors that cannot run say why."""
    from ran_core.faces.detectors import create_detector, detector_status

    rows: list[dict[str, Any]] = []
    for name, reason in detector_status().items():
        if reason is not None:
            rows.append({"detector": name, "settings": "default", "skipped": reason})
            continue
        settings = [("default", {})]
        if name in _MIN_FACE_OPTION:
            settings.append((f"min face {LIVE_MIN_FACE}px", {_MIN_FACE_OPTION[name]: LIVE_MIN_FACE}))
        for label, options in settings:
            try:
                det = create_detector(name, device=str(device), **options)
                det.detect(frames[0])  # warm-up
                times, found = [], []
                for rgb in frames:
                    t0 = time.perf_counter()
                    found.append(len(det.detect(rgb)))
                    times.append(time.perf_counter() - t0)
            except Exception as exc:  # a backend failing here should not cost the rest of the report
                rows.append({"detector": name, "settings": label, "skipped": f"{exc.__class__.__name__}: {exc}"})
                continue
            rows.append(
                {
                    "detector": name,
                    "settings": label,
                    "ms_per_frame": 1000 * float(np.median(times)),
                    "mean_faces_found": float(np.mean(found)),
                }
            )
    return rows


def _read_frames(video: Path, count: int) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames


def bench_camera(
    model: nn.Module,
    device: torch.device,
    detector: Any = "auto",
    frames: int = 90,
    progress: bool = False,
    detect_every: Iterable[int] = (1, 3),
    detector_frames: int = 5,
) -> dict[str, Any]:
    """The live path on a recorded 640x480 one-face video: decode -> detect -> align + regions -> model -> overlay.

    Reports per-stage milliseconds per frame (stages from :attr:`Predictor.timings`; overlay = the JSON-ready face
    data plus :func:`~ran_core.faces.draw.draw_faces`), the per-face latency split and ``end_to_end_fps`` with the
    detector run on every frame. Other ``detect_every`` values rerun the video detecting only every N-th frame and
    reusing the boxes in between; ``detector_frames`` frames are also given to every available detector
    (:func:`bench_detectors`). ``{"skipped": reason}`` when something it needs is missing.
    """
    try:
        import cv2  # noqa: F401

        from ran_core.predictor import Predictor
    except ImportError as exc:
        return _skipped(f"the predictor is not available ({exc})")
    if detector == "auto":  # as the viewer's camera does: the fastest detector that keeps recall
        from ran_core.faces.detectors import resolve_camera_auto

        detector = resolve_camera_auto()
    try:
        predictor = Predictor(copy.deepcopy(model), detector=detector, device=device)
    except Exception as exc:  # DetectorUnavailable and friends: say why rather than fail the whole bench
        return _skipped(f"cannot build the predictor ({exc.__class__.__name__}: {exc})")
    every = sorted({1, *detect_every})
    passes = {}
    with tempfile.TemporaryDirectory(prefix="ran_bench_") as tmp:
        try:
            video = write_camera_video(Path(tmp) / "camera", frames)
        except (RuntimeError, OSError, ValueError) as exc:
            return _skipped(f"cannot write the test video ({exc})")
        for n in every:
            passes[n] = _camera_pass(predictor, video, frames, n, progress)
        # The live path as the viewer's camera runs it: StreamPredictor (detect every N frames on a small copy, follow
        # faces with optical flow in between). Its fps is the headline end_to_end_fps.
        try:
            from ran_core.stream import StreamPredictor, measure_stream_fps

            live = measure_stream_fps(video, StreamPredictor(predictor), max_frames=frames)
        except Exception as exc:  # report, do not hide the per-frame numbers
            live = _skipped(f"stream path failed ({exc.__class__.__name__}: {exc})")
        sample_frames = _read_frames(video, detector_frames)
        detectors = bench_detectors(sample_frames, device) if sample_frames and detector_frames else []
    stages, faces_per_frame = passes[1]
    if not faces_per_frame:
        return _skipped(f"OpenCV could not read back the test video {video.name}")
    n = len(faces_per_frame)
    ms = {k: 1000 * float(np.mean(v)) for k, v in stages.items()}
    one_face = [i for i, c in enumerate(faces_per_frame) if c == 1]
    split = ("detection", "alignment_regions", "model")
    per_face = {k: 1000 * float(np.median([stages[k][i] for i in one_face])) for k in split} if one_face else None
    return {
        "video": f"640x480, {n} timed frames, one face ({CAMERA_SAMPLE} drifting)",
        "detector": getattr(predictor.detector, "name", type(predictor.detector).__name__),
        "model": model.config.name,
        "frames": n,
        "frames_with_one_face": len(one_face),
        "mean_faces_per_frame": float(np.mean(faces_per_frame)),
        "ms_per_frame": ms,
        "per_face_latency_ms": per_face,
        "end_to_end_fps": live.get("fps") if "fps" in live else n / float(np.sum(stages["total"])),
        "every_frame_fps": n / float(np.sum(stages["total"])),
        "live": live,
        "detect_every": {
            str(k): {
                "end_to_end_fps": len(f) / float(np.sum(st["total"])) if f else None,
                "detection_ms_per_frame": 1000 * float(np.mean(st["detection"])) if f else None,
                "mean_faces_per_frame": float(np.mean(f)) if f else None,
            }
            for k, (st, f) in passes.items()
        },
        "detectors": detectors,
    }


# --- everything -----------------------------------------------------------------------------------------------------


def run_bench(
    model: str | None = None,
    baseline: str | None = None,
    device: str = "auto",
    plan: BenchPlan | None = None,
    detector: Any = "auto",
    sections: Iterable[str] = ("regions", "inference", "training", "camera"),
    progress: bool = True,
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
    """
    from ran_core.models import create_model

    plan = plan or BenchPlan.full()
    sections = set(sections)
    dev = resolve_device(device)
    ran, base, notes = resolve_models(model, baseline, dev)
    result: dict[str, Any] = {
        "machine": machine_info(dev),
        "plan": asdict(plan),
        "models": {"ran": _describe(ran), "baseline": _describe(base)},
        "notes": notes,
    }
    variants = [v for v in plan.inference_variants if dev.type == "cuda" or not v.startswith("fp16")]
    train_variants = [v for v in plan.train_variants if dev.type == "cuda" or not v.startswith("fp16")]
    if dev.type == "cuda":  # half precision is the usual GPU choice; measure it beside bf16
        variants += [v for v in ("fp16", "fp16+channels_last") if v not in variants]
        train_variants += [v for v in ("fp16",) if v not in train_variants]
    if "regions" in sections:
        cases = []
        for label, name, size, batch in _progress(plan.region_cases, "region batching", progress):
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
    if "camera" in sections:
        camera = bench_camera(ran, dev, detector, plan.camera_frames, progress, detector_frames=plan.detector_frames)
        result["camera"] = camera
        result["end_to_end_fps"] = camera.get("end_to_end_fps")
    result["machine"]["load_average_1min_at_end"] = _load_average()
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


# --- report ---------------------------------------------------------------------------------------------------------


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 0.01 and v != 0 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:.2f}"
        return str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    return "\n".join(out)


def _short(d: dict[str, Any], width: int = 70) -> str | None:
    text = d.get("skipped")
    return text if text is None or len(text) <= width else text[: width - 3] + "..."


def format_report(result: dict[str, Any]) -> str:
    """Readable tables of a :func:`run_bench` result."""
    m = result["machine"]
    lines = ["== machine"]
    lines.append(
        f"cpu: {m['cpu']} | cores: {m['usable_cores']} usable of {m['logical_cores']} | torch threads: "
        f"{m['torch_threads']} | {m['cpu_capability']}"
        + (f" | bf16 hardware: {', '.join(m['cpu_bf16_hardware'])}" if m.get("cpu_bf16_hardware") else "")
    )
    lines.append(f"torch {m['torch']} | torchvision {m['torchvision']} | python {m['python']} | device {m['device']}")
    if m.get("cuda_device"):
        lines.append(f"cuda: {m['cuda_device']} (sm {m['cuda_capability']}, {m['cuda_memory_gb']} GB)")
    load0, load1 = m.get("load_average_1min_at_start"), m.get("load_average_1min_at_end")
    lines.append(f"load average (1 min): {load0} at start, {load1} at end (the end includes the benchmark itself)")
    if load0 is not None and m["usable_cores"] and load0 > 0.5 * m["usable_cores"]:
        lines.append("NOTE: other processes were using the CPU when the run started; absolute numbers are pessimistic.")
    for note in result.get("notes", []):
        lines.append(f"model: {note}")

    if "region_batching" in result:
        lines += ["", "== (a) region batching: all K regions in one backbone call vs the per-region loop (eval)"]
        rows = []
        for c in result["region_batching"]:
            fps = c["faces_per_s"]
            worst = max((v for d in c["max_abs_diff"].values() for k, v in d.items() if k != "logits"), default=0.0)
            rows.append(
                [
                    c["case"],
                    f"{c['model']} {c['input_size']}px",
                    c["batch_size"],
                    fps["batched"],
                    fps["half"],
                    fps["loop"],
                    f"{c['batched_vs_loop_speedup']:.2f}x",
                    c["fastest"],
                    c["autotune_pick"],
                    f"{'yes' if c['outputs_equal'] else 'NO'} ({worst:.1e})",
                ]
            )
        lines.append(
            _table(
                [
                    "case",
                    "model",
                    "batch",
                    "batched f/s",
                    "half f/s",
                    "loop f/s",
                    "speedup",
                    "fastest",
                    "autotune",
                    "equal (max diff)",
                ],
                rows,
            )  # fmt: skip
        )
    if result.get("onnx"):
        lines += ["", "== (b2) PyTorch fp32 vs ONNX Runtime on the exported graph (CPU, faces/s)"]
        rows = []
        for key, res in result["onnx"].items():
            if res.get("skipped"):
                lines.append(f"{key}: skipped ({res['reason']})")
                continue
            for r in res["rows"]:
                rows.append(
                    [
                        res["model"],
                        r["batch"],
                        r["torch_faces_per_s"],
                        r["onnx_faces_per_s"],
                        f"{r['onnx_vs_torch_speedup']:.2f}x",
                        f"{r['max_logit_diff']:.1e}",
                    ]
                )
        if rows:
            lines.append(_table(["model", "batch", "torch f/s", "onnxruntime f/s", "speedup", "max |dlogit|"], rows))
    for key in ("ran", "baseline"):
        inf = result.get("inference", {}).get(key)
        if not inf:
            continue
        lines += ["", f"== (b) inference {inf['model']} (torch.inference_mode, eval)"]
        rows = [
            [
                r["variant"],
                r["batch"],
                r["faces_per_s"],
                r["ms_per_batch"],
                r.get("max_prob_diff_vs_fp32"),
                r.get("argmax_agreement_vs_fp32"),
            ]
            for r in inf["rows"]
        ]
        lines.append(_table(["variant", "batch", "faces/s", "ms/batch", "max dP vs fp32", "same class"], rows))
        lines.append(
            "best: "
            + "; ".join(f"batch {b}: {v['variant']} ({v['speedup_vs_fp32']:.2f}x fp32)" for b, v in inf["best"].items())
        )
    if result.get("threads"):
        th = result["threads"]
        lines += ["", f"== (b) CPU threads, {th['model']} fp32"]
        rows = [[r["threads"], r["batch"], r["faces_per_s"], r["ms_per_batch"]] for r in th["rows"]]
        lines.append(_table(["threads", "batch", "faces/s", "ms/batch"], rows))
        lines.append("best: " + "; ".join(f"batch {b}: {n} thread(s)" for b, n in th["best_threads"].items()))
    for key in ("ran", "baseline"):
        tr = result.get("training", {}).get(key)
        if not tr:
            continue
        lines += ["", f"== (c) training {tr['model']}: {tr['optimizer']}"]
        rows = [
            [r["variant"], r["batch"], r["samples_per_s"], r["ms_per_step"], r["peak_mem_mb"], r["loss_finite"]]
            for r in tr["rows"]
        ]
        lines.append(_table(["variant", "batch", "samples/s", "ms/step", "peak MB", "finite loss"], rows))
        lines.append(f"best: {tr['best']}; memory: {tr['memory_method']}")
    if "camera" in result:
        cam = result["camera"]
        lines += ["", "== (d) live camera path"]
        if "skipped" in cam:
            lines.append(f"skipped: {cam['skipped']}")
        else:
            lines.append(
                f"{cam['video']}; detector {cam['detector']}; model {cam['model']}; "
                f"{cam['frames_with_one_face']}/{cam['frames']} frames with one face"
            )
            ms = cam["ms_per_frame"]
            rows = [[k.replace("_", " + ") if k == "alignment_regions" else k, v] for k, v in ms.items()]
            lines.append(_table(["stage", "ms/frame"], rows))
            if cam.get("per_face_latency_ms"):
                pf = cam["per_face_latency_ms"]
                lines.append(
                    "per face (median): " + ", ".join(f"{k.replace('_', ' + ')} {v:.1f} ms" for k, v in pf.items())
                )
            lines.append(f"detector on every frame: {cam['every_frame_fps']:.1f} fps")
            live = cam.get("live", {})
            if "fps" in live:
                st = live.get("settings", {})
                stages = ", ".join(f"{k} {v:.1f}" for k, v in live.get("ms", {}).items())
                lines.append(
                    f"end to end (live path: detect every {st.get('detect_every')} frames on a "
                    f"{st.get('detect_max_side')} px copy, optical-flow tracking between): {live['fps']:.1f} fps"
                )
                lines.append(f"  live ms/frame: {stages}")
            elif "skipped" in live:
                lines.append(f"live path skipped: {live['skipped']}")
            for k, v in cam.get("detect_every", {}).items():
                if k != "1" and v["end_to_end_fps"]:
                    lines.append(
                        f"detecting every {k} frames, boxes reused between: {v['end_to_end_fps']:.1f} fps "
                        f"({v['mean_faces_per_frame']:.2f} faces/frame)"
                    )
            if cam.get("detectors"):
                rows = [
                    [d["detector"], d["settings"], d.get("ms_per_frame"), d.get("mean_faces_found"), _short(d)]
                    for d in cam["detectors"]
                ]
                lines.append("detection alone on 640x480 frames:")
                lines.append(_table(["detector", "settings", "ms/frame", "faces found", "skipped"], rows))
    lines += ["", "== summary"]
    speed = result.get("batched_vs_loop_speedup")
    lines.append(f"batched_vs_loop_speedup: {speed:.2f}x" if speed else "batched_vs_loop_speedup: -")
    fps = result.get("end_to_end_fps")
    lines.append(f"end_to_end_fps: {fps:.1f}" if fps else "end_to_end_fps: - (camera section skipped)")
    return "\n".join(lines)
