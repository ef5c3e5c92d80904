"""``ran-core bench`` smoke tests: tiny sizes, one iteration, structure and equality checks (never timings)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ran_core import bench, create_model
from ran_core.cli import main
from ran_core.faces.detectors import Detection

CPU = torch.device("cpu")


def _tiny_plan() -> bench.BenchPlan:
    return bench.BenchPlan(
        region_cases=[("main model", None, None, 2), ("compact 16px", "ran_compact", 16, 2)],
        inference_batches=(1, 2),
        inference_variants=("fp32", "channels_last", "bf16"),
        train_batch=2,
        train_variants=("fp32", "bf16"),
        fixed_stages=(2,),
        camera_frames=4,
        detector_frames=0,
        min_time=0.0,
        min_iters=1,
        warmup=0,
        autotune_repeats=1,
    )


class _CentreDetector:
    """Finds one face in the middle of every frame, instantly, so the camera path is tested without a CNN."""

    name = "centre"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        return [Detection((w * 0.3, h * 0.2, w * 0.7, h * 0.8), 0.99)]


def test_region_strategies_agree_and_are_reported() -> None:
    model = create_model("ran_compact", input_size=24).eval()
    model.region_chunk = 2
    r = bench.compare_region_strategies(model, 2, CPU, _tiny_plan())
    assert r["outputs_equal"] is True
    assert r["region_chunk"] == {"batched": None, "half": 3, "loop": 1}
    for label in ("half", "loop"):
        diffs = r["max_abs_diff"][label]
        assert set(diffs) == {"logits", "probabilities", "alpha", "beta"}
        assert all(0 <= v <= bench.EQUAL_ATOL for k, v in diffs.items() if k != "logits")
    assert set(r["faces_per_s"]) == {"batched", "half", "loop"} and all(v > 0 for v in r["faces_per_s"].values())
    assert r["batched_vs_loop_speedup"] > 0 and r["fastest"] in r["faces_per_s"]
    assert r["autotune_pick"] in r["faces_per_s"]
    assert model.region_chunk == 2  # the caller's model is left alone


def test_inference_and_training_rows() -> None:
    model = create_model("ran_compact", input_size=24)
    inf = bench.bench_inference(model, CPU, (1, 2), ("fp32", "channels_last", "bf16"), _tiny_plan())
    assert [(r["variant"], r["batch"]) for r in inf["rows"]] == [
        (v, b) for v in ("fp32", "channels_last", "bf16") for b in (1, 2)
    ]
    bf16 = [r for r in inf["rows"] if r["variant"] == "bf16"]
    assert all(0 <= r["max_prob_diff_vs_fp32"] < 0.1 for r in bf16)
    assert set(inf["best"]) == {"1", "2"} and all(v["speedup_vs_fp32"] > 0 for v in inf["best"].values())

    tr = bench.bench_training(create_model("baseline_compact", input_size=24), CPU, 2, ("fp32", "bf16"), _tiny_plan())
    assert [r["variant"] for r in tr["rows"]] == ["fp32", "bf16"]
    assert all(r["loss_finite"] and r["samples_per_s"] > 0 and r["peak_mem_mb"] is not None for r in tr["rows"])
    assert tr["best"] in ("fp32", "bf16") and tr["memory_method"]
    with pytest.raises(ValueError, match="fp16"):
        bench.bench_inference(model, CPU, (1,), ("fp16",), _tiny_plan())


def test_thread_counts_are_restored() -> None:
    before = torch.get_num_threads()
    th = bench.bench_threads(create_model("ran_compact", input_size=24), (1,), (1, 2), _tiny_plan())
    assert torch.get_num_threads() == before
    assert [(r["threads"], r["batch"]) for r in th["rows"]] == [(1, 1), (2, 1)]
    assert th["best_threads"]["1"] in (1, 2)


def test_camera_path_with_a_stub_detector() -> None:
    model = create_model("ran_compact", input_size=24)
    cam = bench.bench_camera(model, CPU, _CentreDetector(), frames=4, detect_every=(1, 2), detector_frames=0)
    assert "skipped" not in cam, cam
    assert cam["tta"] == "none"  # the model's saved one
    assert cam["frames"] == 3 and cam["frames_with_one_face"] == 3 and cam["detector"] == "centre"
    assert set(cam["ms_per_frame"]) == {"decode", "detection", "alignment_regions", "model", "overlay", "total"}
    assert set(cam["per_face_latency_ms"]) == {"detection", "alignment_regions", "model"}
    assert cam["end_to_end_fps"] > 0 and set(cam["detect_every"]) == {"1", "2"}
    # the headline is the camera path as the app runs it; the PyTorch path with inline detection is kept beside it
    app, before = cam["live"], cam["live_sync_torch"]
    assert cam["end_to_end_fps"] == app["fps"] and before["fps"] > 0
    assert app["settings"]["async_detect"] is True and before["settings"]["async_detect"] is False
    assert before["settings"]["backend"] == "torch" and before["max_detection_lag"] == 0
    if all(importlib.util.find_spec(m) for m in ("onnxruntime", "onnxscript", "onnx")):  # the `onnx` extra
        assert app["settings"]["backend"] == "onnx" and app["settings"]["onnx_threads"] == 1
    else:
        assert app["settings"]["backend"] == "torch" and "onnx_fallback" in app
    assert app["frames"] == before["frames"] == 4 and app["faces_per_frame"] == before["faces_per_frame"] == 1.0
    report = bench.format_report({"machine": bench.machine_info(CPU), "camera": cam})
    assert "live path as the app runs it" in report and "before: PyTorch, detection inside the frame loop" in report
    assert "on a background thread" in report and "latency median" in report and "(TTA none)" in report
    flip = bench.bench_camera(model, CPU, _CentreDetector(), frames=2, detect_every=(1,), detector_frames=0, tta="flip")
    assert flip["tta"] == "flip" and flip["frames_with_one_face"] == 1


def test_camera_path_says_why_it_is_skipped() -> None:
    cam = bench.bench_camera(create_model("ran_compact"), CPU, "no-such-detector", frames=2)
    assert set(cam) == {"skipped"} and "no-such-detector" in cam["skipped"]
    result = bench.run_bench(device="cpu", plan=_tiny_plan(), sections=("camera",), detector="no-such-detector",
                             progress=False)  # fmt: skip
    assert result["end_to_end_fps"] is None and "skipped" in result["camera"]
    report = bench.format_report(result)
    assert "skipped: cannot build the predictor" in report and "end_to_end_fps: -" in report


def test_test_video_is_640x480(tmp_path: Path) -> None:
    import cv2

    video = bench.write_camera_video(tmp_path / "v", frames=3)
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (480, 640, 3)


def test_run_bench_is_json_and_formats(monkeypatch) -> None:
    result = bench.run_bench(device="cpu", plan=_tiny_plan(), sections=("regions", "camera"), progress=False,
                             detector=_CentreDetector())  # fmt: skip
    text = json.dumps(result, allow_nan=False)
    assert "end_to_end_fps" in result and "batched_vs_loop_speedup" in result
    assert result["batched_vs_loop_speedup"] == result["region_batching"][0]["batched_vs_loop_speedup"]
    assert all(case["outputs_equal"] for case in result["region_batching"])
    m = result["machine"]
    assert m["torch"] == torch.__version__ and m["torch_threads"] >= 1 and m["cpu"]
    assert len(result["notes"]) == 2 and result["models"]["ran"]["regions"] == 6
    report = bench.format_report(result)
    for needle in ("== machine", "(a) region batching", "(d) live camera path", "batched_vs_loop_speedup", "fps"):
        assert needle in report
    assert "inference" not in result and "ran_compact" in text
    # Only a busy machine at the start is blamed on other processes: the load at the end is the benchmark's own.
    cores = m["usable_cores"]
    m.update(load_average_1min_at_start=0.1, load_average_1min_at_end=2.0 * cores)
    assert "NOTE: other processes" not in bench.format_report(result)
    m.update(load_average_1min_at_start=0.9 * cores)
    assert "NOTE: other processes" in bench.format_report(result)


def test_cli_writes_json(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(bench.BenchPlan, "quick", classmethod(lambda cls: _tiny_plan()))
    out = tmp_path / "bench.json"
    code = main(["bench", "--quick", "--device", "cpu", "--sections", "inference", "--no-progress", "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["inference"]["ran"]["rows"] and data["inference"]["baseline"]["rows"]
    assert "camera" not in data and "region_batching" not in data
    assert {r["threads"] for r in data["threads"]["rows"]} == {1, torch.get_num_threads()}
    printed = capsys.readouterr().out
    assert "(b) inference" in printed and str(out) in printed
    assert main(["bench", "--model", "no-such-model", "--sections", "inference", "--no-progress"]) == 2


def test_onnx_rows_compare_torch_and_onnxruntime() -> None:
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = create_model("ran_compact").eval()
    res = bench.bench_onnx(model, (1, 4), _tiny_plan())
    assert [r["batch"] for r in res["rows"]] == [1, 4]
    for r in res["rows"]:
        assert r["torch_faces_per_s"] > 0 and r["onnx_faces_per_s"] > 0 and r["max_logit_diff"] <= 1e-4
    assert res["onnx_vs_torch_speedup"] == res["rows"][0]["onnx_vs_torch_speedup"]
    report = bench.format_report({"machine": bench.machine_info(torch.device("cpu")), "onnx": {"ran": res}})
    assert "ONNX Runtime" in report and "onnxruntime f/s" in report


def test_peak_memory_probe_sees_an_allocation() -> None:
    from ran_core.bench.training import _PeakMemory

    with _PeakMemory(CPU) as mem:
        block = np.ones(64 * 2**20, np.uint8)  # 64 MB, written so the pages are resident
        del block
    if not mem.method.startswith("peak RSS"):
        pytest.skip(f"no per-block peak here ({mem.method})")
    assert 60 <= mem.peak_mb < 200


def test_report_formats_a_saved_result_without_running_anything() -> None:
    """report.py needs only the JSON: a result read back from ``--json`` prints the same tables."""
    live = {
        "fps": 120.0, "frames": 20, "faces_per_frame": 1.0, "detections": 2, "detection_errors": 1,
        "detector_ms_per_run": 2.0, "max_detection_lag": 1, "ms": {"decode": 1.0, "total": 8.0},
        "latency_ms": {"median": 7.5, "p95": 9.5, "max": 12.0},
        "settings": {"detector": "blazeface", "detect_every": 10, "detect_max_side": 320, "track": True,
                     "async_detect": True, "backend": "onnx", "onnx_threads": 1},
    }  # fmt: skip
    machine = bench.machine_info(CPU)
    result = json.loads(json.dumps({"machine": machine, "camera": {"skipped": "no camera"}, "end_to_end_fps": None}))
    text = bench.format_report(result)
    assert "skipped: no camera" in text and "end_to_end_fps: -" in text
    cam = {"video": "v", "detector": "blazeface", "model": "m", "frames": 20, "frames_with_one_face": 20,
           "ms_per_frame": {"total": 10.0}, "every_frame_fps": 100.0, "live": live,
           "live_sync_torch": {"skipped": "stream path failed (boom)"}}  # fmt: skip
    text = bench.format_report({"machine": machine, "camera": cam, "end_to_end_fps": 120.0})
    assert "live path as the app runs it: 120.0 fps, latency median 7.5 / p95 9.5 / max 12.0 ms" in text
    assert "model on ONNX Runtime, 1 thread(s); detector blazeface on a background thread, every 10 frames" in text
    assert "applied up to 1 frame(s) later" in text and "1 detector runs failed" in text
    assert "before: PyTorch, detection inside the frame loop: skipped (stream path failed (boom))" in text
    assert text.endswith("end_to_end_fps: 120.0")


def test_training_per_region_loop_variant() -> None:
    model = create_model("ran_compact", input_size=24)
    tr = bench.bench_training(model, CPU, 2, ("fp32", "fp32+loop"), _tiny_plan())
    assert [r["variant"] for r in tr["rows"]] == ["fp32", "fp32+loop"]
    assert all(r["loss_finite"] for r in tr["rows"])
    assert set(tr["batched_vs_loop_speedup"]) == {"fp32"} and tr["batched_vs_loop_speedup"]["fp32"] > 0
    assert model.region_chunk is None  # the measured copy loops; the model itself is untouched
    with pytest.raises(ValueError, match="unknown variant"):
        bench.bench_training(model, CPU, 2, ("fp32+sideways",), _tiny_plan())


def test_training_with_fixed_backbone_stages() -> None:
    model = create_model("ran_compact", input_size=24)
    tr = bench.bench_training(model, CPU, 2, ("fp32", "fp32+fix2", "fp32+fix4"), _tiny_plan())
    assert [r["variant"] for r in tr["rows"]] == ["fp32", "fp32+fix2", "fp32+fix4"]
    assert all(r["loss_finite"] for r in tr["rows"])
    assert set(tr["fixed_stages_speedup"]) == {"fp32+fix2", "fp32+fix4"}
    assert all(p.requires_grad for p in model.parameters()) and model.backbone.stem.training  # the copy is fixed
    report = bench.format_report({"machine": bench.machine_info(CPU), "training": {"ran": tr}})
    assert "fp32+fix2: the first 2 backbone stage(s) fixed (train --freeze-stages 2) train" in report
    with pytest.raises(ValueError, match="unknown variant"):
        bench.bench_training(model, CPU, 2, ("fp32+fix",), _tiny_plan())


def test_cli_training_section_at_a_chosen_input_size(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bench.BenchPlan, "quick", classmethod(lambda cls: _tiny_plan()))
    out = tmp_path / "bench.json"
    args = ["bench", "--quick", "--device", "cpu", "--sections", "training", "--no-progress", "--json", str(out)]
    code = main(args + ["--model", "ran_compact", "--baseline", "baseline_compact", "--input-size", "32"])
    assert code == 0
    tr = json.loads(out.read_text())["training"]
    assert tr["ran"]["input_size"] == tr["baseline"]["input_size"] == 32
    looped = [r for r in tr["ran"]["rows"] if r["variant"].endswith("+loop")]
    assert len(looped) == 1 and looped[0]["variant"] == tr["ran"]["best"] + "+loop"
    assert set(tr["ran"]["batched_vs_loop_speedup"]) == {tr["ran"]["best"]}
    assert not any(r["variant"].endswith("+loop") for r in tr["baseline"]["rows"])  # one region: nothing to loop
    report = bench.format_report(json.loads(out.read_text()))
    assert "as fast as the per-region loop" in report
    fixed = [r["variant"] for r in tr["ran"]["rows"] if "+fix" in r["variant"]]
    assert fixed == [tr["ran"]["best"] + "+fix2"] and set(tr["ran"]["fixed_stages_speedup"]) == set(fixed)
    assert "fixed_stages_speedup" not in tr["baseline"]
