"""The Router's replica shutdown hook writes the results still buffered to Redis (real redis-server, no Ray).

The replica is built and torn down the way Ray Serve's replica does it (``__new__``, awaited ``__init__``, ASGI
lifespan startup, awaited ``__del__``), so the test goes through the real ingress wrapper, not a copy of it.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import redis

from visionloop.core.config import load_settings
from visionloop.core.contracts import Detections, EncodedFrame, FrameResult, StageLatency
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames
from visionloop.serving.detector import FrameReply, frame_results
from visionloop.serving.router import Router


async def _detect_frames(frames: list[EncodedFrame]) -> list[FrameResult | str]:
    detections = Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.5], np.float32), np.array([1]))
    return frame_results(frames, [FrameReply(detections, StageLatency(), "v1", 64, 48) for _ in frames])


@pytest.fixture
def replicas() -> Iterator[list[Any]]:
    """Holds the test's replicas and collects them quietly afterwards: Serve's ingress wrapper has an async
    ``__del__``, so the garbage collector's own call of it makes a never-awaited coroutine (Serve never lets a
    replica be collected; it kills the process)."""
    held: list[Any] = []
    yield held
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "coroutine .*__del__' was never awaited", RuntimeWarning)
        held.clear()
        gc.collect()


async def _start_like_serve(replicas: list[Any], *args: Any) -> Any:
    """What Serve's replica does to start an ingress deployment (ray/serve/_private/replica.py)."""
    cls = Router.func_or_class  # type: ignore[attr-defined]
    replica = cls.__new__(cls)
    replicas.append(replica)
    await replica.__init__(*args)
    await replica._run_asgi_lifespan_startup()
    return replica


async def test_results_buffered_at_shutdown_reach_redis(
    redis_server: EmbeddedRedis, tmp_path: Path, replicas: list[Any]
) -> None:
    settings = load_settings(environ={"VISIONLOOP_PATHS__VAR_DIR": str(tmp_path / "var")})
    champion = SimpleNamespace(detect_frames=SimpleNamespace(remote=_detect_frames))
    replica = await _start_like_serve(replicas, settings, champion, redis_server.url)
    replies = await replica.process_frames([EncodedFrame("cam", b"jpeg", seq=i) for i in range(20)])
    assert all(isinstance(r, FrameResult) for r in replies)
    # process_frames does not yield after queueing, so the writer has not run: these would die with the replica.
    client = redis.Redis.from_url(redis_server.url)
    stream = StreamNames(settings.redis.stream_prefix).results
    assert replica.publisher.buffered == 20 and client.xlen(stream) == 0

    await replica.__del__()  # what Serve's call_destructor awaits when the replica stops

    seqs = [FrameResult.from_stream_fields(f).seq for _, f in client.xrange(stream)]
    client.close()
    assert seqs == list(range(20))
    assert replica.publisher.buffered == 0 and replica.publisher.dropped == 0


async def test_shutdown_hook_survives_a_replica_whose_init_failed(replicas: list[Any]) -> None:
    cls = Router.func_or_class  # type: ignore[attr-defined]
    replicas.append(cls.__new__(cls))
    await cls.__mro__[1].__del__(replicas[0])  # the Router's own hook: nothing to flush, nothing raised
