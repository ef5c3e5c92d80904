"""Benchmarks behind ``ran-core bench``: is RAN fast enough for live use on this machine, and with which settings?

Four sections, one file each, each a function returning plain JSON-ready dicts:

(a) ``regions.py``: :func:`compare_region_strategies` - all K regions in one backbone call vs the official per-region
    loop (same weights, outputs checked equal) and what :meth:`autotune_region_chunk` picks;
(b) ``inference.py``: :func:`bench_inference` - faces/s at several batch sizes, fp32 / channels_last / bf16 autocast;
    :func:`bench_onnx` (PyTorch against ONNX Runtime) and :func:`bench_threads`;
(c) ``training.py``: :func:`bench_training` - samples/s and peak memory of SGD + :class:`~ran_core.losses.RANCriterion`
    steps;
(d) ``camera.py``: :func:`bench_camera` - the live camera path on a recorded 640x480 one-face video: decode, detection,
    alignment + regions, model, overlay, per stage and end to end.

``run.py``: :func:`run_bench` runs them all under a :class:`BenchPlan` (``_common.py``, with the machine description and
timing helpers); ``report.py``: :func:`format_report` turns the result into tables. Times are medians of repeated
runs, so a short burst of competing work on a shared machine moves them little.
"""

from ran_core.bench._common import CAMERA_SAMPLE, SAMPLES_DIR, BenchPlan, machine_info, resolve_models, time_fn
from ran_core.bench.camera import LIVE_MIN_FACE, bench_camera, bench_detectors, write_camera_video
from ran_core.bench.inference import bench_inference, bench_onnx, bench_threads
from ran_core.bench.regions import EQUAL_ATOL, compare_region_strategies
from ran_core.bench.report import format_report
from ran_core.bench.run import run_bench
from ran_core.bench.training import bench_training

__all__ = [
    "CAMERA_SAMPLE",
    "EQUAL_ATOL",
    "LIVE_MIN_FACE",
    "SAMPLES_DIR",
    "BenchPlan",
    "bench_camera",
    "bench_detectors",
    "bench_inference",
    "bench_onnx",
    "bench_threads",
    "bench_training",
    "compare_region_strategies",
    "format_report",
    "machine_info",
    "resolve_models",
    "run_bench",
    "time_fn",
    "write_camera_video",
]
