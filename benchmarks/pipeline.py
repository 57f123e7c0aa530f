"""Pipeline benchmark: simulated RTSP cameras end to end through the whole service.

Side by side in one run, on the same simulated RTSP cameras:
- the raw backend (decoded camera-size frames, batch = serving.max_batch_size, every core, serving.precision);
- the plain loop a user would write: per camera, cv2.VideoCapture + Ultralytics predict (fp32 torch);
- visionloop: phase 1x (4 cameras at 15 fps), the capacity (8 cameras asking for every frame), and phase 2x
  (twice the capacity offered by more 15 fps cameras).
For each phase: processed and skipped frames/s, the latency the pipeline adds on top of the model (capture ->
result on the stream, minus inference) with its stages, and the RSS of every process. The summary holds the
ratios: pipeline_efficiency (capacity / raw), e2e_speedup (capacity / plain loop), the 2x/1x p99 ratio.
``--soak 600`` instead runs 4 cameras for ten minutes and reports each process's RSS growth after warm-up.

Usage: python -m benchmarks.pipeline [--seconds 60] [--cameras 4] [--fps 15] [--soak 600]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
from rich.console import Console
from rich.table import Table

from benchmarks.plain_rtsp import plain_rtsp_loop_fps
from benchmarks.process_memory import RssTracker, wait_until_idle
from benchmarks.reliability import record_reliability
from benchmarks.serving import measure_raw
from visionloop.cli.service import VisionloopService
from visionloop.core.config import load_settings
from visionloop.core.contracts import FrameResult
from visionloop.core.model_setup import registry_for, ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.redis_server import port_is_free
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.simulation.clips import render_clip_jpegs
from visionloop.simulation.rtsp_cameras import RtspSimulator, SimulatedCamera, prepare_world_camera

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"
# Per frame: camera decode, camera buffer wait, Detector batch wait, model, post-processing, and the remainder
# (the hop to the Detector and back, and publishing), from what each result carries and when Redis got it.
STAGES = ("decode", "queue", "batch", "inference", "post", "transport")
console = Console()


def _counters(api: httpx.Client, prefix: str = "") -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in api.get("/v1/cameras").json() if row["id"].startswith(prefix)}


def clear_benchmark_cameras(service: VisionloopService, settings: Settings) -> None:
    """Cameras of an interrupted run resume from Redis; remove them so they do not add load."""
    headers = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
    with httpx.Client(base_url=service.api_url, headers=headers, timeout=60) as api:
        for camera_id in _counters(api):
            if camera_id.startswith(("p1-", "p2-", "cal-")):
                api.delete(f"/v1/cameras/{camera_id}")


def run_phase(
    settings: Settings,
    service: VisionloopService,
    simulator: RtspSimulator,
    cameras: list[SimulatedCamera],
    target_fps: float,
    seconds: float,
    label: str,
    sample_every_s: float = 5.0,
    warmup_s: float = 10.0,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
    client = redis.Redis.from_url(service.redis_url)
    stream = StreamNames(settings.redis.stream_prefix).results
    with httpx.Client(base_url=service.api_url, headers=headers, timeout=60) as api:
        for cam in cameras:
            body = {"id": f"{label}-{cam.name}", "url": simulator.url(cam.name), "target_fps": target_fps}
            api.post("/v1/cameras", json=body).raise_for_status()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            rows = _counters(api, f"{label}-")
            if all(r["state"] == "streaming" and r["frames_processed"] > 0 for r in rows.values()):
                break
            time.sleep(0.5)
        time.sleep(3)  # settle
        start_rows, start_id = _counters(api, f"{label}-"), f"{int(time.time() * 1000)}-0"
        tracker = RssTracker()
        rss_start = tracker.sample()
        rss_samples = [rss_start]
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(min(sample_every_s, seconds - (time.monotonic() - started)))
            rss_samples.append(tracker.sample())
        elapsed = time.monotonic() - started
        end_rows, end_id = _counters(api, f"{label}-"), f"{int(time.time() * 1000)}-0"
        for cam in cameras:
            api.delete(f"/v1/cameras/{label}-{cam.name}")
    added: list[float] = []
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for entry_id, fields in client.xrange(stream, min=start_id, max=end_id):
        result = FrameResult.from_stream_fields(fields)
        if not result.camera_id.startswith(f"{label}-"):
            continue
        published = int(entry_id.split(b"-")[0]) / 1000.0
        total = (published - result.capture_ts) * 1e3
        added.append(total - result.latency.inference_ms)
        lat = result.latency
        values = (lat.decode_ms, lat.queue_ms, lat.batch_ms, lat.inference_ms, lat.post_ms)
        for stage, value in zip(STAGES[:-1], values, strict=True):
            stages[stage].append(value)
        # capture_ts is stamped after the camera's decode: the rest is the hops there and back, and publishing.
        stages["transport"].append(total - lat.queue_ms - lat.batch_ms - lat.inference_ms - lat.post_ms)
    client.close()

    def delta(key: str) -> float:
        return sum(end_rows[k][key] - start_rows[k][key] for k in end_rows) / elapsed

    return {
        "cameras": len(cameras),
        "target_fps_per_camera": target_fps,
        "offered_fps": len(cameras) * min(target_fps, cameras[0].fps),
        "processed_fps": delta("frames_processed"),
        "skipped_fps": delta("frames_skipped"),
        "added_latency_ms_p50": float(np.percentile(added, 50)) if added else None,
        "added_latency_ms_p99": float(np.percentile(added, 99)) if added else None,
        "stage_ms": {
            stage: {"p50": float(np.percentile(v, 50)), "p99": float(np.percentile(v, 99))}
            for stage, v in stages.items()
            if v
        },
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_samples[-1],
        "rss_mb_samples": rss_samples,
        "rss_per_process": tracker.report(skip=min(round(warmup_s / sample_every_s), len(rss_samples) - 1)),
        "seconds": elapsed,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--calibrate-seconds", type=float, default=20.0)
    parser.add_argument("--capacity-cameras", type=int, default=8, help="cameras offered to find the capacity")
    parser.add_argument("--baseline-seconds", type=float, default=20.0, help="raw backend and plain loop, each")
    parser.add_argument("--only-1x", action="store_true", help="the 1x phase alone (no baselines, no summary)")
    parser.add_argument(
        "--soak", type=float, default=0.0, help="instead of the phases: run --cameras for this many seconds and "
        "report each process's RSS growth after the first minute (writes pipeline_soak.json)",
    )  # fmt: skip
    return parser.parse_args()


def measure_baselines(
    settings: Settings, simulator: RtspSimulator, cameras: list[SimulatedCamera], seconds: float
) -> dict[str, Any]:
    """The raw backend on decoded camera-size frames, and the plain RTSP -> Ultralytics loop on ``cameras``."""
    height, width = settings.world.video_size
    jpegs = render_clip_jpegs(frames=64, width=width, height=height, seed=5)
    console.print(f"[bold]raw backend[/] ({settings.serving.precision}, {seconds:.0f} s)")
    raw = measure_raw(settings, jpegs, seconds)
    console.print(f"[bold]plain loop[/]: {len(cameras)} cameras, RTSP -> Ultralytics predict (fp32 torch)")
    prepare_ultralytics(ultralytics_config_dir(settings))
    weights = registry_for(settings).champion().torch_path
    urls = [simulator.url(cam.name) for cam in cameras]
    plain = plain_rtsp_loop_fps(weights, urls, settings.serving.imgsz, seconds, warmup_s=15.0)
    return {"raw": raw, "plain_loop": plain}


def summary(phases: dict[str, Any], baselines: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The ratios the targets are set on, all from this run."""
    capacity = phases["capacity"]["processed_fps"]
    p99_1x, p99_2x = phases["1x"]["added_latency_ms_p99"], phases["2x"]["added_latency_ms_p99"]
    return {
        "precision": settings.serving.precision,
        "raw_fps": baselines["raw"]["raw_fps"],
        "capacity_fps": capacity,
        "capacity_saturated": phases["capacity"]["skipped_fps"] > 0,
        "pipeline_efficiency": capacity / baselines["raw"]["raw_fps"],
        "plain_loop_fps": baselines["plain_loop"]["fps"],
        "e2e_speedup": capacity / baselines["plain_loop"]["fps"] if baselines["plain_loop"]["fps"] else None,
        "added_latency_ms_p50_1x": phases["1x"]["added_latency_ms_p50"],
        "added_latency_ms_p99_1x": p99_1x,
        "added_latency_ms_p99_2x": p99_2x,
        "overload_p99_ratio": p99_2x / p99_1x if p99_1x and p99_2x else None,
        "skipped_fps_2x": phases["2x"]["skipped_fps"],
    }


class RedisKeyCounter:
    """How many keys Redis holds, and each stream's length, after warm-up and at the end (a leak of keys or an
    untrimmed stream shows here)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[dict[str, int]] = []

    def sample(self) -> None:
        client = redis.Redis.from_url(self.url, decode_responses=True)
        try:
            counts = {"keys": int(client.dbsize())}
            for key in client.scan_iter(count=1000):
                if client.type(key) == "stream":
                    counts[f"stream:{key}"] = int(client.xlen(key))
            counts["used_memory_mb"] = int(client.info("memory")["used_memory"]) // 2**20
            self.samples.append(counts)
        finally:
            client.close()

    def report(self) -> dict[str, Any]:
        self.sample()
        start, end = (self.samples[0], self.samples[-1]) if len(self.samples) > 1 else ({}, self.samples[-1])
        return {"after_warm_up": start, "end": end}


def record_soak(soak: dict[str, Any], seconds: float) -> None:
    """The soak's growth figures, per process, into reliability.json beside what the tests measured."""
    rows = soak["rss_per_process"]["processes"]
    figures = {
        "seconds": seconds,
        "rss_growth_pct": {f"{r['process']}[{r['pid']}]": r["growth_pct"] for r in rows},
        "threads": {f"{r['process']}[{r['pid']}]": [r["threads_start"], r["threads_end"]] for r in rows},
        "fds": {f"{r['process']}[{r['pid']}]": [r["fds_start"], r["fds_end"]] for r in rows},
        "redis_keys": soak["redis_keys"],
    }
    record_reliability("soak", figures)


def run_soak(settings: Settings, args: argparse.Namespace, pool: list[SimulatedCamera], port: int) -> None:
    with VisionloopService(settings) as service, RtspSimulator(pool, port) as simulator:
        clear_benchmark_cameras(service, settings)
        console.print(f"service idle (start-up work done): {wait_until_idle():.2f} cores busy")
        console.print(f"[bold]soak[/]: {args.cameras} cameras at {args.fps} fps for {args.soak:.0f} s")
        keys = RedisKeyCounter(service.redis_url)
        timer = threading.Timer(60.0, keys.sample)  # the warm-up the memory figures skip too
        timer.start()
        try:
            soak = run_phase(settings, service, simulator, pool[: args.cameras], args.fps, args.soak, "p1", 10.0, 60.0)
        finally:
            timer.cancel()
        soak["redis_keys"] = keys.report()
    record_soak(soak, args.soak)
    out = RESULTS.with_name("pipeline_soak.json")
    out.write_text(json.dumps(soak, indent=2))
    table = Table(title=f"memory per process over {args.soak:.0f} s, after a minute of warm-up")
    for column in ("process", "pid", "RSS start MB", "RSS end MB", "RSS growth %", "anon start MB", "anon growth %"):
        table.add_column(column, justify="right")
    for row in soak["rss_per_process"]["processes"]:
        table.add_row(
            row["process"], str(row["pid"]), f"{row['rss_mb_start']:.0f}", f"{row['rss_mb_end']:.0f}",
            f"{row['growth_pct']:.2f}", f"{row['anon_mb_start'] or 0:.0f}", f"{row['anon_growth_pct'] or 0:.2f}",
        )  # fmt: skip
    console.print(table)
    console.print(f"wrote {out}")


def main() -> None:
    args = parse_args()
    overrides = {
        "VISIONLOOP_API__PORT": "18133",
        "VISIONLOOP_REDIS__EMBEDDED_PORT": "16393",
        "VISIONLOOP_RAY__METRICS_EXPORT_PORT": "18134",
    }
    settings = load_settings(environ={**os.environ, **overrides})
    from visionloop.simulation.bootstrap import run_bootstrap

    run_bootstrap(settings, console)
    height, width = settings.world.video_size
    out_dir = settings.var.simulator
    pool = [
        prepare_world_camera(f"cam{i + 1}", "AB"[i % 2], 200 + i, 20.0, args.fps, out_dir, height, width)
        for i in range(24)
    ]
    port = next(p for p in range(18554, 18654) if port_is_free(p))
    if args.soak:
        run_soak(settings, args, pool, port)
        return
    phases: dict[str, Any] = {}
    capacity_pool = pool[: args.capacity_cameras]
    with RtspSimulator(pool, port) as simulator:
        if not args.only_1x:
            baselines = measure_baselines(settings, simulator, capacity_pool, args.baseline_seconds)
        with VisionloopService(settings) as service:
            clear_benchmark_cameras(service, settings)
            console.print(f"service idle (start-up work done): {wait_until_idle():.2f} cores busy")
            console.print(f"[bold]1x[/]: {args.cameras} cameras at {args.fps} fps for {args.seconds:.0f} s")
            phases["1x"] = run_phase(settings, service, simulator, pool[: args.cameras], args.fps, args.seconds, "p1")
            if args.only_1x:
                RESULTS.with_name("pipeline_1x.json").write_text(json.dumps(phases, indent=2))
                return
            console.print(f"[bold]capacity[/]: {len(capacity_pool)} cameras asking for every frame")
            phases["capacity"] = run_phase(
                settings, service, simulator, capacity_pool, args.fps, args.calibrate_seconds, "cal"
            )
            capacity = phases["capacity"]["processed_fps"]
            count = min(len(pool), max(args.cameras, math.ceil(2 * capacity / args.fps)))
            console.print(f"[bold]2x[/]: capacity {capacity:.1f} fps -> {count} cameras ({count * args.fps} fps)")
            phases["2x"] = run_phase(settings, service, simulator, pool[:count], args.fps, args.seconds, "p2")
    phases["capacity_fps"] = phases["capacity"]["processed_fps"]
    phases["baselines"] = baselines
    phases["summary"] = summary(phases, baselines, settings)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(phases, indent=2))
    table = Table(title="pipeline benchmark (one run, same machine)")
    for column in (
        "load",
        "cameras",
        "offered fps",
        "processed fps",
        "skipped fps",
        "added p50 ms",
        "added p99 ms",
        "RSS start MB",
        "RSS end MB",
    ):
        table.add_column(column, justify="right")
    for name in ("1x", "2x"):
        p = phases[name]
        table.add_row(
            name,
            str(p["cameras"]),
            f"{p['offered_fps']:.0f}",
            f"{p['processed_fps']:.1f}",
            f"{p['skipped_fps']:.1f}",
            f"{p['added_latency_ms_p50']:.1f}",
            f"{p['added_latency_ms_p99']:.1f}",
            f"{p['rss_mb_start']:.0f}",
            f"{p['rss_mb_end']:.0f}",
        )
    console.print(table)
    ratios = Table(title="targets (ratios measured in this run)")
    ratios.add_column("measure")
    ratios.add_column("value", justify="right")
    for key, value in phases["summary"].items():
        ratios.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(ratios)
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
