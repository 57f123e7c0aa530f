"""A client of the WebSocket stream (``/v1/stream``): frames out as binary messages, answers back in order.

Each connection keeps up to ``window`` frames in flight, the way a camera client that does not wait for one answer
before sending the next frame would; the load generator and the serving benchmark drive the endpoint with it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from visionloop.cli.loadgen import LoadReport


def stream_url(base_url: str, camera_id: str) -> str:
    """The ws:// (or wss://) address of the stream endpoint under an http(s):// API address."""
    scheme, _, rest = base_url.partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest.rstrip('/')}/v1/stream?camera_id={camera_id}"


async def _one_connection(
    base_url: str,
    token: str,
    frames: Sequence[bytes],
    camera_id: str,
    window: int,
    stop_at: float,
    report: LoadReport,
) -> None:
    import websockets

    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(stream_url(base_url, camera_id), additional_headers=headers, max_size=None) as ws:
        credit = asyncio.Semaphore(window)
        sent_at: deque[float] = deque()
        done_sending = asyncio.Event()

        async def send() -> None:
            position = 0
            while time.monotonic() < stop_at:
                await credit.acquire()
                sent_at.append(time.perf_counter())
                await ws.send(frames[position % len(frames)])
                position += 1
            done_sending.set()

        async def receive() -> None:
            while not (done_sending.is_set() and not sent_at):
                answer: dict[str, Any] = json.loads(await ws.recv())
                if "index" not in answer:  # a message about the connection, not a frame
                    continue
                report.request_latency_ms.append((time.perf_counter() - sent_at.popleft()) * 1e3)
                credit.release()
                report.requests += 1
                if "error" in answer:
                    report.errors += 1
                    continue
                report.add_result(answer)

        await asyncio.gather(send(), receive())


def run_stream_clients(
    base_url: str,
    token: str,
    frames: Sequence[bytes],
    clients: int = 4,
    seconds: float = 10.0,
    window: int = 4,
) -> LoadReport:
    """``clients`` connections (camera ids stream-0..) streaming one frame per message for ``seconds``."""
    report = LoadReport()
    started = time.monotonic()
    stop_at = started + seconds

    async def all_clients() -> None:
        await asyncio.gather(
            *(_one_connection(base_url, token, frames, f"stream-{i}", window, stop_at, report) for i in range(clients))
        )

    asyncio.run(all_clients())
    report.seconds = time.monotonic() - started
    return report
