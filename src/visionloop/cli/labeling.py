"""``visionloop labeling ...``: where frames stand on their way to labels, and a labeling round on demand."""

from __future__ import annotations

import json
from typing import Annotated

import redis
import typer
from rich.table import Table

from visionloop.cli.context import api_client, console, print_json, settings_of
from visionloop.core.errors import RedisUnavailableError
from visionloop.core.streams import StreamNames

labeling_app = typer.Typer(help="The labeling queue and Label Studio.", no_args_is_help=True)


@labeling_app.command("status")
def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Backlog, imported, labelled and dead-lettered frames, and why frames were picked (read from Redis)."""
    from visionloop.labeling.status import labeling_status

    settings = settings_of(ctx)
    client = redis.Redis.from_url(settings.redis_url(), socket_timeout=settings.redis.socket_timeout_s)
    try:
        report = labeling_status(client, StreamNames(settings.redis.stream_prefix))
    except (redis.RedisError, OSError) as exc:
        raise RedisUnavailableError(f"cannot read the labeling queue from Redis ({exc}); is the service up?") from exc
    finally:
        client.close()
    if as_json:
        print_json(report)
        return
    table = Table("measure", "value", title="labeling")
    for key, value in report.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


@labeling_app.command("sync")
def sync(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Run one round now and print what it did.")] = True,
    cut: Annotated[
        bool, typer.Option("--cut", help="Cut a data set version of the labels so far (the loop reacts to it).")
    ] = False,
) -> None:
    """Run one labeling round in the running service: import queued frames, handle webhooks, re-read labels."""
    with api_client(ctx, timeout_s=120) as client:
        print_json(client.labeling_sync(cut=cut))
