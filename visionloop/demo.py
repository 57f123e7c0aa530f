"""``make demo``: start the service on embedded defaults, stream a generated clip through the API, report."""

from __future__ import annotations

import redis
from rich.console import Console
from rich.table import Table

from visionloop.loadgen import LoadReport, run_clients
from visionloop.model_setup import init_untrained_champion
from visionloop.service import VisionloopService
from visionloop.settings import Settings
from visionloop.streams import StreamNames


def _report_table(report: LoadReport, clients: int, frames_per_request: int) -> Table:
    table = Table(title=f"{clients} camera-like clients, {frames_per_request} frames per request")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("frames processed", f"{report.frames}"),
        ("throughput", f"{report.fps:.1f} frames/s"),
        ("request latency p50 / p99", f"{report.percentile(50):.1f} / {report.percentile(99):.1f} ms"),
        ("per-frame decode (median)", f"{report.stage_median('decode'):.2f} ms"),
        ("per-frame queue (median)", f"{report.stage_median('queue'):.2f} ms"),
        ("per-frame inference (median)", f"{report.stage_median('inference'):.2f} ms"),
        ("per-frame post (median)", f"{report.stage_median('post'):.2f} ms"),
        ("detections", f"{report.detections}"),
        ("failed requests", f"{report.errors}"),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def run_demo(settings: Settings, seconds: float = 15.0, clients: int = 4, frames_per_request: int = 8) -> int:
    from learning.clips import render_clip_jpegs

    console = Console()
    with console.status("Preparing the model registry (an untrained stand-in until a trained model exists)..."):
        champion = init_untrained_champion(settings)
    console.print(f"champion model: [bold]{champion.version}[/] ({champion.meta.get('source', '?')})")
    with console.status("Starting Redis, Ray and the Serve app (about 20-30 s)..."):
        service = VisionloopService(settings).start()
    try:
        for endpoint in service.endpoints:
            console.print(f"  {endpoint.name:<20} {endpoint.url}")
        frames = render_clip_jpegs(frames=90, width=640, height=360, seed=7)
        console.print(f"Sending a generated clip ({len(frames)} frames, 640x360, looped) for {seconds:.0f} s...")
        report = run_clients(
            service.api_url,
            settings.api.token.get_secret_value(),
            frames,
            clients=clients,
            seconds=seconds,
            frames_per_request=frames_per_request,
        )
        console.print(_report_table(report, clients, frames_per_request))
        stream = StreamNames(settings.redis.stream_prefix).results
        client = redis.Redis.from_url(service.redis_url)
        console.print(f"results stream '{stream}' holds {client.xlen(stream)} entries")
        client.close()
    finally:
        with console.status("Shutting down..."):
            service.stop()
    console.print("[green]demo finished; everything stopped.[/]")
    return 0 if report.frames and not report.errors else 1
