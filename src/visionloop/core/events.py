"""The audit log: promotions, rollbacks, registry swaps, camera state changes, on the Redis events stream.

When Redis is not reachable (an offline ``visionloop train`` on a laptop), events wait in a local JSON-lines file
and are delivered by the next publisher that reaches Redis, so none is lost.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import redis

from visionloop.core.streams import StreamNames, event_fields

log = logging.getLogger(__name__)


class EventLog:
    def __init__(self, redis_url: str | None, streams: StreamNames, pending_file: Path, timeout_s: float = 1.0) -> None:
        self._redis_url = redis_url
        self._streams = streams
        self._pending_file = pending_file
        self._timeout_s = timeout_s

    def publish(self, kind: str, **payload: Any) -> bool:
        """True when the event (and any pending ones) reached Redis; False when it waits in the pending file."""
        fields = event_fields(kind, **payload)
        if self._redis_url and self._deliver([*self._pending(), fields]):
            self._pending_file.unlink(missing_ok=True)
            return True
        self._pending_file.parent.mkdir(parents=True, exist_ok=True)
        with self._pending_file.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(fields) + "\n")
        log.warning("Redis unreachable: event '%s' kept in %s until it is", kind, self._pending_file)
        return False

    def flush_pending(self) -> int:
        pending = self._pending()
        if pending and self._redis_url and self._deliver(pending):
            self._pending_file.unlink(missing_ok=True)
            return len(pending)
        return 0

    def _pending(self) -> list[dict[str, str]]:
        if not self._pending_file.is_file():
            return []
        return [json.loads(line) for line in self._pending_file.read_text(encoding="utf-8").splitlines() if line]

    def _deliver(self, events: list[dict[str, str]]) -> bool:
        assert self._redis_url
        client = redis.Redis.from_url(
            self._redis_url, socket_timeout=self._timeout_s, socket_connect_timeout=self._timeout_s
        )
        try:
            with client.pipeline(transaction=True) as pipe:
                for fields in events:
                    pipe.xadd(self._streams.events, fields)  # type: ignore[arg-type]
                pipe.execute()
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()
        return True
