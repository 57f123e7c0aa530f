"""The review queue: selected frames wait on a Redis stream until a labeling worker has put them in Label Studio.

A worker reads through a consumer group and acknowledges an entry only after the import succeeded; entries a dead
worker left pending are reclaimed with XAUTOCLAIM, and an entry delivered more than ``max_deliveries`` times goes to
the dead-letter stream with its last error, so nothing is lost silently. An acknowledged entry is deleted with its
acknowledgement: its frame now lives in Label Studio, and each entry carries a JPEG (about 44 KB), so a stream that
kept them grew by 3.5 MB a minute at four cameras for ever. What was ever queued is counted per sampler in a hash.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from visionloop.core.contracts import FrameResult
from visionloop.core.streams import StreamNames, ensure_group, review_queued_total, text
from visionloop.labeling.samplers import Selection

GROUP = "labeling"


@dataclass(frozen=True)
class ReviewItem:
    frame_id: str
    jpeg: bytes
    result: FrameResult
    selection: Selection
    created: float

    def to_fields(self) -> dict[str, Any]:
        return {
            "frame_id": self.frame_id,
            "camera_id": self.result.camera_id,
            "jpeg": self.jpeg,
            "result": json.dumps(self.result.to_dict(), separators=(",", ":")),
            "sampler": self.selection.sampler,
            "score": f"{self.selection.score:.6f}",
            "reason": self.selection.reason,
            "created": f"{self.created:.6f}",
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> ReviewItem:
        return cls(
            frame_id=fields[b"frame_id"].decode(),
            jpeg=fields[b"jpeg"],
            result=FrameResult.from_dict(json.loads(fields[b"result"])),
            selection=Selection(fields[b"sampler"].decode(), float(fields[b"score"]), fields[b"reason"].decode()),
            created=float(fields[b"created"]),
        )


@dataclass(frozen=True)
class Delivery:
    entry_id: str
    item: ReviewItem | None  # None: the entry could not be parsed (it is dead-lettered at once)
    deliveries: int
    raw: dict[bytes, bytes]


class ReviewQueue:
    def __init__(
        self,
        client: redis.Redis,
        streams: StreamNames,
        consumer: str,
        max_deliveries: int = 5,
        min_idle_ms: int = 30_000,
    ) -> None:
        self._redis, self._streams = client, streams
        self.consumer, self.max_deliveries, self.min_idle_ms = consumer, max_deliveries, min_idle_ms
        self._group_ready = False

    def ensure_group(self) -> None:
        if self._group_ready:
            return
        ensure_group(self._redis, self._streams.review, GROUP)
        self._group_ready = True

    def put(self, item: ReviewItem) -> str:
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._streams.review, item.to_fields())  # type: ignore[arg-type]
            pipe.hincrby(self._streams.review_selected, item.selection.sampler, 1)
            entry = pipe.execute()[0]
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def take(self, count: int = 10, block_ms: int = 1000) -> list[Delivery]:
        """Stale entries of dead consumers first (XAUTOCLAIM), then new ones (XREADGROUP)."""
        self.ensure_group()
        _, claimed, _deleted = self._redis.xautoclaim(  # type: ignore[misc]
            self._streams.review, GROUP, self.consumer, self.min_idle_ms, start_id="0-0", count=count
        )
        entries = list(claimed)
        if len(entries) < count:
            fresh: Any = self._redis.xreadgroup(
                GROUP, self.consumer, {self._streams.review: ">"}, count=count - len(entries), block=block_ms
            )
            for _, stream_entries in fresh or []:
                entries.extend(stream_entries)
        return [self._delivery(entry_id, fields) for entry_id, fields in entries if fields]

    def _delivery(self, entry_id: bytes | str, fields: dict[bytes, bytes]) -> Delivery:
        entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        pending = self._redis.xpending_range(self._streams.review, GROUP, min=entry, max=entry, count=1)
        deliveries = int(pending[0]["times_delivered"]) if pending else 1
        try:
            item: ReviewItem | None = ReviewItem.from_fields(fields)
        except (KeyError, ValueError, TypeError):
            item = None
        return Delivery(entry, item, deliveries, fields)

    def ack(self, delivery: Delivery) -> None:
        """Done with the entry (its frame is in Label Studio): acknowledged and gone from the stream together."""
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(self._streams.review, GROUP, delivery.entry_id)
            pipe.xdel(self._streams.review, delivery.entry_id)
            pipe.execute()

    def forget_acknowledged(self, batch: int = 500) -> int:
        """Delete entries acknowledged before acknowledging deleted them (a stream kept from an older version);
        returns how many. Entries still pending or not yet delivered stay."""
        self.ensure_group()
        groups = {text(g["name"]): g for g in self._redis.xinfo_groups(self._streams.review)}  # type: ignore[union-attr]
        last = text(groups[GROUP]["last-delivered-id"]) if GROUP in groups else "0-0"
        forgotten, start = 0, "-"
        while True:
            entries: Any = self._redis.xrange(self._streams.review, min=start, max=last, count=batch)
            if not entries:
                return forgotten
            ids = [text(entry_id) for entry_id, _ in entries]
            pending = {
                text(p["message_id"])
                for p in self._redis.xpending_range(self._streams.review, GROUP, min=ids[0], max=ids[-1], count=batch)
            }
            done = [entry_id for entry_id in ids if entry_id not in pending]
            if done:
                forgotten += int(self._redis.xdel(self._streams.review, *done))  # type: ignore[arg-type]
            if len(entries) < batch:
                return forgotten
            start = "(" + ids[-1]

    def dead_letter(self, delivery: Delivery, reason: str) -> None:
        """Move an entry to the dead-letter stream (with why), then acknowledge it: kept, not retried."""
        fields = {
            **delivery.raw,
            b"dead_reason": reason.encode(),
            b"dead_at": f"{time.time():.6f}".encode(),
            b"source_id": delivery.entry_id.encode(),
            b"deliveries": str(delivery.deliveries).encode(),
        }
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self._streams.review_dead_letter, fields)  # type: ignore[arg-type]
            pipe.xack(self._streams.review, GROUP, delivery.entry_id)
            pipe.xdel(self._streams.review, delivery.entry_id)
            pipe.execute()

    def should_give_up(self, delivery: Delivery) -> bool:
        return delivery.item is None or delivery.deliveries >= self.max_deliveries

    def stats(self) -> dict[str, int]:
        self.ensure_group()
        pending = self._redis.xpending(self._streams.review, GROUP)
        groups = {
            g["name"].decode() if isinstance(g["name"], bytes) else g["name"]: g
            for g in self._redis.xinfo_groups(self._streams.review)
        }
        lag = groups.get(GROUP, {}).get("lag")
        return {
            "queued_total": review_queued_total(self._redis, self._streams),
            "waiting": int(self._redis.xlen(self._streams.review)),
            "pending": int(pending["pending"]),
            "backlog": int(lag) if lag is not None else -1,
            "dead_lettered": int(self._redis.xlen(self._streams.review_dead_letter)),
        }
