"""``visionloop labeling status``: where frames stand on their way to labels (read from Redis)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import redis
import typer
from rich.console import Console
from rich.table import Table

from visionloop.errors import RedisUnavailableError
from visionloop.streams import StreamNames

labeling_app = typer.Typer(help="The labeling queue and Label Studio.", no_args_is_help=True)


@labeling_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Backlog, imported, labelled and dead-lettered frames, and why frames were picked."""
    from visionloop.cli import state

    settings = state.settings()
    url = settings.redis.url or f"redis://127.0.0.1:{settings.redis.embedded_port}/0"
    client = redis.Redis.from_url(url, socket_timeout=settings.redis.socket_timeout_s)
    from labeling.status import labeling_status

    try:
        report = labeling_status(client, StreamNames(settings.redis.stream_prefix))
    except (redis.RedisError, OSError) as exc:
        raise RedisUnavailableError(f"cannot read the labeling queue from Redis ({exc}); is the service up?") from exc
    finally:
        client.close()
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    table = Table("measure", "value", title="labeling")
    for key, value in report.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    Console().print(table)


@labeling_app.command("sync")
def sync(
    once: Annotated[bool, typer.Option("--once", help="Run one round now and print what it did.")] = True,
) -> None:
    """Run one labeling round in the running service: import queued frames, handle webhooks, re-read labels."""
    import httpx

    from visionloop.cli import state
    from visionloop.errors import VisionloopError

    settings = state.settings()
    url = f"http://{settings.api.host}:{settings.api.port}/v1/labeling/sync"
    headers = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
    try:
        response = httpx.post(url, headers=headers, timeout=120)
    except httpx.HTTPError as exc:
        raise VisionloopError(f"the service did not answer ({exc}); is 'visionloop up' running?") from exc
    if response.status_code >= 400:
        raise VisionloopError(f"labeling sync failed ({response.status_code}): {response.text}")
    sys.stdout.write(json.dumps(response.json(), indent=2) + "\n")
