"""``visionloop labeling status``: where frames stand on their way to labels (read from Redis)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from typing import Annotated, Any

import redis
import typer
from rich.console import Console
from rich.table import Table

from visionloop.errors import RedisUnavailableError
from visionloop.streams import StreamNames

labeling_app = typer.Typer(help="The labeling queue and Label Studio.", no_args_is_help=True)
REASON_SCAN = 10_000


def labeling_status(client: redis.Redis, streams: StreamNames) -> dict[str, Any]:
    from labeling.review_queue import ReviewQueue

    stats = ReviewQueue(client, streams, consumer="status").stats()
    reasons: Counter[str] = Counter()
    entries: Any = client.xrevrange(streams.review, count=REASON_SCAN)
    for _, fields in entries or []:
        sampler = (fields or {}).get(b"sampler")
        reasons[sampler.decode() if isinstance(sampler, bytes) else "?"] += 1
    prefix = streams.prefix
    return {
        **stats,
        "imported": int(client.hlen(f"{prefix}:labeling:imported")),  # type: ignore[arg-type]
        "labelled": int(client.hlen(f"{prefix}:labeling:harvested")),  # type: ignore[arg-type]
        "by_reason": dict(sorted(reasons.items())),
    }


@labeling_app.command("status")
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Backlog, imported, labelled and dead-lettered frames, and why frames were picked."""
    from visionloop.cli import state

    settings = state.settings()
    url = settings.redis.url or f"redis://127.0.0.1:{settings.redis.embedded_port}/0"
    client = redis.Redis.from_url(url, socket_timeout=settings.redis.socket_timeout_s)
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
