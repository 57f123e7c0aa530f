"""``visionloop cameras ...``: manage the cameras of a running service through its API, or simulate some."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from visionloop.errors import VisionloopError

cameras_app = typer.Typer(help="IP cameras and video files as sources.", no_args_is_help=True)
console = Console()
COLUMNS = (
    "id",
    "state",
    "fps",
    "frames_in",
    "frames_processed",
    "frames_skipped",
    "reconnects",
    "latency_ms_p50",
    "last_error",
)


def _api() -> tuple[str, dict[str, str]]:
    from visionloop.cli import state

    settings = state.settings()
    token = settings.api.token.get_secret_value()
    return f"http://{settings.api.host}:{settings.api.port}", {"Authorization": f"Bearer {token}"}


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    base, headers = _api()
    try:
        response = httpx.request(method, base + path, json=body, headers=headers, timeout=60)
    except httpx.HTTPError as exc:
        raise VisionloopError(f"the service at {base} did not answer ({exc}); is 'visionloop up' running?") from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise VisionloopError(f"{method} {path} failed ({response.status_code}): {detail}")
    return response.json()


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
    camera_id: Annotated[str, typer.Argument(help="Camera id (letters, digits, _ . : @ -).")],
    url: Annotated[str, typer.Argument(help="rtsp://user:pass@host/path, http(s)://..., or a video file.")],
    fps: Annotated[float, typer.Option(help="Target frames per second.")] = 15.0,
    transport: Annotated[str, typer.Option(help="RTSP transport: tcp or udp.")] = "tcp",
    mode: Annotated[str, typer.Option(help="auto, latest (live) or every (files).")] = "auto",
) -> None:
    """Add a camera to the running service (kept in Redis, so it survives restarts)."""
    if not url.startswith(("rtsp://", "rtsps://", "http://", "https://", "file://")):
        url = str(Path(url).resolve())
    body = {"id": camera_id, "url": url, "target_fps": fps, "transport": transport, "mode": mode}
    added = _call("POST", "/v1/cameras", body)
    console.print(f"added camera {added['id']} ({added['url']})")


@cameras_app.command("remove")
def cameras_remove(camera_id: Annotated[str, typer.Argument(help="Camera id.")]) -> None:
    """Stop a camera and forget it."""
    final = _call("DELETE", f"/v1/cameras/{camera_id}")
    console.print(f"removed {camera_id} after {final.get('frames_processed', 0)} processed frames")


@cameras_app.command("list")
def cameras_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every camera with its state and counters."""
    rows = _call("GET", "/v1/cameras")
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        console.print(camera_table(rows))


@cameras_app.command("status")
def cameras_status(
    camera_id: Annotated[str | None, typer.Argument(help="One camera (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """State, frames in/processed/skipped, reconnects and the last error (credentials redacted)."""
    rows = [_call("GET", f"/v1/cameras/{camera_id}")] if camera_id else _call("GET", "/v1/cameras")
    if as_json:
        sys.stdout.write(json.dumps(rows if camera_id is None else rows[0], indent=2) + "\n")
    else:
        console.print(camera_table(rows))


@cameras_app.command("simulate")
def cameras_simulate(
    cameras: Annotated[int, typer.Option(min=1, max=32, help="How many cameras.")] = 2,
    domain: Annotated[str, typer.Option(help="World domain the cameras show.")] = "A",
    seconds: Annotated[float, typer.Option(help="Length of each looped clip.")] = 20.0,
    fps: Annotated[int, typer.Option(help="Frames per second.")] = 15,
    port: Annotated[int, typer.Option(help="RTSP port on 127.0.0.1.")] = 8554,
    user: Annotated[str | None, typer.Option(help="Require this RTSP user (basic auth).")] = None,
    password: Annotated[str, typer.Option(help="Password for --user.")] = "",
) -> None:
    """Serve the synthetic world as looping RTSP cameras until Ctrl-C."""
    from streaming.simulator import RtspSimulator, prepare_world_camera
    from visionloop.cli import state

    settings = state.settings()
    out_dir = settings.resolved_var_dir() / "simulator"
    height, width = settings.world.video_size
    with console.status("Rendering the world's videos (cached under var/simulator)..."):
        sims = [
            prepare_world_camera(
                f"cam{i + 1}",
                domain,
                seed=100 + i,
                seconds=seconds,
                fps=fps,
                out_dir=out_dir,
                height=height,
                width=width,
            )
            for i in range(cameras)
        ]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with RtspSimulator(sims, port, user=user, password=password) as simulator:
        for sim in sims:
            console.print(f"{sim.name}: {simulator.url(sim.name)}")
        console.print("Simulating; Ctrl-C to stop.")
        stop.wait()
