"""``visionloop cameras ...``: manage the cameras of a running service through its API, or simulate some."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlparse

import typer
from rich.table import Table

from visionloop.cli.context import api_client, console, print_json, settings_of
from visionloop.cli.site import ShiftOption

cameras_app = typer.Typer(help="IP cameras and video files as sources.", no_args_is_help=True)
COLUMNS = (
    "id",
    "state",
    "fps",
    "frames_in",
    "frames_processed",
    "frames_skipped",
    "frames_gated",
    "reconnects",
    "latency_ms_p50",
    "last_error",
)


def camera_table(rows: list[dict[str, Any]], title: str = "cameras") -> Table:
    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("id", "state", "last_error") else "right")
    for row in rows:
        cells = []
        for column in COLUMNS:
            value = row.get(column)
            if isinstance(value, float):
                cells.append(f"{value:.1f}")
            elif value is None:
                cells.append("")
            else:
                cells.append(str(value)[:60])
        table.add_row(*cells)
    return table


@cameras_app.command("add")
def cameras_add(
    ctx: typer.Context,
    camera_id: Annotated[str, typer.Argument(help="Camera id (letters, digits, _ . : @ -).")],
    url: Annotated[
        str, typer.Argument(help="rtsp://user:pass@host/path, http(s)://..., or a video file (cameras.allow_files).")
    ],
    fps: Annotated[float, typer.Option(help="Target frames per second.")] = 15.0,
    transport: Annotated[str, typer.Option(help="RTSP transport: tcp or udp.")] = "tcp",
    mode: Annotated[str, typer.Option(help="auto, latest (live) or every (files).")] = "auto",
) -> None:
    """Add a camera to the running service (kept in Redis, so it survives restarts)."""
    if not urlparse(url).scheme:  # a file path, sent absolute (the service may run elsewhere; it decides)
        url = str(Path(url).resolve())
    body = {"id": camera_id, "url": url, "target_fps": fps, "transport": transport, "mode": mode}
    with api_client(ctx) as client:
        added = client.add_camera(body)
    console.print(f"added camera {added['id']} ({added['url']})")


@cameras_app.command("remove")
def cameras_remove(ctx: typer.Context, camera_id: Annotated[str, typer.Argument(help="Camera id.")]) -> None:
    """Stop a camera and forget it."""
    with api_client(ctx) as client:
        final = client.remove_camera(camera_id)
    console.print(f"removed {camera_id} after {final.get('frames_processed', 0)} processed frames")


@cameras_app.command("list")
def cameras_list(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every camera with its state and counters."""
    with api_client(ctx) as client:
        rows = client.cameras()
    if as_json:
        print_json(rows)
    else:
        console.print(camera_table(rows))


@cameras_app.command("status")
def cameras_status(
    ctx: typer.Context,
    camera_id: Annotated[str | None, typer.Argument(help="One camera (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """State, frames in/processed/skipped, reconnects and the last error (credentials redacted)."""
    with api_client(ctx) as client:
        rows = [client.camera(camera_id)] if camera_id else client.cameras()
    if as_json:
        print_json(rows if camera_id is None else rows[0])
    else:
        console.print(camera_table(rows))


@cameras_app.command("simulate")
def cameras_simulate(
    ctx: typer.Context,
    cameras: Annotated[int, typer.Option(min=1, max=32, help="How many cameras.")] = 2,
    domain: Annotated[str, typer.Option(help="World domain the cameras start in.")] = "A",
    seconds: Annotated[float, typer.Option(help="Length of the site's run (rendered ahead, cached).")] = 300.0,
    seed: Annotated[int, typer.Option(min=0, help="Same seed, same site.")] = 0,
    shift: ShiftOption = None,
    fps: Annotated[int, typer.Option(help="Frames per second.")] = 15,
    site: Annotated[Path | None, typer.Option(help="Serve this site.json (from 'visionloop world site').")] = None,
    port: Annotated[int, typer.Option(help="RTSP port on 127.0.0.1.")] = 8554,
    user: Annotated[str | None, typer.Option(help="Require this RTSP user (basic auth).")] = None,
    password: Annotated[str, typer.Option(help="Password for --user.")] = "",
) -> None:
    """Serve a simulated site as live RTSP cameras until Ctrl-C: objects come and go, the light changes, scheduled
    shifts happen; each frame carries its number (the frame clock)."""
    from visionloop.cli.site import render_site, site_spec
    from visionloop.simulation.site.live import RenderedSite

    settings = settings_of(ctx)
    rendered = RenderedSite(site or render_site(settings, site_spec(cameras, seconds, seed, domain, shift, fps, None)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with rendered.serve(port, user=user, password=password) as simulator:
        for name in rendered.cameras:
            console.print(f"{name}: {simulator.url(name)}")
        console.print(
            f"frame n of every camera leaves at {rendered.epoch:.3f} + n / {rendered.spec.fps} (Unix time); the site "
            f"runs {rendered.spec.seconds:g} s. Ctrl-C to stop."
        )
        stop.wait()
