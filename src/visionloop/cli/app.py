"""The ``visionloop`` command: the root options and the commands that run or ask the service as a whole.

Command groups live in their own modules (data, training, models, cameras, labeling) and read this invocation's
settings from Typer's context, so none of them imports this module.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.markup import escape

from visionloop.cli import cameras, dashboard, data, labeling, loop, models, site, training
from visionloop.cli.context import CliContext, api_client, console, print_json, settings_of, status_console
from visionloop.core.errors import VisionloopError
from visionloop.core.plain_output import plain_when_not_a_terminal
from visionloop.core.progress import working
from visionloop.core.settings import Settings

app = typer.Typer(help="visionloop: real-time detection with an active-learning loop.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(models.models_app, name="models")
site.register(data.world_app)
app.add_typer(data.world_app, name="world")
app.add_typer(data.data_app, name="data")
app.add_typer(cameras.cameras_app, name="cameras")
app.add_typer(labeling.labeling_app, name="labeling")
app.add_typer(loop.loop_app, name="loop")
training.register(app)
app.command()(dashboard.dashboard)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Your YAML settings, layered over configs/default.yaml."),
]


@app.callback()
def main_options(ctx: typer.Context, config: ConfigOption = None) -> None:
    ctx.obj = CliContext(config)


@config_app.command("show")
def config_show(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="JSON instead of YAML.")] = False
) -> None:
    """Print the effective settings (secrets masked)."""
    data = settings_of(ctx).masked()
    if as_json:
        print_json(data)
    else:
        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))


@app.command()
def up(
    ctx: typer.Context,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Join this Ray cluster ('auto', or host:port of its head) instead of ray.address."),
    ] = None,
) -> None:
    """Run the whole service in the foreground; Ctrl-C or SIGTERM stops everything."""
    from visionloop.cli.service import VisionloopService

    settings = settings_of(ctx)
    if ray_address:
        data = settings.model_dump(mode="python")
        data["ray"]["address"] = ray_address
        settings = Settings.model_validate(data)
    from visionloop.cli.first_start import ensure_champion

    ensure_champion(settings, console)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with working(console, "Starting Redis, Ray and the Serve app..."):
        service = VisionloopService(settings).start()
    try:
        for endpoint in service.endpoints:
            console.print(f"{endpoint.name:<20} {endpoint.url}")
        if service.redis_problem:
            console.print(f"[red]Redis unreachable: {service.redis_problem}; results are buffered[/]")
        if settings.ray.address != "local":
            from visionloop.core.placement import actor_places

            console.print("where each actor runs:")
            for place in actor_places():
                console.print(f"  {escape(place.line())}")
        console.print("visionloop is up. Ctrl-C to stop.")
        stop.wait()
    finally:
        console.print("Stopping...")
        service.stop()
    console.print("Stopped.")


@app.command()
def demo(
    ctx: typer.Context,
    seconds: Annotated[float, typer.Option(help="How long to stream the clip.")] = 10.0,
    clients: Annotated[int, typer.Option(help="Concurrent camera-like clients.")] = 4,
    frames_per_request: Annotated[int, typer.Option(help="Frames each request carries.")] = 8,
) -> None:
    """Start everything on embedded defaults, stream a generated clip through the API, print speed, stop."""
    from visionloop.cli.demo import run_demo

    raise typer.Exit(run_demo(settings_of(ctx), seconds, clients, frames_per_request))


@app.command("cluster-demo")
def cluster_demo(
    ctx: typer.Context,
    stream_s: Annotated[float, typer.Option(help="Seconds of streaming before the inference node is killed.")] = 15.0,
    down_s: Annotated[float, typer.Option(help="Seconds the inference node stays down.")] = 10.0,
) -> None:
    """Two Ray nodes (`ray start`: edge for the cameras, infer for the Detector), simulated RTSP cameras, and the
    inference node's raylet killed mid-stream and started again: placement and what the loss cost."""
    import json

    from visionloop.cli.cluster_demo import ClusterDemo, report_table

    settings = settings_of(ctx)
    work_dir = settings.var.simulator
    work_dir.mkdir(parents=True, exist_ok=True)
    report = ClusterDemo(settings, console, work_dir).run(stream_s, down_s)
    console.print(report_table(report))
    out = settings.var.cluster_demo_report
    out.write_text(json.dumps(report.to_dict(), indent=2))
    console.print(f"wrote {out}")
    raise typer.Exit(0 if report.resumed else 1)


@app.command()
def health(
    ctx: typer.Context, url: Annotated[str | None, typer.Option(help="API base URL (default: from settings).")] = None
) -> None:
    """Ask the running service whether it is healthy."""
    with api_client(ctx, url) as client:
        print_json(client.health())


@app.command()
def detect(
    ctx: typer.Context,
    images: Annotated[list[Path], typer.Argument(help="JPEG or PNG files.")],
    camera_id: Annotated[str, typer.Option(help="Camera id the results are filed under.")] = "cli",
    url: Annotated[str | None, typer.Option(help="API base URL (default: from settings).")] = None,
) -> None:
    """Send images to the running service and print the detections as JSON."""
    with api_client(ctx, url) as client:
        print_json([client.detect(p.read_bytes(), camera_id=camera_id, filename=p.name) for p in images])


@app.command()
def bootstrap(
    ctx: typer.Context,
    from_scratch: Annotated[
        bool, typer.Option(help="Train one now even when the shipped model or a registered one fits the recipe.")
    ] = False,
    ship: Annotated[
        bool, typer.Option(help="Then write it as the shipped model (weights and card; for maintainers).")
    ] = False,
) -> None:
    """The bootstrap champion: the shipped model (checked on gold against its card), else one trained on the
    synthetic world; registered once per recipe, evaluated on gold, made champion."""
    from visionloop.core.model_setup import registry_for
    from visionloop.simulation.bootstrap import run_bootstrap

    settings = settings_of(ctx)
    outcome = run_bootstrap(settings, console, from_scratch=from_scratch)
    champion = registry_for(settings).pointers()["champion"]
    console.print(f"{outcome.summary(settings.bootstrap.target_map50)}; champion is {champion}")
    if ship:
        from visionloop.simulation.shipped_model import SHIPPED_DIR
        from visionloop.simulation.shipped_model import ship as ship_model

        card = ship_model(outcome.version)
        console.print(f"shipped as {SHIPPED_DIR} (card: gold mAP50 {card.gold.map50:.3f}, commit {card.commit})")
    if not outcome.meets(settings.bootstrap.target_map50):
        raise typer.Exit(1)  # the model is kept (better than none), but a script must see the miss


def main() -> None:
    """Run the command; an error visionloop raises on purpose is one message on stderr (escaped: a key or path in
    it may look like Rich markup) and exit status 2, never a traceback."""
    plain_when_not_a_terminal()  # piped to a file: no colour codes, no bars redrawn in place
    try:
        app()
    except VisionloopError as exc:
        status_console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
