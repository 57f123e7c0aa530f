"""The ``visionloop`` command: wires the parts together. Commands that need the running service use its API."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from visionloop.config import load_settings
from visionloop.errors import VisionloopError
from visionloop.logs import configure_logging
from visionloop.settings import Settings

app = typer.Typer(help="visionloop: real-time detection with an active-learning loop.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the settings.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
console = Console()


class State:
    config: Path | None = None

    def settings(self) -> Settings:
        settings = load_settings(self.config)
        configure_logging(settings.logging.level)
        return settings


state = State()
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Your YAML settings, layered over configs/default.yaml."),
]


@app.callback()
def main_options(config: ConfigOption = None) -> None:
    state.config = config


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@config_app.command("show")
def config_show(as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False) -> None:
    """Print the effective settings (secrets masked)."""
    data = state.settings().masked()
    if as_json:
        _print_json(data)
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


@app.command()
def up() -> None:
    """Run the whole service in the foreground; Ctrl-C or SIGTERM stops everything."""
    from visionloop.service import VisionloopService

    settings = state.settings()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with console.status("Starting Redis, Ray and the Serve app..."):
        service = VisionloopService(settings).start()
    try:
        for endpoint in service.endpoints:
            console.print(f"{endpoint.name:<20} {endpoint.url}")
        if service.redis_problem:
            console.print(f"[red]Redis unreachable: {service.redis_problem}; results are buffered[/]")
        console.print("visionloop is up. Ctrl-C to stop.")
        stop.wait()
    finally:
        console.print("Stopping...")
        service.stop()
    console.print("Stopped.")


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(help="How long to stream the clip.")] = 15.0,
    clients: Annotated[int, typer.Option(help="Concurrent camera-like clients.")] = 4,
    frames_per_request: Annotated[int, typer.Option(help="Frames each request carries.")] = 8,
) -> None:
    """Start everything on embedded defaults, stream a generated clip through the API, print speed, stop."""
    from visionloop.demo import run_demo

    raise typer.Exit(run_demo(state.settings(), seconds, clients, frames_per_request))


@app.command()
def health(url: Annotated[str | None, typer.Option(help="API base URL (default: from settings).")] = None) -> None:
    """Ask the running service whether it is healthy."""
    from visionloop.client import ApiClient

    settings = state.settings()
    with ApiClient(url or f"http://{settings.api.host}:{settings.api.port}") as client:
        _print_json(client.health())


@app.command()
def detect(
    images: Annotated[list[Path], typer.Argument(help="JPEG or PNG files.")],
    camera_id: Annotated[str, typer.Option(help="Camera id the results are filed under.")] = "cli",
    url: Annotated[str | None, typer.Option(help="API base URL (default: from settings).")] = None,
) -> None:
    """Send images to the running service and print the detections as JSON."""
    from visionloop.client import ApiClient

    settings = state.settings()
    base = url or f"http://{settings.api.host}:{settings.api.port}"
    with ApiClient(base, settings.api.token.get_secret_value()) as client:
        _print_json([client.detect(p.read_bytes(), camera_id=camera_id, filename=p.name) for p in images])


@app.command()
def bootstrap() -> None:
    """Train the bootstrap model on the synthetic world (cached: runs once), evaluate it on gold, make it champion."""
    from learning.bootstrap import run_bootstrap

    settings = state.settings()
    outcome = run_bootstrap(settings, console)
    console.print(f"{outcome.summary(settings.bootstrap.target_map50)}; champion is {registry_champion(settings)}")
    if not outcome.meets(settings.bootstrap.target_map50):
        raise typer.Exit(1)  # the model is kept (better than none), but a script must see the miss


def registry_champion(settings: Settings) -> str:
    from visionloop.model_setup import registry_for

    return str(registry_for(settings).pointers()["champion"])


@models_app.command("init")
def models_init(
    force: Annotated[bool, typer.Option(help="Build a new one even if a champion exists.")] = False,
) -> None:
    """Make sure a champion exists: build an untrained model from model.architecture and export it."""
    from visionloop.model_setup import init_untrained_champion

    version = init_untrained_champion(state.settings(), force=force)
    console.print(f"champion: {version.version} ({version.meta.get('source')}) at {version.path}")


@models_app.command("list")
def models_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the registered model versions and the champion/shadow pointers."""
    from visionloop.model_setup import registry_for

    registry = registry_for(state.settings())
    pointers = registry.pointers()
    versions = [m.meta for m in registry.versions()]
    if as_json:
        _print_json({"pointers": pointers, "versions": versions})
        return
    table = Table("version", "role", "source", "parent", "mAP50", "scored on", "created")
    for meta in versions:
        metrics = meta.get("metrics", {})
        # Bootstrap versions are scored on gold; trained ones carry their own validation split's score.
        score, scored_on = (
            (metrics["map50"], "gold") if "map50" in metrics else (metrics.get("val", {}).get("map50"), "val")
        )
        table.add_row(
            meta["version"],
            meta.get("role", ""),
            str(meta.get("source", "")),
            str(meta.get("parent") or ""),
            "" if score is None else f"{score:.3f}",
            "" if score is None else scored_on,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(meta.get("created", 0))),
        )
    console.print(table)


@models_app.command("show")
def models_show(version: Annotated[str, typer.Argument(help="A version or 'champion'.")]) -> None:
    """Print one version's metadata as JSON."""
    from visionloop.model_setup import registry_for

    registry = registry_for(state.settings())
    model = registry.champion() if version == "champion" else registry.get(version)
    _print_json({**model.meta, "path": str(model.path)})


def _register_learning_commands() -> None:
    from visionloop import cli_learning
    from visionloop.cli_cameras import cameras_app
    from visionloop.cli_labeling import labeling_app

    cli_learning.register(app, models_app)
    app.add_typer(cameras_app, name="cameras")
    app.add_typer(labeling_app, name="labeling")


_register_learning_commands()


def main() -> None:
    try:
        app()
    except VisionloopError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
