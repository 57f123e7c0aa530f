"""The results bus: Redis Streams writes exactly the entries it wrote before the bus existed; the optional Kafka
bus sends the same fields to its topic and its faust agent reads them back. No Kafka broker runs here: the agent
runs in faust's ``test_context()`` with an in-memory store, and the producer is a fake standing in for aiokafka's
(one test points the real aiokafka producer at a closed loopback port)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, ClassVar

import numpy as np
import pytest
import redis
from aiokafka.errors import KafkaConnectionError  # type: ignore[import-untyped]

from tests.conftest import eventually, free_port
from tests.reliability import record_reliability
from visionloop.core import kafka_bus
from visionloop.core.bus import BusSpec, RedisStreamsBus, bus_for
from visionloop.core.contracts import Detections, FrameResult
from visionloop.core.errors import ConfigError
from visionloop.core.frames import ResultTarget
from visionloop.core.kafka_bus import KafkaBus, ResultsConsumer
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.results import ResultPublisher
from visionloop.core.settings import BusSettings, RedisSettings, Settings


def _result(seq: int, camera: str = "cam") -> FrameResult:
    detections = Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5], np.float32), np.array([seq % 3]))
    return FrameResult(camera, seq, 1.0 + seq, "v1", detections)


def _kafka_settings() -> Settings:
    return Settings(
        bus=BusSettings(kind="kafka", bootstrap_servers=["broker-a:9092", "broker-b:9092"], topic_prefix="t")
    )


class FakeProducer:
    """Stands in for ``aiokafka.AIOKafkaProducer``: records what is sent; refuses to start while ``down``."""

    down: ClassVar[bool] = False
    made: ClassVar[list[FakeProducer]] = []

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.records: list[tuple[str, bytes | None, bytes]] = []
        self.started = self.stopped = False
        self.client = self
        FakeProducer.made.append(self)

    async def start(self) -> None:
        if FakeProducer.down:
            raise KafkaConnectionError("Unable to bootstrap from fake brokers")
        self.started = True

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future[None]:
        assert self.started and not self.stopped
        self.records.append((topic, key, value))
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered

    async def fetch_all_metadata(self) -> object:
        return object()

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake_kafka(monkeypatch: pytest.MonkeyPatch) -> type[FakeProducer]:
    monkeypatch.setattr(kafka_bus, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(FakeProducer, "made", [])
    monkeypatch.setattr(FakeProducer, "down", False)
    return FakeProducer


def _entries(client: redis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    raw: Any = client.xrange(stream)
    return [fields for _, fields in raw]


def _records(producers: list[FakeProducer]) -> list[tuple[str, bytes | None, bytes]]:
    return [record for producer in producers for record in producer.records]


async def test_redis_bus_writes_exactly_what_the_publisher_wrote_before(redis_server: EmbeddedRedis) -> None:
    """Same stream, same fields, same approximate cap as the old publisher's own XADD, entry for entry."""
    settings = Settings(redis=RedisSettings(stream_prefix="t", results_maxlen=50))
    results = [_result(i, camera=f"cam{i % 4}") for i in range(1000)]
    publisher = ResultTarget.from_settings(settings, redis_server.url).publisher()
    publisher.start()
    for start in range(0, len(results), 100):
        publisher.publish(results[start : start + 100])
    assert await eventually(lambda: publisher.published == len(results))
    await publisher.close()

    client = redis.Redis.from_url(redis_server.url)
    for result in results:  # what ResultPublisher sent before the bus existed, one XADD each
        client.xadd("reference", result.to_stream_fields(), maxlen=50, approximate=True)  # type: ignore[arg-type]
    written, reference = _entries(client, "t:results"), _entries(client, "reference")
    assert set(client.keys("*")) == {b"t:results", b"reference"}  # nothing else written
    client.close()
    assert written == reference
    assert 50 <= len(written) < len(results)  # capped (approximately), newest kept
    newest = {k.encode(): v.encode() for k, v in results[-1].to_stream_fields().items()}
    assert written[-1] == newest


async def test_redis_bus_trims_only_the_streams_it_caps(redis_server: EmbeddedRedis) -> None:
    bus = RedisStreamsBus(redis_server.url, caps={"capped": 5})
    entries = [{"n": str(i)} for i in range(500)]
    await bus.publish("capped", entries)
    await bus.publish("uncapped", entries)
    assert await bus.ping()
    await bus.close()
    client = redis.Redis.from_url(redis_server.url)
    assert client.xlen("uncapped") == 500 and client.xlen("capped") < 500
    client.close()


def test_the_default_bus_is_redis() -> None:
    spec = BusSpec.from_settings(Settings(redis=RedisSettings(stream_prefix="p")), "redis://127.0.0.1:1/0")
    assert (spec.kind, spec.results, spec.redis_url) == ("redis", "p:results", "redis://127.0.0.1:1/0")
    assert isinstance(BusSpec.from_settings(Settings()).open(), RedisStreamsBus)


def test_kafka_without_the_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faust", None)  # what an install without visionloop[kafka] looks like
    with pytest.raises(ConfigError, match=r"pip install visionloop\[kafka\]"):
        ResultTarget.from_settings(_kafka_settings(), "redis://127.0.0.1:1/0")
    with pytest.raises(ConfigError, match="faust"):
        bus_for(_kafka_settings())


async def test_results_published_on_kafka_reach_the_agent_unchanged(fake_kafka: type[FakeProducer]) -> None:
    settings = _kafka_settings()
    results = [_result(i, camera=f"cam{i % 3}") for i in range(30)]
    started = time.perf_counter()
    publisher = ResultTarget.from_settings(settings, "redis://unused:1/0").publisher()
    publisher.start()
    publisher.publish(results)
    assert await eventually(lambda: publisher.published == len(results))
    await publisher.close()

    (producer,) = fake_kafka.made
    assert producer.options["bootstrap_servers"] == ["broker-a:9092", "broker-b:9092"] and producer.stopped
    records = producer.records
    assert [(topic, key) for topic, key, _ in records] == [("t.results", r.camera_id.encode()) for r in results]
    assert [kafka_bus.decode_entry(value) for _, _, value in records] == [r.to_stream_fields() for r in results]

    consumer = ResultsConsumer(settings.bus)
    assert consumer.topic.get_topic_name() == "t.results"
    async with consumer.agent.test_context() as agent:
        await agent.put(b"not a result", key=b"cam0", wait=False)  # skipped, counted; the agent keeps going
        for _, key, value in records:
            await agent.put(value, key=key)
        received = [agent.results[i] for i in sorted(agent.results)]
    assert [r.to_stream_fields() for r in received] == [r.to_stream_fields() for r in results]
    assert consumer.undecodable == 1
    assert {camera: consumer.per_camera[camera] for camera in ("cam0", "cam1", "cam2")} == {
        "cam0": 10,
        "cam1": 10,
        "cam2": 10,
    }
    record_reliability(
        "kafka_bus",
        {
            "results_published": len(results),
            "records_on_topic": len(records),
            "agent_results": len(received),
            "undecodable_skipped": consumer.undecodable,
            "round_trip_s": round(time.perf_counter() - started, 3),
        },
    )


async def test_kafka_outage_buffers_then_delivers_in_order(fake_kafka: type[FakeProducer]) -> None:
    """The publisher's buffering and retrying hold on Kafka too: no broker, results wait; broker back, all go."""
    fake_kafka.down = True
    bus = KafkaBus(["broker:9092"])
    publisher = ResultPublisher.on_bus(bus, "t.results", buffer_size=100)
    publisher.start()
    publisher.publish(_result(i) for i in range(20))
    assert await eventually(lambda: publisher.connected is False)
    assert not await publisher.ping()
    assert "KafkaConnectionError" in str(publisher.status()["last_error"])
    assert publisher.buffered == 20 and publisher.dropped == 0
    assert all(p.stopped for p in fake_kafka.made)  # every failed start let go of its half-made producer
    fake_kafka.down = False
    publisher.publish(_result(i) for i in range(20, 25))
    assert await publisher.shutdown(timeout_s=5)
    seqs = [kafka_bus.decode_result(value).seq for _, _, value in _records(fake_kafka.made)]
    assert seqs == list(range(25))
    assert publisher.connected is True and publisher.published == 25
    record_reliability(
        "kafka_bus", {"outage_attempts": len(fake_kafka.made) - 1, "outage_buffered": 20, "outage_delivered": 25}
    )


async def test_real_aiokafka_without_a_broker_is_a_transient_outage() -> None:
    """The real producer against a closed loopback port: its error is one the publisher buffers through."""
    bus = KafkaBus([f"127.0.0.1:{free_port()}"], request_timeout_s=1.0)
    publisher = ResultPublisher.on_bus(bus, "t.results", buffer_size=100)
    started = time.monotonic()
    assert not await publisher.ping()
    assert publisher.status()["connected"] is False and "Kafka" in str(publisher.status()["last_error"])
    publisher.publish([_result(0)])
    assert not await publisher.shutdown(timeout_s=0.5)
    assert publisher.dropped == 1 and time.monotonic() - started < 15  # bounded by our timeouts, not aiokafka's


async def test_a_stream_with_a_retention_keeps_only_recent_entries(redis_server: EmbeddedRedis) -> None:
    """MINID ~ trims by age: entries written before the retention window leave, whatever their number; the length
    cap still bounds the stream above it."""
    client = redis.Redis.from_url(redis_server.url)
    old_ms = int((time.time() - 600) * 1000)
    for i in range(2000):  # ten minutes old, written with explicit ids as a busy past would have left them
        client.xadd("aged", {"n": str(i)}, id=f"{old_ms}-{i}")
    bus = RedisStreamsBus(redis_server.url, caps={"aged": 100_000}, retention={"aged": 60.0})
    await bus.publish("aged", [{"n": "new"}] * 5)
    capped = RedisStreamsBus(redis_server.url, caps={"capped": 50}, retention={"capped": 60.0})
    await capped.publish("capped", [{"n": str(i)} for i in range(2000)])
    await bus.close()
    await capped.close()
    left = client.xrange("aged")
    assert [f[b"n"] for _, f in left[-5:]] == [b"new"] * 5
    assert len(left) <= 5 + 100  # at most one macro-node (100 entries) of old ones, where new ones share it
    assert client.xlen("capped") < 2000
    client.close()


def test_the_results_retention_reaches_the_bus() -> None:
    settings = Settings(redis=RedisSettings(stream_prefix="p", results_retention_s=90))
    spec = BusSpec.from_settings(settings, "redis://127.0.0.1:1/0")
    assert (spec.results_retention_s, spec.results_maxlen) == (90, 100_000)
    assert Settings().redis.results_retention_s == 300
