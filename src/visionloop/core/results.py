"""Publish every frame's result to the results stream without losing any silently.

Results go into a bounded in-memory buffer; a background task drains it in chunks to the bus (pipelined XADDs to
Redis by default, records to Kafka with ``bus.kind: kafka``). While the bus is away the buffer holds them
(retrying with backoff); if it fills, the oldest are dropped, counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from visionloop.core.bus import Bus, RedisStreamsBus
from visionloop.core.contracts import FrameResult

log = logging.getLogger(__name__)
FLUSH_CHUNK = 256
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0
DRAIN_RETRY_S = 0.1  # while draining at shutdown: retry this often instead of sitting out a long backoff


class ResultPublisher:
    """Buffered, retrying writer of ``FrameResult``s to one capped Redis stream, or to any ``Bus`` (``on_bus``)."""

    def __init__(
        self,
        redis_url: str,
        stream: str,
        maxlen: int,
        buffer_size: int,
        socket_timeout_s: float = 2.0,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self._setup(RedisStreamsBus(redis_url, socket_timeout_s, {stream: maxlen}), stream, buffer_size, on_drop)

    @classmethod
    def on_bus(
        cls, bus: Bus, topic: str, buffer_size: int, on_drop: Callable[[int], None] | None = None
    ) -> ResultPublisher:
        """Results to ``topic`` on ``bus`` (Kafka with ``bus.kind: kafka``), buffered and retried alike."""
        publisher = cls.__new__(cls)
        publisher._setup(bus, topic, buffer_size, on_drop)
        return publisher

    def _setup(self, bus: Bus, topic: str, buffer_size: int, on_drop: Callable[[int], None] | None) -> None:
        self._bus = bus
        self._stream = topic
        self._buffer: deque[dict[str, str]] = deque()
        self._buffer_size = buffer_size
        self._on_drop = on_drop
        self._wakeup = asyncio.Event()
        self._draining = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        self.dropped = 0
        self.connected: bool | None = None  # None until the first attempt
        self.last_error: str | None = None
        self.last_success_ts: float | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="result-publisher")

    def publish(self, results: Iterable[FrameResult]) -> None:
        """Queue results; never blocks the caller on the bus."""
        dropped = 0
        for result in results:
            if len(self._buffer) >= self._buffer_size:
                self._buffer.popleft()
                dropped += 1
            self._buffer.append(result.to_stream_fields())
        if dropped:
            self.dropped += dropped
            log.error(
                "results buffer full while %s is unreachable: dropped the %d oldest results (%d in all)",
                self._bus.name,
                dropped,
                self.dropped,
            )
            if self._on_drop:
                self._on_drop(dropped)
        self._wakeup.set()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def status(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "buffered": self.buffered,
            "published": self.published,
            "dropped": self.dropped,
            "last_error": self.last_error,
        }

    async def ping(self) -> bool:
        try:
            ok = await self._bus.ping()
        except self._bus.transient_errors as exc:
            self.connected, self.last_error = False, f"{type(exc).__name__}: {exc}"
            return False
        self.connected = ok
        return ok

    async def _flush_once(self) -> int:
        chunk = [self._buffer[i] for i in range(min(FLUSH_CHUNK, len(self._buffer)))]
        await self._bus.publish(self._stream, chunk)
        # Only now are they safe: drop exactly what was written (new results may have been appended meanwhile).
        for _ in chunk:
            self._buffer.popleft()
        return len(chunk)

    async def _run(self) -> None:
        backoff = BACKOFF_START_S
        while True:
            if not self._buffer:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                self.published += await self._flush_once()
            except self._bus.transient_errors as exc:
                if self.connected is not False:
                    log.error("%s unreachable, buffering results (%d held): %s", self._bus.name, len(self._buffer), exc)
                self.connected, self.last_error = False, f"{type(exc).__name__}: {exc}"
                await self._pause(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            if self.connected is False:
                log.warning("%s reachable again; draining %d buffered results", self._bus.name, len(self._buffer))
            self.connected, self.last_success_ts, backoff = True, time.time(), BACKOFF_START_S

    async def _pause(self, backoff: float) -> None:
        """Back off after a failed write; a drain cuts the pause short, since its time is bounded."""
        if self._draining.is_set():
            await asyncio.sleep(DRAIN_RETRY_S)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._draining.wait(), backoff)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything buffered is written (used at shutdown); False if time ran out.

        Starts the writer if nothing did yet (results queued before the first ``start()`` are not stranded) and
        has it retry every DRAIN_RETRY_S instead of backing off, so a bus that just came back gets them.
        """
        if self._buffer:
            self.start()
            self._wakeup.set()
        self._draining.set()
        try:
            deadline = time.monotonic() + timeout_s
            while self._buffer and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            self._draining.clear()
        return not self._buffer

    async def shutdown(self, timeout_s: float) -> bool:
        """Drain (at most ``timeout_s``), then close; what could not be written is counted as dropped and logged.

        The replica calls this as it stops: a result still in memory then is otherwise lost without a trace.
        """
        drained = await self.drain(timeout_s)
        if not drained:
            lost = len(self._buffer)
            self._buffer.clear()
            self.dropped += lost
            log.error(
                "shutting down with %d results not written to %s within %.1fs (last error: %s)",
                lost,
                self._bus.name,
                timeout_s,
                self.last_error,
            )
            if self._on_drop:
                self._on_drop(lost)
        await self.close()
        return drained

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._bus.close()


class BackgroundPublisher:
    """A ``ResultPublisher`` for synchronous callers (camera workers): it runs on its own event loop in a daemon
    thread, so ``publish`` never waits on the bus and a camera's sender thread never blocks on it."""

    def __init__(self, make: Callable[[], ResultPublisher], name: str = "result-publisher") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        self.publisher: ResultPublisher = self._call(self._started(make))

    async def _started(self, make: Callable[[], ResultPublisher]) -> ResultPublisher:
        publisher = make()
        publisher.start()
        return publisher

    def _call(self, coro: Coroutine[Any, Any, Any], timeout_s: float | None = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def publish(self, results: Iterable[FrameResult]) -> None:
        """Queue results for the bus (returns at once; they are written in chunks on the loop thread)."""
        batch = list(results)
        if batch:
            self._loop.call_soon_threadsafe(self.publisher.publish, batch)

    def status(self) -> dict[str, Any]:
        return self.publisher.status()

    def close(self, timeout_s: float) -> bool:
        """Write what is buffered (at most ``timeout_s``), then stop the loop thread; False if results were lost."""
        if self._loop.is_closed():
            return True
        try:
            drained = bool(self._call(self.publisher.shutdown(timeout_s), timeout_s + 5.0))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            self._loop.close()
        return drained
