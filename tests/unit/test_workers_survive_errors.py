"""Each background worker's thread outlives an unexpected error in its round (a KeyError, say): it says so in
``status()`` (``last_error``, ``errors``), keeps running, and its next round does the work. Real Redis, no Ray;
the step that fails is the round's inner one, made to raise once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from tests.conftest import make_settings, wait_for
from visionloop.core.explanations import ExplainRequest, ExplanationState
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames, event_fields
from visionloop.explaining.worker import ExplainWorker
from visionloop.labeling.sync import SyncReport
from visionloop.labeling.worker import LabelingWorker
from visionloop.learning.loop import LoopWorker
from visionloop.monitoring.drift_monitor import DriftMonitor
from visionloop.monitoring.drift_sampler import DriftSample

STREAMS = StreamNames("visionloop")
T = TypeVar("T")


def failing_once(step: Callable[..., T], error: Exception) -> Callable[..., T]:
    """``step``, except that its first call raises ``error``."""
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> T:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise error
        return step(*args, **kwargs)

    return wrapper


@pytest.fixture
def settings(tmp_path: Path, redis_server: EmbeddedRedis) -> Settings:
    return make_settings(
        tmp_path / "var", REDIS__URL=redis_server.url, LOOP__POLL_INTERVAL_S="0.3", DRIFT__POLL_INTERVAL_S="0.3"
    )


@pytest.fixture
def client(redis_server: EmbeddedRedis) -> Any:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def failed_once(status: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The worker's status once its round failed: the thread still alive, the error recorded with when."""
    seen = wait_for(status, lambda s: s["errors"] == 1, timeout_s=15)
    assert seen["running"] and str(seen["last_error"]).startswith("KeyError: "), seen
    assert seen["last_error_at"] is not None and seen["backoff_s"] > 0
    return seen


def test_the_learning_loop(settings: Settings, redis_server: EmbeddedRedis, client: redis.Redis) -> None:
    worker = LoopWorker(settings, redis_server.url)
    worker._handle = failing_once(worker._handle, KeyError("kind"))  # type: ignore[method-assign]
    try:
        worker.start()
        failed_once(worker.status)
        entry = client.xadd(STREAMS.events, event_fields("camera_state", camera_id="cam-1"))  # type: ignore[arg-type]
        # The next rounds read and acknowledge it (not a trigger: no cycle runs).
        wait_for(lambda: client.xinfo_groups(STREAMS.events)[0], lambda g: g["last-delivered-id"] == entry)
        wait_for(lambda: client.xpending(STREAMS.events, STREAMS.loop_group)["pending"], lambda n: n == 0)
        status = worker.status()
        assert status["running"] and status["rounds"] > status["errors"] == 1
        assert status["last_error"] == "KeyError: 'kind'"  # kept: only a good cycle clears the loop's last error
    finally:
        worker.stop()
    assert not worker.status()["running"]


def test_the_drift_monitor(settings: Settings, redis_server: EmbeddedRedis, client: redis.Redis) -> None:
    monitor = DriftMonitor(settings, redis_server.url)
    monitor._windows.add = failing_once(monitor._windows.add, KeyError("cam-1"))  # type: ignore[method-assign]
    sample = DriftSample("cam-1", time.time(), "v1", "cam-1:1", [0.9], [0], [0.2], [0.5] * 8, {"inference": 5.0}, 9.0)
    try:
        monitor.start()
        client.xadd(STREAMS.drift_samples, sample.to_fields())  # type: ignore[arg-type]
        failed_once(monitor.status)
        # Left unacknowledged by the failed round, the sample is folded in by the next one.
        status = wait_for(monitor.status, lambda s: "cam-1" in s["scopes"] and s["last_error"] is None)
        assert status["running"] and status["errors"] == 1
        assert client.xpending(STREAMS.drift_samples, STREAMS.drift_group)["pending"] == 0
    finally:
        monitor.stop()


def test_the_explanation_worker(settings: Settings, redis_server: EmbeddedRedis, client: redis.Redis) -> None:
    worker = ExplainWorker(settings, redis_server.url, warm=False)
    worker.handle = failing_once(worker.handle, KeyError("box"))  # type: ignore[method-assign]
    fields = ExplainRequest("v1", "cam-1:42", 0, (40, 30, 80, 70), 0, b"jpeg", "operator").to_fields()
    done = {"state": ExplanationState.DONE.value, "key": fields["key"], "seconds": 1.0}
    client.hset(STREAMS.explanations, str(fields["key"]), json.dumps(done))  # answered before: no model needed
    try:
        worker.start()
        client.xadd(STREAMS.explain_requests, dict(fields))  # type: ignore[arg-type]
        failed_once(worker.status)
        # Left pending by the failed round, the request is answered (from the cache) by the next one.
        status = wait_for(worker.status, lambda s: s["cached"] == 1)
        assert status["running"] and status["errors"] == 1 and status["last_error"] == "KeyError: 'box'"
        wait_for(lambda: client.xpending(STREAMS.explain_requests, STREAMS.explain_group)["pending"], lambda n: n == 0)
    finally:
        worker.stop()


class StandInImporter:
    def run_once(self, block_ms: int = 200) -> SyncReport:
        return SyncReport()


class StandInHarvester:
    """Reads Label Studio's annotations in a real worker; here it only counts the reconciliations."""

    def __init__(self) -> None:
        self.reconciled = 0

    def reconcile(self) -> int:
        self.reconciled += 1
        return 0


def test_the_labeling_worker(settings: Settings, redis_server: EmbeddedRedis) -> None:
    worker = LabelingWorker(settings, redis_server.url, ["circle", "square"])
    harvester = StandInHarvester()
    harvester.reconcile = failing_once(harvester.reconcile, KeyError("annotations"))  # type: ignore[method-assign]
    worker._importer, worker._harvester = StandInImporter(), harvester  # type: ignore[assignment]  # what start() fills
    try:
        worker._runner.start()  # the rounds without start()'s Label Studio
        failed_once(worker.status)
        status = wait_for(worker.status, lambda s: s["last_error"] is None and harvester.reconciled == 1, timeout_s=60)
        assert status["running"] and status["errors"] == 1 and status["rounds"] >= 2
    finally:
        worker.stop()
    assert not worker.status()["running"]
