"""Where frames stand on their way to labels, read from Redis (the CLI, the demo and the metrics share it)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis

from visionloop.core.streams import StreamNames
from visionloop.labeling.review_queue import ReviewQueue

REASON_SCAN = 10_000


def labeling_status(client: redis.Redis, streams: StreamNames, by_reason: bool = True) -> dict[str, Any]:
    """Queue and label counts; ``by_reason`` also tallies why the newest queued frames were chosen, which reads up to
    REASON_SCAN entries of the review stream: the metrics, exported every round, leave it out."""
    stats = ReviewQueue(client, streams, consumer="status").stats()
    report: dict[str, Any] = {
        **stats,
        "imported": int(client.hlen(streams.labeling_imported)),  # type: ignore[arg-type]
        "labelled": int(client.hlen(streams.labeling_harvested)),  # type: ignore[arg-type]
    }
    if by_reason:
        reasons: Counter[str] = Counter()
        entries: Any = client.xrevrange(streams.review, count=REASON_SCAN)
        for _, fields in entries or []:
            sampler = (fields or {}).get(b"sampler")
            reasons[sampler.decode() if isinstance(sampler, bytes) else "?"] += 1
        report["by_reason"] = dict(sorted(reasons.items()))
    return report
