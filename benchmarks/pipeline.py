"""Pipeline benchmark: the cameras of a simulated site end to end through the whole service, against the loops a
user would write instead, all on the same live RTSP cameras in one run.

Each camera of the site carries its frame number in the picture, so every consumer's results are aged the same way:
glass-to-result, from the moment the camera sent the frame. A result is fresh when it is at most 150 ms old.
For N = 1, 2, 4, 8, 12, 16 cameras at 15 fps (``--counts``), each system runs the site from its first frame:
- the baselines (``benchmarks.plain_rtsp``): a thread per camera (cv2 + Ultralytics predict), one sequential loop,
  and Ultralytics' own ``.streams`` multi-stream predict, with the champion's weights at the same input size;
- visionloop: the default service, the cameras added through its API.
Reported per N: fresh results/s, age p50/p99, the worst camera's fresh results/s, CPU. Then:
``cameras_sustained`` (the largest N whose every camera gets >= 5 fresh results/s with age p99 <= 150 ms),
``e2e_speedup`` (visionloop's over the best baseline's), ``pipeline_efficiency`` (visionloop's fresh results/s at
its best N over the raw backend's frames/s, measured in the same run), the latency the pipeline adds at 4 cameras,
twice the sustained load (age p99 against the sustained p99, skips counted), motion gating at 4 cameras
(``gating_calls_saved``, ``gating_map50_cost``: mAP50 over every frame, each holding the last result, ungated minus
gated), and the idle service's CPU per process (``idle_cpu_cores``). Figures in ``results/pipeline.json`` and a plot.
``--soak 1800`` instead runs 4 cameras for thirty minutes and reports each process's memory growth from minute 5
(``--soak-warmup``) to the end; ``--trace-labeling`` adds where the labeling worker's Python memory grew.

Usage: python -m benchmarks.pipeline [--seconds 20] [--counts 1,2,4,8,12,16] [--baselines threads,sequential,streams]
       [--shift-domain B] [--soak 600]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks import memory_trace
from benchmarks.ages import cameras_sustained
from benchmarks.gating import frames_in, held_map50
from benchmarks.own_var import benchmark_settings
from benchmarks.pipeline_phase import clear_benchmark_cameras, run_phase
from benchmarks.pipeline_report import (
    RedisKeyCounter,
    plot_sweep,
    print_soak,
    print_sweep,
    record_soak,
    summary,
)
from benchmarks.plain_rtsp import BASELINES, baseline_loop
from benchmarks.process_memory import RssTracker, wait_until_idle
from benchmarks.rtsp_clients import decode_ages
from benchmarks.serving import measure_raw
from visionloop.cli.service import VisionloopService
from visionloop.cli.site import render_site
from visionloop.core.frame_clock import strip_height
from visionloop.core.model_setup import registry_for, ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.redis_server import port_is_free
from visionloop.core.settings import Settings
from visionloop.simulation.clips import render_clip_jpegs
from visionloop.simulation.site import Shift, SiteSpec
from visionloop.simulation.site.live import RenderedSite

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"
SETTLE_S = 30.0  # cameras registering, connecting and settling before a phase measures
GATING_CAMERAS = 4
IDLE_WINDOW_S = 30.0
console = Console()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds of each system at each N")
    parser.add_argument("--counts", default="1,2,4,8,12,16", help="camera counts N")
    parser.add_argument("--baselines", default=",".join(BASELINES), help=f"any of {', '.join(BASELINES)}, or none")
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--raw-seconds", type=float, default=15.0, help="the raw backend's measurement")
    parser.add_argument("--shift-domain", default="B", help="half the site's cameras show this domain")
    parser.add_argument(
        "--soak", type=float, default=0.0, help="instead of the sweep: run --cameras for this many seconds and "
        "report each process's RSS growth after --soak-warmup (writes pipeline_soak.json)",
    )  # fmt: skip
    parser.add_argument("--cameras", type=int, default=4, help="the soak's cameras")
    parser.add_argument(
        "--soak-warmup", type=float, default=300.0, help="memory growth is counted from here to the soak's end"
    )
    parser.add_argument(
        "--trace-labeling",
        action="store_true",
        help="tracemalloc in the labeling worker after the warm-up: "
        "the allocation sites that grew, in pipeline_soak.json",
    )
    parser.add_argument("--sweep-only", action="store_true", help="visionloop's sweep alone (no 2x, no gating)")
    return parser.parse_args()


def bench_site(settings: Settings, args: argparse.Namespace, cameras: int) -> RenderedSite:
    """The benchmark's site: every other camera in the shift domain from the start (a mixed load, as cameras of
    one customer are), long enough for the longest phase."""
    longest = args.soak or args.seconds
    shifts = tuple(Shift(camera=f"cam{i}", at_s=0.0, domain=args.shift_domain) for i in range(2, cameras + 1, 2))
    spec = SiteSpec(seed=200, cameras=cameras, seconds=longest + SETTLE_S + 15.0, fps=args.fps, shifts=shifts)
    console.print(f"[bold]site[/]: {cameras} cameras, {spec.seconds:.0f} s (rendered once, cached under var/)")
    return RenderedSite(render_site(settings, spec))


def _free_port() -> int:
    return next(p for p in range(18554, 18654) if port_is_free(p))


def measure_baselines(
    settings: Settings, site: RenderedSite, kinds: list[str], counts: list[int], seconds: float
) -> dict[str, dict[int, dict[str, Any]]]:
    """Each baseline at each camera count, the site served anew from its first frame each time."""
    prepare_ultralytics(ultralytics_config_dir(settings))
    weights = registry_for(settings).champion().torch_path
    out: dict[str, dict[int, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="vl-baselines-") as workdir:
        for kind in kinds:
            out[kind] = {}
            for count in counts:
                cameras = site.cameras[:count]
                with site.serve(_free_port()) as simulator:
                    urls = [simulator.url(name) for name in cameras]
                    row = baseline_loop(kind, weights, urls, settings.serving.imgsz, seconds, site.clock(cameras[0]),
                                        Path(workdir))  # fmt: skip
                out[kind][count] = row
                console.print(
                    f"  {kind:>10} N={count:>2}: fresh {row['fresh_fps']:6.1f}/s, worst camera "
                    f"{row['worst_camera_fresh_fps']:5.1f}/s, age p99 {row.get('age_ms_p99', float('nan')):6.0f} ms, "
                    f"CPU {row['cpu_cores']:.2f}"
                )
    return out


def measure_rtsp_clients(site: RenderedSite, seconds: float = 8.0) -> dict[str, Any]:
    """Each RTSP client's age at decode on the site's first camera, served from its first frame."""
    with site.serve(_free_port()) as simulator:
        camera = site.cameras[0]
        return decode_ages(site, simulator.url(camera), camera, seconds)


def measure_idle(seconds: float = IDLE_WINDOW_S) -> dict[str, Any]:
    """CPU of every process of the idle service (the benchmark's own process left out), over ``seconds``."""
    tracker = RssTracker()
    tracker.sample()
    threading.Event().wait(seconds)
    tracker.sample()
    own = os.getpid()
    rows = [r for r in tracker.report(skip=0)["processes"] if r["pid"] != own]
    rows.sort(key=lambda r: -(r["cpu_cores"] or 0.0))
    per_process = [{"process": r["process"], "pid": r["pid"], "cpu_cores": r["cpu_cores"]} for r in rows]
    return {"cpu_cores": round(sum(r["cpu_cores"] or 0.0 for r in rows), 3), "processes": per_process,
            "seconds": seconds}  # fmt: skip


class Phases:
    """visionloop's phases on one running service, each serving the site anew."""

    def __init__(self, settings: Settings, service: VisionloopService, site: RenderedSite, args: Any) -> None:
        self.settings, self.service, self.site, self.args = settings, service, site, args

    def run(self, count: int, label: str, motion: dict[str, Any] | None = None) -> dict[str, Any]:
        cameras = self.site.cameras[:count]
        with self.site.serve(_free_port()) as simulator:
            clock = self.site.clock(cameras[0])
            phase = run_phase(self.settings, self.service, simulator, cameras, self.args.fps, self.args.fps,
                              self.args.seconds, label, clock, motion=motion)  # fmt: skip
            assert self.site.epoch is not None
            phase["frames"] = frames_in(phase["window"], self.site.epoch, self.site.spec.fps)
        row = phase["per_camera"]
        console.print(
            f"  visionloop {label:>4} N={count:>2}: fresh {row['fresh_fps']:6.1f}/s, worst camera "
            f"{row['worst_camera_fresh_fps']:5.1f}/s, age p99 {row.get('age_ms_p99', float('nan')):6.0f} ms, "
            f"processed {phase['processed_fps']:.1f}/s, skipped {phase['skipped_fps']:.1f}/s, "
            f"gated {phase['gated_fps']:.1f}/s, rate share {phase['rate_share_end']:.2f}, "
            f"CPU {phase['service_cpu_cores']:.2f}"
        )
        if count != GATING_CAMERAS:
            phase.pop("predictions")  # kept for gating's accuracy only
        return phase


def score_gating(site: RenderedSite, ungated: dict[str, Any], gated: dict[str, Any]) -> None:
    """Both runs' held mAP50 over the frames both measured (each phase serves the site from its first frame)."""
    first = max(ungated["frames"].start, gated["frames"].start)
    last = min(ungated["frames"].stop, gated["frames"].stop)
    for phase in (ungated, gated):
        label = next(iter(phase["predictions"])).split("-", 1)[0] if phase["predictions"] else ""
        phase["held"] = held_map50(site, phase.pop("predictions"), label, range(first, last))
        phase["frames"] = [phase["frames"].start, phase["frames"].stop]


def gating_mask(settings: Settings) -> list[list[float]]:
    """The site's frame-clock strip changes every frame: motion there is the clock's, not the scene's."""
    height = settings.world.video_size[0]
    return [[0.0, 1.0 - strip_height(height) / height, 1.0, 1.0]]


def _labeling_worker() -> Any:
    import ray

    from visionloop.core.streams import LABELING_WORKER_ACTOR

    try:
        return ray.get_actor(LABELING_WORKER_ACTOR)
    except ValueError:
        return None


def run_soak(settings: Settings, args: argparse.Namespace, site: RenderedSite) -> None:
    import ray

    with VisionloopService(settings) as service:
        clear_benchmark_cameras(service, settings)
        console.print(f"service idle (start-up work done): {wait_until_idle():.2f} cores busy")
        console.print(f"[bold]soak[/]: {args.cameras} cameras at {args.fps} fps for {args.soak:.0f} s, memory "
                      f"growth counted after {args.soak_warmup:.0f} s")  # fmt: skip
        keys = RedisKeyCounter(service.redis_url)
        labeling = _labeling_worker() if args.trace_labeling else None

        def after_warmup() -> None:
            keys.sample()
            if labeling is not None:
                memory_trace.by_value()
                ray.get(labeling.__ray_call__.remote(memory_trace.start_tracing), timeout=60)

        timer = threading.Timer(args.soak_warmup, after_warmup)  # the warm-up the memory figures skip too
        timer.start()
        try:
            with site.serve(_free_port()) as simulator:
                cameras = site.cameras[: args.cameras]
                clock = site.clock(cameras[0])
                soak = run_phase(settings, service, simulator, cameras, args.fps, args.fps, args.soak, "p1", clock,
                                 10.0, args.soak_warmup)  # fmt: skip
                soak.pop("predictions")
        finally:
            timer.cancel()
        soak["redis_keys"] = keys.report()
        if labeling is not None:
            soak["labeling_tracemalloc"] = ray.get(labeling.__ray_call__.remote(memory_trace.top_growth), timeout=120)
    record_soak(soak, args.soak)
    out = RESULTS.with_name("pipeline_soak.json")
    out.write_text(json.dumps(soak, indent=2))
    print_soak(console, soak, args.soak, args.soak_warmup)
    console.print(f"wrote {out}")


def main() -> None:
    args = parse_args()
    overrides = {
        "VISIONLOOP_API__PORT": "18133",
        "VISIONLOOP_REDIS__EMBEDDED_PORT": "16393",
        "VISIONLOOP_RAY__METRICS_EXPORT_PORT": "18134",
    }
    settings = benchmark_settings("pipeline", {**os.environ, **overrides})
    from visionloop.simulation.bootstrap import run_bootstrap

    run_bootstrap(settings, console)
    counts = sorted({int(c) for c in args.counts.split(",")})
    if args.soak:
        run_soak(settings, args, bench_site(settings, args, args.cameras))
        return
    site = bench_site(settings, args, 2 * max(counts))  # room for twice the largest load
    kinds = [k for k in args.baselines.split(",") if k and k != "none"]
    height, width = settings.world.video_size
    console.print(f"[bold]raw backend[/] ({settings.serving.precision}, {args.raw_seconds:.0f} s)")
    raw = measure_raw(settings, render_clip_jpegs(frames=64, width=width, height=height, seed=5), args.raw_seconds)
    console.print("[bold]RTSP clients[/]: age at decode, one camera")
    clients = measure_rtsp_clients(site)
    console.print(clients)
    console.print("[bold]baselines[/]")
    baselines = measure_baselines(settings, site, kinds, counts, args.seconds)
    results: dict[str, Any] = {"raw": raw, "rtsp_clients": clients, "baselines": baselines, "counts": counts}
    with VisionloopService(settings) as service:
        clear_benchmark_cameras(service, settings)
        console.print(f"service idle (start-up work done): {wait_until_idle():.2f} cores busy")
        results["idle"] = measure_idle()
        console.print(f"[bold]idle service[/]: {results['idle']['cpu_cores']:.3f} cores")
        phases = Phases(settings, service, site, args)
        console.print("[bold]visionloop[/]")
        sweep = {count: phases.run(count, f"n{count}") for count in counts}
        if args.sweep_only:
            RESULTS.with_name("pipeline_sweep.json").write_text(json.dumps(sweep, indent=2, default=str))
            return
        sustained = cameras_sustained({n: p["per_camera"] for n, p in sweep.items()})
        overload = min(len(site.cameras), 2 * max(sustained, 1))
        console.print(f"[bold]2x[/]: sustained {sustained} cameras -> {overload}")
        results["overload"] = sweep[overload] if overload in sweep else phases.run(overload, f"x{overload}")
        console.print(f"[bold]motion gating[/]: {GATING_CAMERAS} cameras")
        motion = {"enabled": True, "mask": gating_mask(settings)}
        results["gated"] = phases.run(GATING_CAMERAS, f"g{GATING_CAMERAS}", motion)
        results["ungated"] = sweep[GATING_CAMERAS] if GATING_CAMERAS in sweep else phases.run(GATING_CAMERAS, "u4")
    score_gating(site, results["ungated"], results["gated"])
    results["visionloop"] = sweep
    results["summary"] = summary(results, settings)
    results["site"] = {"spec": site.spec.model_dump(mode="json"), "render_s": site.data.get("render_s")}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str))
    print_sweep(console, results)
    plot = plot_sweep(results, RESULTS.with_name("pipeline_sweep.png"))
    console.print(f"wrote {RESULTS} and {plot}")


if __name__ == "__main__":
    main()
