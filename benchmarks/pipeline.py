"""Pipeline benchmark: the cameras of a simulated site end to end through the whole service.

Side by side in one run, on the same live RTSP cameras of one site (objects come and go, stretches are empty; each
frame carries its number, so every consumer measures glass-to-result age the same way):
- the raw backend (decoded camera-size frames, batch = serving.max_batch_size, every core, serving.precision);
- the plain loop a user would write: per camera, cv2.VideoCapture + Ultralytics predict (fp32 torch);
- visionloop: phase 1x (4 cameras at 15 fps), the capacity (8 cameras asking for every frame), and phase 2x
  (twice the capacity offered by more 15 fps cameras).
For each phase: processed and skipped frames/s, fresh results/s (glass-to-result age <= 150 ms) and the ages, the
latency the pipeline adds on top of the model (capture -> result on the stream, minus inference) with its stages, and
the RSS of every process. Every phase serves the site anew, from its first frame. The summary holds the ratios:
pipeline_efficiency (capacity / raw), e2e_speedup (capacity / plain loop), fresh_speedup (fresh results/s of
visionloop at capacity / of the plain loop), the 2x/1x p99 ratio.
``--soak 600`` instead runs 4 cameras for ten minutes and reports each process's RSS growth after warm-up.

Usage: python -m benchmarks.pipeline [--seconds 60] [--cameras 4] [--fps 15] [--shift-domain B] [--soak 600]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.pipeline_phase import clear_benchmark_cameras, run_phase
from benchmarks.pipeline_report import RedisKeyCounter, print_phases, print_soak, record_soak, summary
from benchmarks.plain_rtsp import plain_rtsp_loop_fps
from benchmarks.process_memory import wait_until_idle
from benchmarks.serving import measure_raw
from visionloop.cli.service import VisionloopService
from visionloop.cli.site import render_site
from visionloop.core.config import load_settings
from visionloop.core.model_setup import registry_for, ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.redis_server import port_is_free
from visionloop.core.settings import Settings
from visionloop.simulation.clips import render_clip_jpegs
from visionloop.simulation.site import Shift, SiteSpec
from visionloop.simulation.site.live import RenderedSite

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"
POOL = 24  # cameras of the site; the 2x phase takes as many as it needs
SETTLE_S = 45.0  # cameras registering, connecting and settling before a phase measures
console = Console()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--calibrate-seconds", type=float, default=20.0)
    parser.add_argument("--capacity-cameras", type=int, default=8, help="cameras offered to find the capacity")
    parser.add_argument("--baseline-seconds", type=float, default=20.0, help="raw backend and plain loop, each")
    parser.add_argument("--shift-domain", default="B", help="half the site's cameras show this domain")
    parser.add_argument("--only-1x", action="store_true", help="the 1x phase alone (no baselines, no summary)")
    parser.add_argument(
        "--soak", type=float, default=0.0, help="instead of the phases: run --cameras for this many seconds and "
        "report each process's RSS growth after the first minute (writes pipeline_soak.json)",
    )  # fmt: skip
    return parser.parse_args()


def bench_site(settings: Settings, args: argparse.Namespace) -> RenderedSite:
    """The benchmark's site: every other camera in the shift domain from the start (a mixed load, as cameras of
    one customer are), long enough for the longest phase."""
    cameras = args.cameras if args.soak else POOL
    longest = args.soak or max(args.seconds, args.calibrate_seconds, args.baseline_seconds + 15.0)
    shifts = tuple(Shift(camera=f"cam{i}", at_s=0.0, domain=args.shift_domain) for i in range(2, cameras + 1, 2))
    spec = SiteSpec(seed=200, cameras=cameras, seconds=longest + SETTLE_S + 15.0, fps=args.fps, shifts=shifts)
    console.print(f"[bold]site[/]: {cameras} cameras, {spec.seconds:.0f} s (rendered once, cached under var/)")
    return RenderedSite(render_site(settings, spec))


def measure_baselines(settings: Settings, site: RenderedSite, cameras: list[str], seconds: float) -> dict[str, Any]:
    """The raw backend on decoded camera-size frames, and the plain RTSP -> Ultralytics loop on ``cameras``."""
    height, width = settings.world.video_size
    jpegs = render_clip_jpegs(frames=64, width=width, height=height, seed=5)
    console.print(f"[bold]raw backend[/] ({settings.serving.precision}, {seconds:.0f} s)")
    raw = measure_raw(settings, jpegs, seconds)
    console.print(f"[bold]plain loop[/]: {len(cameras)} cameras, RTSP -> Ultralytics predict (fp32 torch)")
    prepare_ultralytics(ultralytics_config_dir(settings))
    weights = registry_for(settings).champion().torch_path
    with site.serve(_free_port()) as simulator:
        urls = [simulator.url(name) for name in cameras]
        clock = site.clock(cameras[0])
        plain = plain_rtsp_loop_fps(weights, urls, settings.serving.imgsz, seconds, warmup_s=15.0, clock=clock)
    return {"raw": raw, "plain_loop": plain}


def _free_port() -> int:
    return next(p for p in range(18554, 18654) if port_is_free(p))


def _phase(
    settings: Settings,
    service: VisionloopService,
    site: RenderedSite,
    cameras: list[str],
    args: Any,
    seconds: float,
    label: str,
) -> dict[str, Any]:
    with site.serve(_free_port()) as simulator:
        clock = site.clock(cameras[0])
        return run_phase(settings, service, simulator, cameras, args.fps, args.fps, seconds, label, clock)


def run_soak(settings: Settings, args: argparse.Namespace, site: RenderedSite) -> None:
    with VisionloopService(settings) as service:
        clear_benchmark_cameras(service, settings)
        console.print(f"service idle (start-up work done): {wait_until_idle():.2f} cores busy")
        console.print(f"[bold]soak[/]: {args.cameras} cameras at {args.fps} fps for {args.soak:.0f} s")
        keys = RedisKeyCounter(service.redis_url)
        timer = threading.Timer(60.0, keys.sample)  # the warm-up the memory figures skip too
        timer.start()
        try:
            with site.serve(_free_port()) as simulator:
                cameras = site.cameras[: args.cameras]
                clock = site.clock(cameras[0])
                soak = run_phase(settings, service, simulator, cameras, args.fps, args.fps, args.soak, "p1", clock,
                                 10.0, 60.0)  # fmt: skip
        finally:
            timer.cancel()
        soak["redis_keys"] = keys.report()
    record_soak(soak, args.soak)
    out = RESULTS.with_name("pipeline_soak.json")
    out.write_text(json.dumps(soak, indent=2))
    print_soak(console, soak, args.soak)
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
    site = bench_site(settings, args)
    if args.soak:
        run_soak(settings, args, site)
        return
    phases: dict[str, Any] = {}
    pool = site.cameras
    capacity_pool = pool[: args.capacity_cameras]
    if not args.only_1x:
        baselines = measure_baselines(settings, site, capacity_pool, args.baseline_seconds)
    with VisionloopService(settings) as service:
        clear_benchmark_cameras(service, settings)
        console.print(f"service idle (start-up work done): {wait_until_idle():.2f} cores busy")
        console.print(f"[bold]1x[/]: {args.cameras} cameras at {args.fps} fps for {args.seconds:.0f} s")
        phases["1x"] = _phase(settings, service, site, pool[: args.cameras], args, args.seconds, "p1")
        if args.only_1x:
            RESULTS.with_name("pipeline_1x.json").write_text(json.dumps(phases, indent=2))
            return
        console.print(f"[bold]capacity[/]: {len(capacity_pool)} cameras asking for every frame")
        phases["capacity"] = _phase(settings, service, site, capacity_pool, args, args.calibrate_seconds, "cal")
        capacity = phases["capacity"]["processed_fps"]
        count = min(len(pool), max(args.cameras, math.ceil(2 * capacity / args.fps)))
        console.print(f"[bold]2x[/]: capacity {capacity:.1f} fps -> {count} cameras ({count * args.fps} fps)")
        phases["2x"] = _phase(settings, service, site, pool[:count], args, args.seconds, "p2")
    phases["capacity_fps"] = phases["capacity"]["processed_fps"]
    phases["baselines"] = baselines
    phases["summary"] = summary(phases, baselines, settings)
    phases["site"] = {"spec": site.spec.model_dump(mode="json"), "render_s": site.data.get("render_s")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(phases, indent=2))
    print_phases(console, phases)
    console.print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
