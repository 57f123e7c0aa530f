"""The bus the results stream is published on: Redis Streams by default, Kafka where ``bus.kind: kafka``.

A ``Bus`` only writes entries (flat string fields, as a Redis stream entry holds them) to a named topic; the
buffering, retrying and counting of losses stay in ``ResultPublisher``, so they are the same whatever carries the
results. Only the results stream can move to Kafka: the review queue, the audit events and every other key stay
on Redis, whose consumer groups (acknowledge, reclaim, dead-letter) the labeling worker and the loop rely on.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from visionloop.core.errors import ConfigError
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames

KAFKA_INSTALL = "pip install visionloop[kafka]"


class Bus(Protocol):
    """Where published entries go. ``transient_errors`` are the failures worth retrying (the publisher buffers
    meanwhile); ``name`` is what logs and errors call the bus."""

    name: str
    transient_errors: tuple[type[Exception], ...]

    async def publish(self, topic: str, entries: Sequence[Mapping[str, str]]) -> None:
        """Write ``entries`` in order; raise one of ``transient_errors`` if they may not all have been written."""

    async def ping(self) -> bool:
        """Whether the bus answers now (raises one of ``transient_errors`` if it cannot be reached)."""

    async def close(self) -> None:
        """Let go of connections."""


class RedisStreamsBus:
    """Entries to Redis streams with one pipelined XADD each: exactly the entries the dashboard, the benchmarks and
    the demo read. A stream ``retention`` names is trimmed by age (XADD MINID ~: entries older than that many
    seconds go), so its memory is rate x retention; ``caps`` bounds a stream's length (MAXLEN ~) as well, the
    ceiling where the rate is higher than planned. Trimming is approximate: Redis drops whole macro-nodes."""

    name = "Redis"
    transient_errors: tuple[type[Exception], ...] = (RedisError, OSError)

    def __init__(
        self,
        redis_url: str,
        socket_timeout_s: float = 2.0,
        caps: Mapping[str, int] | None = None,
        retention: Mapping[str, float] | None = None,
    ) -> None:
        self._redis = aioredis.Redis.from_url(
            redis_url, socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s
        )
        self._caps = dict(caps or {})
        self._retention = {topic: seconds for topic, seconds in (retention or {}).items() if seconds > 0}

    async def publish(self, topic: str, entries: Sequence[Mapping[str, str]]) -> None:
        maxlen = self._caps.get(topic)  # None: never trimmed by length
        retention = self._retention.get(topic)
        minid = None if retention is None else f"{int((time.time() - retention) * 1000)}-0"
        async with self._redis.pipeline(transaction=False) as pipe:
            for fields in entries:
                if minid is None:
                    pipe.xadd(topic, dict(fields), maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
                else:
                    pipe.xadd(topic, dict(fields), minid=minid, approximate=True)  # type: ignore[arg-type]
            if minid is not None and maxlen is not None:
                pipe.xtrim(topic, maxlen=maxlen, approximate=True)  # XADD takes one trim rule; the cap is the other
            await pipe.execute()

    async def ping(self) -> bool:
        return bool(await self._redis.ping())

    async def close(self) -> None:
        await self._redis.aclose()


def require_kafka() -> None:
    """Fail early, and say what to install, when ``bus.kind: kafka`` is chosen without the Kafka extra."""
    for package in ("faust", "aiokafka"):
        try:
            importlib.import_module(package)
        except ImportError as exc:
            raise ConfigError(f"bus.kind is kafka but {package} cannot be imported ({exc}): {KAFKA_INSTALL}") from None


@dataclass(frozen=True)
class BusSpec:
    """Which bus carries the results and how to reach it, as plain data: it travels to camera actors, which open
    the bus (and its connections) where they publish."""

    kind: Literal["redis", "kafka"]
    results: str  # the results stream (Redis) or topic (Kafka)
    redis_url: str
    socket_timeout_s: float
    results_maxlen: int  # Redis only: Kafka trims by the topic's retention, which the broker's operator sets
    results_retention_s: float = 0.0  # Redis only; 0: by length alone
    bootstrap_servers: tuple[str, ...] = ()
    request_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings, redis_url: str | None = None) -> BusSpec:
        """The bus ``settings`` choose; a ConfigError if it is Kafka and the Kafka extra is not installed."""
        results = StreamNames(settings.redis.stream_prefix).results
        if settings.bus.kind == "kafka":
            require_kafka()
            from visionloop.core.kafka_bus import results_topic

            results = results_topic(settings.bus.topic_prefix)
        return cls(
            kind=settings.bus.kind,
            results=results,
            redis_url=redis_url or settings.redis_url(),
            socket_timeout_s=settings.redis.socket_timeout_s,
            results_maxlen=settings.redis.results_maxlen,
            results_retention_s=settings.redis.results_retention_s,
            bootstrap_servers=tuple(settings.bus.bootstrap_servers),
            request_timeout_s=settings.bus.request_timeout_s,
        )

    def open(self) -> Bus:
        """A bus ready to publish; it connects on first use (a Kafka producer must be made on the loop it runs on)."""
        if self.kind == "kafka":
            from visionloop.core.kafka_bus import KafkaBus

            return KafkaBus(self.bootstrap_servers, self.request_timeout_s)
        return RedisStreamsBus(
            self.redis_url,
            self.socket_timeout_s,
            {self.results: self.results_maxlen},
            {self.results: self.results_retention_s},
        )


def bus_for(settings: Settings, redis_url: str | None = None) -> Bus:
    """The bus ``settings`` choose, opened (``redis_url`` overrides ``settings.redis_url()``, as the parts do)."""
    return BusSpec.from_settings(settings, redis_url).open()
