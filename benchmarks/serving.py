"""Serving benchmark: frames/s through the Ray Serve app vs the raw backend and vs a plain Ultralytics loop.

All numbers come from one run on one machine, measured side by side:
- raw_fps: the ONNX Runtime backend alone (decoded frames in, detections out), batch = serving.max_batch_size,
  given every core of the machine (intra-op threads = cores);
- serve_fps: camera-like HTTP clients posting JPEG frames to /v1/detect/batch, --frames-per-request per request;
  the sweep repeats it at 1 and 8 frames per request to show what each request costs;
- serve_handle_fps: frames through a Ray handle to the Router (how camera workers call it);
- ultralytics_loop_fps: one thread per camera calling YOLO.predict on each frame, the way a user would write it;
- stream_fps: WebSocket clients on /v1/stream, one frame per message (a few in flight per connection);
- raw_fps at fp32 and at int8, and the gold mAP50 of both (int8_map50_drop), on the bootstrap champion.

Usage: python -m benchmarks.serving [--seconds 15] [--clients 4] [--frames-per-request 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from rich.console import Console
from rich.table import Table

from benchmarks.own_var import benchmark_settings
from benchmarks.process_memory import wait_until_idle
from visionloop.cli.stream_client import run_stream_clients
from visionloop.core.contracts import EncodedFrame
from visionloop.core.imaging import decode_image
from visionloop.core.model_setup import ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.settings import Settings
from visionloop.serving.app import resolve_serving_model
from visionloop.serving.backends import BackendOptions, create_backend
from visionloop.simulation.clips import render_clip, render_clip_jpegs

RESULTS = Path(__file__).resolve().parent / "results" / "serving.json"
# Ports of the benchmark's own service, away from a `visionloop up` that may be running (benchmarks.gpu_check too).
BENCH_PORTS = {
    "VISIONLOOP_API__PORT": "18123",
    "VISIONLOOP_REDIS__EMBEDDED_PORT": "16391",
    "VISIONLOOP_RAY__METRICS_EXPORT_PORT": "18124",
}
console = Console()


def tree_rss_mb() -> float:
    """RSS of this process and every descendant (Ray's GCS, raylet, workers; embedded Redis)."""
    me = psutil.Process()
    total = 0
    for proc in [me, *me.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def measure_raw(
    settings: Settings, jpegs: list[bytes], seconds: float, expect_device: str | None = None
) -> dict[str, float]:
    """Frames/s of the backend alone; ``expect_device`` refuses a backend that ended up elsewhere (ORT's silent
    CPU fallback would otherwise pass for GPU figures)."""
    resolved = resolve_serving_model(settings)
    path, names = resolved.path, resolved.class_names
    s = settings.serving
    backend = create_backend(
        "onnxruntime",
        BackendOptions(
            path,
            s.imgsz,
            s.conf_threshold,
            s.iou_threshold,
            s.max_detections,
            s.device,
            os.cpu_count() or 1,
            tuple(names),
        ),
    )
    if expect_device is not None and backend.device != expect_device:
        raise RuntimeError(f"the {backend.name} backend runs on '{backend.device}', not on '{expect_device}'")
    frames = [decode_image(j) for j in jpegs]
    batch = s.max_batch_size
    backend.predict(frames[:batch])  # warm-up
    done, start, i = 0, time.perf_counter(), 0
    decode_s = 0.0
    while time.perf_counter() - start < seconds:
        group = [frames[(i + k) % len(frames)] for k in range(batch)]
        backend.predict(group)
        i += batch
        done += batch
    elapsed = time.perf_counter() - start
    t0 = time.perf_counter()
    for j in jpegs:
        decode_image(j)
    decode_s = (time.perf_counter() - t0) / len(jpegs)
    fps = done / elapsed
    return {"raw_fps": fps, "raw_with_decode_fps": 1 / (1 / fps + decode_s), "decode_ms": decode_s * 1e3}


def measure_ultralytics_loop(settings: Settings, frames: list[np.ndarray], clients: int, seconds: float) -> float:
    prepare_ultralytics(ultralytics_config_dir(settings))
    from ultralytics import YOLO

    from visionloop.core.model_setup import registry_for

    weights = registry_for(settings).champion().torch_path
    models = [YOLO(str(weights), task="detect") for _ in range(clients)]
    for model in models:
        model.predict(frames[0], imgsz=settings.serving.imgsz, verbose=False)
    counts = [0] * clients
    stop_at = time.monotonic() + seconds

    def camera_loop(idx: int) -> None:
        k = idx
        while time.monotonic() < stop_at:
            models[idx].predict(frames[k % len(frames)], imgsz=settings.serving.imgsz, verbose=False)
            counts[idx] += 1
            k += 1

    start = time.monotonic()
    threads = [threading.Thread(target=camera_loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def with_precision(settings: Settings, precision: str) -> Settings:
    return settings.model_copy(update={"serving": settings.serving.model_copy(update={"precision": precision})})


def int8_accuracy(settings: Settings) -> dict[str, Any]:
    """Gold mAP50 of the champion at fp32 and int8 (the operating point, the serving input size)."""
    from visionloop.core.model_setup import registry_for
    from visionloop.learning.datasets import DatasetStore
    from visionloop.learning.evaluation import serving_map50

    champion = registry_for(settings).champion()
    gold_ref = champion.meta.get("gold_dataset")
    if not gold_ref or not champion.int8_path.is_file():
        return {"gold_map50_fp32": None, "gold_map50_int8": None, "int8_map50_drop": None}
    gold = DatasetStore(settings.var.datasets).get(str(gold_ref)).data_yaml
    fp32 = serving_map50(settings, champion.onnx_path, gold, champion.class_names)
    int8 = serving_map50(settings, champion.int8_path, gold, champion.class_names)
    return {"gold_map50_fp32": fp32, "gold_map50_int8": int8, "int8_map50_drop": fp32 - int8}


def batch_mean_from_metrics(metrics_text: str) -> float | None:
    total = count = 0.0
    for line in metrics_text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name.endswith("visionloop_batch_size_sum"):  # Ray prefixes custom metrics with "ray_"
            total += float(line.rsplit(" ", 1)[1])
        elif name.endswith("visionloop_batch_size_count"):
            count += float(line.rsplit(" ", 1)[1])
    return total / count if count else None


async def measure_handle(
    jpegs: list[bytes], clients: int, per_request: int, seconds: float
) -> tuple[float, list[float]]:
    from ray import serve

    from visionloop.core.streams import SERVE_APP_NAME

    router = serve.get_app_handle(SERVE_APP_NAME)
    latencies: list[float] = []
    frames_done = 0
    stop_at = time.monotonic() + seconds

    async def camera(idx: int) -> None:
        nonlocal frames_done
        k = idx * 7
        while time.monotonic() < stop_at:
            group = [jpegs[(k + j) % len(jpegs)] for j in range(per_request)]
            k += per_request
            t0 = time.perf_counter()
            results = await router.process_frames.remote([EncodedFrame(f"handle-{idx}", data) for data in group])
            latencies.append((time.perf_counter() - t0) * 1e3)
            frames_done += len(results)

    start = time.monotonic()
    await asyncio.gather(*(camera(i) for i in range(clients)))
    return frames_done / (time.monotonic() - start), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--frames-per-request", type=int, default=32)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: serving.device)")
    parser.add_argument("--width", type=int, default=320, help="frame width (16:9 frames)")
    parser.add_argument("--stream-window", type=int, default=4, help="frames in flight per /v1/stream connection")
    args = parser.parse_args()

    overrides = dict(BENCH_PORTS)
    if args.device:
        overrides["VISIONLOOP_SERVING__DEVICE"] = args.device
    settings = benchmark_settings("serving", {**os.environ, **overrides})
    from visionloop.simulation.bootstrap import run_bootstrap

    run_bootstrap(settings, console)  # the trained champion (cached): int8 accuracy means nothing untrained
    height = args.width * 9 // 16
    jpegs = render_clip_jpegs(frames=64, width=args.width, height=height, seed=3)
    frames = render_clip(frames=64, width=args.width, height=height, seed=3)

    console.print(f"[bold]raw backend[/] (batch {settings.serving.max_batch_size}, {args.seconds:.0f} s)")
    raw = measure_raw(settings, jpegs, args.seconds)
    precisions = {
        p: measure_raw(with_precision(settings, p), jpegs, args.seconds / 2)["raw_fps"] for p in ("fp32", "int8")
    }
    console.print("[bold]gold mAP50[/] at fp32 and int8")
    int8_map50 = int8_accuracy(settings)
    console.print(f"[bold]ultralytics predict loop[/] ({args.clients} cameras, {args.seconds:.0f} s)")
    ultra_fps = measure_ultralytics_loop(settings, frames, args.clients, args.seconds)

    from visionloop.cli.loadgen import run_clients
    from visionloop.cli.service import VisionloopService

    rss_before = tree_rss_mb()
    console.print("[bold]Serve app[/] (starting)")
    with VisionloopService(settings) as service:
        console.print(f"service idle (start-up work done): {wait_until_idle():.2f} cores busy")
        token = settings.api.token.get_secret_value()
        run_clients(service.api_url, token, jpegs, args.clients, 3.0, args.frames_per_request)  # warm-up
        sweep = {}
        for per_request in sorted({1, 8, args.frames_per_request}):
            console.print(f"  HTTP, {per_request} frame(s) per request")
            sweep[per_request] = run_clients(service.api_url, token, jpegs, args.clients, args.seconds, per_request)
        report = sweep[args.frames_per_request]
        console.print(f"  WebSocket /v1/stream, 1 frame per message, {args.stream_window} in flight per connection")
        stream = run_stream_clients(service.api_url, token, jpegs, args.clients, args.seconds, args.stream_window)
        rss_mb = tree_rss_mb()
        handle_fps, handle_lat = asyncio.run(measure_handle(jpegs, args.clients, args.frames_per_request, args.seconds))
        from visionloop.cli.client import ApiClient

        batch_mean = None
        with ApiClient(service.api_url) as client:
            deadline = time.monotonic() + 30
            while batch_mean is None and time.monotonic() < deadline:
                batch_mean = batch_mean_from_metrics(client.metrics())
                if batch_mean is None:
                    time.sleep(2)

    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "device": settings.serving.device},
        "frame": f"{args.width}x{height} JPEG",
        "clients": args.clients,
        "frames_per_request": args.frames_per_request,
        "batch_size": settings.serving.max_batch_size,
        "raw_fps": raw["raw_fps"],
        "raw_with_decode_fps": raw["raw_with_decode_fps"],
        "serve_fps": report.fps,
        "serve_handle_fps": handle_fps,
        "efficiency": report.fps / raw["raw_fps"],
        "efficiency_handle": handle_fps / raw["raw_fps"],
        "ultralytics_loop_fps": ultra_fps,
        "speedup": report.fps / ultra_fps,
        "stream_fps": stream.fps,
        "stream_efficiency": stream.fps / raw["raw_fps"],
        "stream_latency_ms_p50": stream.percentile(50),
        "stream_latency_ms_p99": stream.percentile(99),
        "stream_failed_frames": stream.errors,
        "precision": settings.serving.precision,
        "raw_fps_fp32": precisions["fp32"],
        "raw_fps_int8": precisions["int8"],
        "int8_raw_speedup": precisions["int8"] / precisions["fp32"],
        **int8_map50,
        "latency_ms_p50": report.percentile(50),
        "latency_ms_p99": report.percentile(99),
        "handle_latency_ms_p50": float(np.percentile(handle_lat, 50)),
        "handle_latency_ms_p99": float(np.percentile(handle_lat, 99)),
        "stage_ms_median": {k: report.stage_median(k) for k in ("decode", "queue", "batch", "inference", "post")},
        "batch_mean": batch_mean,
        "rss_mb": rss_mb,
        "rss_mb_before_serve": rss_before,
        "failed_requests": report.errors,
        "sweep": {
            str(k): {
                "serve_fps": r.fps,
                "efficiency": r.fps / raw["raw_fps"],
                "latency_ms_p50": r.percentile(50),
                "latency_ms_p99": r.percentile(99),
                "failed_requests": r.errors,
            }
            for k, r in sweep.items()
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    table = Table(title="serving benchmark (one run, same machine)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in (
        "raw_fps",
        "raw_with_decode_fps",
        "serve_fps",
        "serve_handle_fps",
        "efficiency",
        "efficiency_handle",
        "ultralytics_loop_fps",
        "speedup",
        "stream_fps",
        "stream_efficiency",
        "raw_fps_fp32",
        "raw_fps_int8",
        "int8_raw_speedup",
        "gold_map50_fp32",
        "gold_map50_int8",
        "int8_map50_drop",
        "latency_ms_p50",
        "latency_ms_p99",
        "handle_latency_ms_p50",
        "handle_latency_ms_p99",
        "batch_mean",
        "rss_mb",
        "failed_requests",
    ):
        value = result[key]
        table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
    console.print(table)
    sweep_table = Table(title="frames per HTTP request vs throughput")
    for column in ("frames/request", "serve_fps", "efficiency", "p50 ms", "p99 ms"):
        sweep_table.add_column(column, justify="right")
    for k, row in result["sweep"].items():
        sweep_table.add_row(
            k,
            f"{row['serve_fps']:.1f}",
            f"{row['efficiency']:.2f}",
            f"{row['latency_ms_p50']:.1f}",
            f"{row['latency_ms_p99']:.1f}",
        )
    console.print(sweep_table)
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
