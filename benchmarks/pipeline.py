"""Pipeline benchmark: simulated RTSP cameras end to end through the whole service.

Phase 1x: 4 cameras at 15 fps. Then the box's capacity is measured (cameras asking for more than it can do),
and phase 2x offers twice that capacity with more 15 fps cameras. For each phase: processed and skipped
frames/s, the latency the pipeline adds on top of the model (capture -> result on the stream, minus inference),
and the RSS of the whole process tree at the start and the end.

Usage: python -m benchmarks.pipeline [--seconds 60] [--cameras 4] [--fps 15]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
from rich.console import Console
from rich.table import Table

from benchmarks.serving import tree_rss_mb
from simulation.rtsp_cameras import RtspSimulator, SimulatedCamera, prepare_world_camera
from visionloop.cli.service import VisionloopService
from visionloop.config import load_settings
from visionloop.contracts import FrameResult
from visionloop.redis_server import port_is_free
from visionloop.settings import Settings
from visionloop.streams import StreamNames

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"
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
        rss_start = tree_rss_mb()
        rss_samples = [rss_start]
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(min(5.0, seconds - (time.monotonic() - started)))
            rss_samples.append(tree_rss_mb())
        elapsed = time.monotonic() - started
        end_rows, end_id = _counters(api, f"{label}-"), f"{int(time.time() * 1000)}-0"
        for cam in cameras:
            api.delete(f"/v1/cameras/{label}-{cam.name}")
    added: list[float] = []
    for entry_id, fields in client.xrange(stream, min=start_id, max=end_id):
        result = FrameResult.from_stream_fields(fields)
        if not result.camera_id.startswith(f"{label}-"):
            continue
        published = int(entry_id.split(b"-")[0]) / 1000.0
        added.append((published - result.capture_ts) * 1e3 - result.latency.inference_ms)
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
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_samples[-1],
        "rss_mb_samples": rss_samples,
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--calibrate-seconds", type=float, default=15.0)
    args = parser.parse_args()
    overrides = {
        "VISIONLOOP_API__PORT": "18133",
        "VISIONLOOP_REDIS__EMBEDDED_PORT": "16393",
        "VISIONLOOP_RAY__METRICS_EXPORT_PORT": "18134",
    }
    settings = load_settings(environ={**os.environ, **overrides})
    from simulation.bootstrap import run_bootstrap

    run_bootstrap(settings, console)
    height, width = settings.world.video_size
    out_dir = settings.resolved_var_dir() / "simulator"
    pool = [
        prepare_world_camera(f"cam{i + 1}", "AB"[i % 2], 200 + i, 20.0, args.fps, out_dir, height, width)
        for i in range(24)
    ]
    port = next(p for p in range(18554, 18654) if port_is_free(p))
    phases: dict[str, Any] = {}
    with VisionloopService(settings) as service, RtspSimulator(pool, port) as simulator:
        clear_benchmark_cameras(service, settings)
        console.print(f"[bold]1x[/]: {args.cameras} cameras at {args.fps} fps for {args.seconds:.0f} s")
        phases["1x"] = run_phase(settings, service, simulator, pool[: args.cameras], args.fps, args.seconds, "p1")
        console.print("[bold]capacity[/]: 12 cameras asking for every frame")
        calibration = run_phase(settings, service, simulator, pool[:12], args.fps, args.calibrate_seconds, "cal")
        capacity = calibration["processed_fps"]
        count = min(len(pool), max(args.cameras, math.ceil(2 * capacity / args.fps)))
        console.print(f"[bold]2x[/]: capacity {capacity:.1f} fps -> {count} cameras ({count * args.fps} fps offered)")
        phases["2x"] = run_phase(settings, service, simulator, pool[:count], args.fps, args.seconds, "p2")
        phases["capacity_fps"] = capacity
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
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
