"""Where frames stand on their way to labels, read from Redis (the CLI, the demo and the metrics share it)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis

from visionloop.core.streams import StreamNames
from visionloop.labeling.review_queue import ReviewQueue

REASON_SCAN = 10_000


def labeling_status(client: redis.Redis, streams: StreamNames) -> dict[str, Any]:
    stats = ReviewQueue(client, streams, consumer="status").stats()
    reasons: Counter[str] = Counter()
    entries: Any = client.xrevrange(streams.review, count=REASON_SCAN)
    for _, fields in entries or []:
        sampler = (fields or {}).get(b"sampler")
        reasons[sampler.decode() if isinstance(sampler, bytes) else "?"] += 1
    return {
        **stats,
        "imported": int(client.hlen(streams.labeling_imported)),  # type: ignore[arg-type]
        "labelled": int(client.hlen(streams.labeling_harvested)),  # type: ignore[arg-type]
        "by_reason": dict(sorted(reasons.items())),
    }
