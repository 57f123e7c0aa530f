"""Where frames stand on their way to labels, read from Redis (the CLI, the demo and the metrics share it)."""

from __future__ import annotations

from typing import Any

import redis

from visionloop.core.streams import StreamNames, review_selected
from visionloop.labeling.review_queue import ReviewQueue


def labeling_status(client: redis.Redis, streams: StreamNames, by_reason: bool = True) -> dict[str, Any]:
    """Queue and label counts; ``by_reason`` also gives the frames ever queued per sampler."""
    stats = ReviewQueue(client, streams, consumer="status").stats()
    report: dict[str, Any] = {
        **stats,
        "imported": int(client.hlen(streams.labeling_imported)),  # type: ignore[arg-type]
        "labelled": int(client.hlen(streams.labeling_harvested)),  # type: ignore[arg-type]
    }
    if by_reason:
        report["by_reason"] = review_selected(client, streams)
    return report
