"""The result publisher against a real redis-server: buffering through an outage, dropping only when full,
and writing what is still buffered when it shuts down."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import redis

from tests.conftest import eventually, free_port
from visionloop.core.contracts import Detections, FrameResult
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.results import BackgroundPublisher, ResultPublisher


def _result(seq: int) -> FrameResult:
    detections = Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5], np.float32), np.array([1]))
    return FrameResult("cam", seq, 1.0, "v1", detections)


async def test_results_reach_the_capped_stream(redis_server: EmbeddedRedis) -> None:
    publisher = ResultPublisher(redis_server.url, "t:results", maxlen=100_000, buffer_size=1000)
    publisher.start()
    publisher.publish(_result(i) for i in range(50))
    assert await eventually(lambda: publisher.published == 50)
    client = redis.Redis.from_url(redis_server.url)
    entries = client.xrange("t:results")
    assert [FrameResult.from_stream_fields(fields).seq for _, fields in entries] == list(range(50))
    assert publisher.status()["connected"] is True and publisher.buffered == 0
    await publisher.close()
    client.close()


async def test_outage_buffers_then_drains_without_loss(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    publisher = ResultPublisher(url, "t:results", maxlen=100_000, buffer_size=1000, socket_timeout_s=0.5)
    publisher.start()
    publisher.publish(_result(i) for i in range(30))
    assert await eventually(lambda: publisher.connected is False)
    assert publisher.buffered == 30 and publisher.dropped == 0
    assert not await publisher.ping()
    assert publisher.status()["last_error"]
    with EmbeddedRedis(port, tmp_path / "redis") as server:
        publisher.publish(_result(i) for i in range(30, 40))
        assert await eventually(lambda: publisher.buffered == 0, timeout_s=15)
        client = redis.Redis.from_url(server.url)
        seqs = [FrameResult.from_stream_fields(f).seq for _, f in client.xrange("t:results")]
        client.close()
    assert seqs == list(range(40))
    assert publisher.connected is True
    await publisher.close()


async def test_full_buffer_drops_oldest_and_counts() -> None:
    dropped: list[int] = []
    url = f"redis://127.0.0.1:{free_port()}/0"
    publisher = ResultPublisher(url, "t:results", 1000, buffer_size=10, socket_timeout_s=0.2, on_drop=dropped.append)
    publisher.publish(_result(i) for i in range(25))
    assert publisher.buffered == 10 and publisher.dropped == 15 and sum(dropped) == 15
    await publisher.close()


async def test_shutdown_writes_what_is_still_buffered(redis_server: EmbeddedRedis) -> None:
    publisher = ResultPublisher(redis_server.url, "t:results", maxlen=100_000, buffer_size=1000)
    publisher.publish(_result(i) for i in range(40))  # never started: only the shutdown drain can write them
    client = redis.Redis.from_url(redis_server.url)
    assert publisher.buffered == 40 and client.xlen("t:results") == 0
    assert await publisher.shutdown(timeout_s=5)
    seqs = [FrameResult.from_stream_fields(f).seq for _, f in client.xrange("t:results")]
    client.close()
    assert seqs == list(range(40))
    assert publisher.buffered == 0 and publisher.dropped == 0 and publisher.published == 40


async def test_shutdown_without_redis_is_bounded_and_counts_the_loss() -> None:
    dropped: list[int] = []
    url = f"redis://127.0.0.1:{free_port()}/0"
    publisher = ResultPublisher(url, "t:results", 1000, buffer_size=100, socket_timeout_s=0.2, on_drop=dropped.append)
    publisher.start()
    publisher.publish(_result(i) for i in range(5))
    started = time.monotonic()
    assert not await publisher.shutdown(timeout_s=0.5)
    assert time.monotonic() - started < 3
    assert publisher.buffered == 0 and publisher.dropped == 5 and dropped == [5]


async def test_drain_of_an_empty_buffer_returns_at_once(redis_server: EmbeddedRedis) -> None:
    publisher = ResultPublisher(redis_server.url, "t:results", maxlen=100, buffer_size=10)
    started = time.monotonic()
    assert await publisher.drain(timeout_s=5)
    assert time.monotonic() - started < 1.5  # not the 5 s of the timeout
    await publisher.close()


async def test_shutdown_does_not_sit_out_the_backoff_when_redis_is_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    publisher = ResultPublisher(f"redis://127.0.0.1:{port}/0", "t:results", 1000, buffer_size=100)
    publisher.start()
    began = time.monotonic()
    publisher.publish(_result(i) for i in range(5))
    await asyncio.sleep(3.2)  # refused at 0, 0.1, 0.3, 0.7, 1.5 and 3.1 s: the next try would be at 6.3 s
    with EmbeddedRedis(port, tmp_path / "redis") as server:
        started = time.monotonic()
        assert await publisher.shutdown(timeout_s=5)
        # Well before that next try (however long Redis took to start): the drain retried at once.
        next_try_in = began + 6.3 - started
        assert time.monotonic() - started < max(0.6 * next_try_in, 0.5), next_try_in
        client = redis.Redis.from_url(server.url)
        assert client.xlen("t:results") == 5
        client.close()


def test_the_background_publisher_serves_threads_and_drains_on_close(redis_server: EmbeddedRedis) -> None:
    """A camera's sender thread publishes without an event loop of its own; close writes what is left."""
    background = BackgroundPublisher(lambda: ResultPublisher(redis_server.url, "t:bg", maxlen=1000, buffer_size=100))
    senders = [
        threading.Thread(target=background.publish, args=([_result(i * 10 + k) for k in range(10)],)) for i in range(4)
    ]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    assert background.close(5.0) is True
    client = redis.Redis.from_url(redis_server.url)
    seqs = sorted(FrameResult.from_stream_fields(fields).seq for _, fields in client.xrange("t:bg"))
    client.close()
    assert seqs == list(range(40))
    assert background.close(1.0) is True  # closing twice is harmless
