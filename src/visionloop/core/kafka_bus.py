"""The optional Kafka bus (``bus.kind: kafka``; ``pip install visionloop[kafka]``): results to a Kafka topic.

Producer side: ``KafkaBus`` sends one record per result with an aiokafka producer. A record's value is the
result's stream fields as one JSON object (the fields a Redis results entry holds, so a reader decodes both with
``FrameResult.from_stream_fields``); its key is the camera id, so one camera's results stay in order on one
partition. Consumer side: ``ResultsConsumer`` is a faust-streaming app whose agent reads the results topic,
decodes each record back into a ``FrameResult``, counts results per camera in a table, and yields the result to
whatever a deployment chains after it. Nothing here runs against a real broker in CI: the agent is tested with
faust's ``test_context()`` and an in-memory store, the producer with a fake one.

Only this module imports faust and aiokafka, and only ``bus.kind: kafka`` imports this module.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import faust
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped]

from visionloop.core.contracts import FrameResult
from visionloop.core.settings import BusSettings

log = logging.getLogger(__name__)
KEY_FIELD = "camera_id"  # records are keyed by camera: Kafka keeps order per partition, and a key picks one


def results_topic(prefix: str) -> str:
    """Kafka topic names allow no ':' (the Redis keys use it), so the topic is ``<prefix>.results``."""
    return f"{prefix}.results"


def encode_entry(fields: Mapping[str, str]) -> tuple[bytes | None, bytes]:
    """(key, value) of the record carrying one entry: its fields as compact JSON, keyed by its camera."""
    key = fields.get(KEY_FIELD)
    return (key.encode() if key is not None else None), json.dumps(dict(fields), separators=(",", ":")).encode()


def decode_entry(value: bytes) -> dict[str, str]:
    """The fields a record carries (what the Redis entry would hold); ValueError if it holds anything else."""
    fields = json.loads(value)
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise ValueError("a results record holds a JSON object of strings")
    return fields


def decode_result(value: bytes) -> FrameResult:
    """The result a results record carries; ValueError, KeyError or TypeError if it carries none."""
    fields: dict[str | bytes, str | bytes] = {}
    fields.update(decode_entry(value))
    return FrameResult.from_stream_fields(fields)


class KafkaBus:
    """Entries to Kafka topics through one aiokafka producer, made and started on first use (it must be made on the
    loop it runs on). ``producer_factory`` builds it from aiokafka's keyword arguments (default: AIOKafkaProducer)."""

    name = "Kafka"
    transient_errors: tuple[type[Exception], ...] = (KafkaError, OSError)

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        request_timeout_s: float = 5.0,
        producer_factory: Callable[..., Any] | None = None,
    ) -> None:
        self._servers = list(bootstrap_servers)
        self._request_timeout_ms = int(request_timeout_s * 1000)
        self._factory = producer_factory or AIOKafkaProducer
        self._producer: Any = None

    async def _started(self) -> Any:
        if self._producer is None:
            producer = self._factory(
                bootstrap_servers=self._servers, request_timeout_ms=self._request_timeout_ms, acks="all"
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()  # releases the half-made client; the next publish makes a fresh producer
                raise
            self._producer = producer
        return self._producer

    async def publish(self, topic: str, entries: Sequence[Mapping[str, str]]) -> None:
        """Send every entry, then wait until the broker acknowledged all of them (acks=all)."""
        producer = await self._started()
        delivered = []
        for fields in entries:
            key, value = encode_entry(fields)
            delivered.append(await producer.send(topic, value=value, key=key))
        await asyncio.gather(*delivered)

    async def ping(self) -> bool:
        producer = await self._started()
        await producer.client.fetch_all_metadata()  # raises KafkaError when no broker answers
        return True

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()


class ResultsConsumer:
    """A faust app reading the results topic: its agent decodes each record into a ``FrameResult``, counts it in
    ``per_camera`` (a table: kept in ``store``, changelogged to Kafka by faust) and yields it; records that do not
    decode are counted in ``undecodable`` and skipped, so one bad record cannot stop the agent.

    A deployment would run ``ResultsConsumer(settings.bus).app`` as a faust worker, chaining its own agents after
    this one; that has never run here, for want of a broker."""

    def __init__(self, bus: BusSettings, store: str = "memory://") -> None:
        self.app = faust.App(
            f"{bus.topic_prefix}-results",
            broker=[f"kafka://{server}" for server in bus.bootstrap_servers],
            store=store,
            autodiscover=False,
        )
        self.topic = self.app.topic(
            results_topic(bus.topic_prefix),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.per_camera = self.app.Table(f"{bus.topic_prefix}-results-per-camera", default=int)
        self.undecodable = 0
        self.agent = self.app.agent(self.topic, name=f"{bus.topic_prefix}-results")(self._results)

    async def _results(self, records: faust.StreamT[bytes]) -> AsyncIterator[FrameResult]:
        async for value in records:
            try:
                result = decode_result(value)
            except (ValueError, KeyError, TypeError) as exc:
                self.undecodable += 1
                log.warning("skipped a results record that does not decode (%d so far): %s", self.undecodable, exc)
                continue
            self.per_camera[result.camera_id] += 1
            yield result
