"""Where frames stand on their way to labels, read from Redis without touching anything.

``labeling.status`` creates the review queue's consumer group when missing; a dashboard only reads, so it has its
own read-only counts. Dead-letter entries carry frame JPEGs, so only the latest few are scanned for the reasons.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import redis

from visionloop.core.streams import StreamNames, review_queued_total, review_selected
from visionloop.dashboards.errors import reading, text

SCANNED = 200  # latest dead-letter entries read for the reasons
REVIEW_GROUP = "labeling"  # labeling.review_queue.GROUP: the import worker's consumer group


def _group_lag(client: redis.Redis, stream: str) -> int | None:
    try:
        groups: list[dict[Any, Any]] = client.xinfo_groups(stream)  # type: ignore[assignment]
    except redis.ResponseError:  # no stream yet
        return None
    for group in groups:
        if text(group.get("name")) == REVIEW_GROUP and group.get("lag") is not None:
            return int(group["lag"])
    return None


def queue_counts(client: redis.Redis, streams: StreamNames) -> dict[str, int | None]:
    """queued (frames ever queued), backlog (not yet read by the worker), dead-lettered, imported, labelled."""
    with reading("labeling counts"):
        return {
            "queued": review_queued_total(client, streams),
            "backlog": _group_lag(client, streams.review),
            "dead_lettered": int(client.xlen(streams.review_dead_letter)),  # type: ignore[arg-type]
            "imported": int(client.hlen(streams.labeling_imported)),  # type: ignore[arg-type]
            "labelled": int(client.hlen(streams.labeling_harvested)),  # type: ignore[arg-type]
        }


def _field_counts(client: redis.Redis, stream: str, field: bytes, what: str) -> dict[str, int]:
    with reading(what):
        entries: list[Any] = client.xrevrange(stream, count=SCANNED) or []  # type: ignore[assignment]
    counts: Counter[str] = Counter(text((fields or {}).get(field, b"?")) for _, fields in entries)
    return dict(sorted(counts.items()))


def arm_mix(client: redis.Redis, streams: StreamNames) -> dict[str, int]:
    """Sampler (arm) of the frames ever queued: ``random`` is the control arm, the others the uncertainty arm."""
    with reading("review queue"):
        return review_selected(client, streams)


def dead_letter_reasons(client: redis.Redis, streams: StreamNames) -> dict[str, int]:
    return _field_counts(client, streams.review_dead_letter, b"dead_reason", "dead letters")


def labels_per_hour(client: redis.Redis, streams: StreamNames, hours: int = 24, now: float | None = None) -> pd.Series:
    """Labels harvested per hour over the last ``hours`` (by the label stream's entry times), oldest first."""
    now = time.time() if now is None else now
    start_ms = int((now - hours * 3600) * 1000)
    with reading("labels"):
        entries: list[Any] = client.xrange(streams.labels, min=f"{start_ms}-0") or []  # type: ignore[assignment]
    hour_now = int(now // 3600)
    counts = Counter(int(text(entry_id).split("-")[0]) // 3_600_000 for entry_id, _ in entries)
    index = pd.to_datetime([(hour_now - h) * 3600 for h in range(hours - 1, -1, -1)], unit="s")
    return pd.Series([counts.get(hour_now - h, 0) for h in range(hours - 1, -1, -1)], index=index, name="labels")
