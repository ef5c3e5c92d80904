"""Readable tables of a :func:`~ran_core.bench.run_bench` result."""

from __future__ import annotations

from typing import Any


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


def _live_lines(label: str, live: dict[str, Any]) -> list[str]:
    """One :func:`~ran_core.stream.measure_stream_fps` result: how it ran, fps, latency, stages."""
    if "fps" not in live:
        return [f"{label}: skipped ({live['skipped']})"] if "skipped" in live else []
    st = live.get("settings", {})
    backend = f"ONNX Runtime, {st['onnx_threads']} thread(s)" if st.get("backend") == "onnx" else "PyTorch"
    where = "on a background thread" if st.get("async_detect") else "in the frame loop"
    lat = live["latency_ms"]
    lines = [
        f"{label}: {live['fps']:.1f} fps, latency median {lat['median']:.1f} / p95 {lat['p95']:.1f} / max "
        f"{lat['max']:.1f} ms",
        f"  model on {backend}; detector {st.get('detector')} {where}, every {st.get('detect_every')} frames on a "
        f"{st.get('detect_max_side')} px copy, optical-flow tracking between",
    ]
    if live.get("onnx_fallback"):
        lines.append(f"  (not ONNX Runtime: {live['onnx_fallback']})")
    if live.get("detector_ms_per_run") is not None:
        lag = f", applied up to {live['max_detection_lag']} frame(s) later" if st.get("async_detect") else ""
        lines.append(f"  detector {live['detector_ms_per_run']:.1f} ms a run{lag}; {live['detections']} runs")
    if live.get("detection_errors"):
        lines.append(f"  {live['detection_errors']} detector runs failed (tracking carried on)")
    lines.append("  ms/frame: " + ", ".join(f"{k} {v:.1f}" for k, v in live.get("ms", {}).items()))
    return lines


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
        for variant, x in tr.get("batched_vs_loop_speedup", {}).items():
            lines.append(f"{variant}: all regions in one backbone call train {x:.2f}x as fast as the per-region loop")
        for variant, x in tr.get("fixed_stages_speedup", {}).items():
            n = variant.rsplit("+fix", 1)[1]
            lines.append(
                f"{variant}: the first {n} backbone stage(s) fixed (train --freeze-stages {n}) train {x:.2f}x as fast"
            )
    if "camera" in result:
        cam = result["camera"]
        lines += ["", "== (d) live camera path"]
        if "skipped" in cam:
            lines.append(f"skipped: {cam['skipped']}")
        else:
            lines.append(
                f"{cam['video']}; detector {cam['detector']}; model {cam['model']} (TTA {cam.get('tta', 'none')}); "
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
            lines += _live_lines("end to end, live path as the app runs it", cam.get("live", {}))
            if "live_sync_torch" in cam:
                lines += _live_lines("before: PyTorch, detection inside the frame loop", cam["live_sync_torch"])
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
