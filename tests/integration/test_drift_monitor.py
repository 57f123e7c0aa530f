"""The drift sampler and monitor on a real Redis (no Ray): answered frames -> samples stream -> windows -> drift
stream, state hash, alarm and cleared events, a reference reset when the champion changes, every entry acked."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from tests.conftest import free_port, make_settings, wait_for
from visionloop.core.contracts import Detections, EncodedFrame, FrameResult, StageLatency
from visionloop.core.imaging import encode_jpeg
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.monitoring.drift_monitor import ALARM_EVENT, CLEARED_EVENT, DriftMonitor
from visionloop.monitoring.drift_sampler import DriftSample, build_drift_sampler
from visionloop.monitoring.drift_windows import ALL_SCOPE

pytestmark = pytest.mark.integration
WINDOW, PERSISTENCE = 10, 2
CAMERA = "cam-1"


def frame(rng: np.random.Generator, seq: int, ts: float, domain: str, version: str = "v1") -> tuple[Any, Any]:
    """A small frame and its answer: domain A is bright with confident detections of classes 0-1, domain B dark with
    doubtful detections of classes 3-4."""
    bright = domain == "A"
    image = np.clip(rng.normal(150 if bright else 45, 12, (90, 160, 3)), 0, 255).astype(np.uint8)
    for _ in range(3):
        x, y = (int(v) for v in rng.integers(0, 120, 2))
        cv2.rectangle(image, (x, y % 60), (x + 30, y % 60 + 25), tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    k = int(rng.integers(2, 5))
    x1 = rng.uniform(0, 100, k)
    y1 = rng.uniform(0, 50, k)
    side = rng.uniform(15, 35, k) if bright else rng.uniform(5, 12, k)
    detections = Detections(
        np.stack([x1, y1, x1 + side, y1 + side], axis=1),
        rng.uniform(0.7, 0.95, k) if bright else rng.uniform(0.3, 0.45, k),
        rng.integers(0, 2, k) if bright else rng.integers(3, 5, k),
    )
    latency = StageLatency(decode_ms=1.0, queue_ms=2.0, inference_ms=10.0, post_ms=0.5)
    result = FrameResult(CAMERA, seq, ts, version, detections, latency, frame_width=160, frame_height=90)
    return EncodedFrame(CAMERA, encode_jpeg(image), seq, ts), result


class Feeder:
    """Frames of one camera, at 4 per second, offered to the real sampler (which keeps one per 0.5 s)."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.sampler = build_drift_sampler(settings, url)
        self.rng = np.random.default_rng(0)
        self.seq = 0

    def samples(self, count: int, domain: str, version: str = "v1") -> None:
        for _ in range(count * 2):
            self.seq += 1
            encoded, result = frame(self.rng, self.seq, 1000 + self.seq * 0.25, domain, version)
            assert self.sampler.offer(encoded, result) is None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path / "var",
        DRIFT__WINDOW_SIZE=str(WINDOW),
        DRIFT__PERSISTENCE=str(PERSISTENCE),
        DRIFT__POLL_INTERVAL_S="0.2",
        DRIFT__SAMPLE_INTERVAL_S="0.5",
    )


@pytest.fixture
def monitor(settings: Settings, redis_server: EmbeddedRedis) -> Iterator[DriftMonitor]:
    worker = DriftMonitor(settings, redis_server.url)
    worker.start()
    yield worker
    worker.stop()


def windows(client: redis.Redis, names: StreamNames, scope: str) -> list[dict[str, Any]]:
    entries = client.xrange(names.drift)
    return [json.loads(f[b"json"]) for _, f in entries if f[b"scope"].decode() == scope]


def events(client: redis.Redis, names: StreamNames) -> list[tuple[str, dict[str, Any]]]:
    return [(f[b"kind"].decode(), json.loads(f[b"payload"])) for _, f in client.xrange(names.events)]


def test_sampler_keeps_one_frame_per_interval_and_a_compact_summary(
    settings: Settings, redis_server: EmbeddedRedis
) -> None:
    feeder = Feeder(settings, redis_server.url)
    feeder.samples(5, "A")  # 10 frames 0.25 s apart: 5 kept
    client = redis.Redis.from_url(redis_server.url)
    entries = client.xrange(StreamNames(settings.redis.stream_prefix).drift_samples)
    assert len(entries) == 5
    sample = DriftSample.from_fields(entries[0][1])
    assert sample.camera_id == CAMERA and sample.model_version == "v1"
    assert len(sample.appearance) == 208 and len(sample.confidences) == len(sample.class_ids) == len(sample.box_sizes)
    assert all(0.7 <= c <= 0.95 for c in sample.confidences) and all(0 < s < 1 for s in sample.box_sizes)
    assert sample.latency_ms == {"decode": 1.0, "queue": 2.0, "batch": 0.0, "inference": 10.0, "post": 0.5}
    assert sample.total_ms == 13.5
    assert len(entries[0][1][b"json"]) < 2_000  # compact: the stream holds tens of thousands


def test_samples_older_than_the_retention_leave_the_stream(settings: Settings, redis_server: EmbeddedRedis) -> None:
    """A cap by count filled for hours at a few cameras (the soak saw Redis grow by it); by age the stream's memory
    is the sampling rate times drift.samples_retention_s (300 s by default)."""
    assert settings.drift.samples_retention_s == 300.0
    client = redis.Redis.from_url(redis_server.url)
    stream = StreamNames(settings.redis.stream_prefix).drift_samples
    old_ms = int((time.time() - 600) * 1000)
    for i in range(1000):  # ten minutes old, as a busy past would have left them
        client.xadd(stream, {"json": "{}"}, id=f"{old_ms}-{i}")
    Feeder(settings, redis_server.url).samples(5, "A")
    left = client.xrange(stream)
    assert len(left) <= 5 + 100  # at most one macro-node (100 entries) of old ones, where new ones share it
    assert [DriftSample.from_fields(f).camera_id for _, f in left[-5:]] == [CAMERA] * 5
    client.close()


def test_sampler_drops_quietly_while_redis_is_away(settings: Settings) -> None:
    feeder = Feeder(settings, f"redis://127.0.0.1:{free_port()}")
    with pytest.raises(redis.ConnectionError):
        feeder.samples(1, "A")  # the first failure is raised: the Router counts and logs it
    feeder.samples(3, "A")  # then samples are dropped without waiting on Redis again
    assert feeder.sampler.dropped == 4 and feeder.sampler.sampled == 0


def test_monitor_windows_alarm_clear_and_reset(
    settings: Settings, redis_server: EmbeddedRedis, monitor: DriftMonitor
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    names = StreamNames(settings.redis.stream_prefix)
    feeder = Feeder(settings, redis_server.url)

    feeder.samples(WINDOW * 2, "A")  # a reference, then one window like it
    for scope in (CAMERA, ALL_SCOPE):
        seen = wait_for(lambda scope=scope: windows(client, names, scope), lambda w: len(w) == 2)
        assert seen[0]["kind"] == "reference" and seen[0]["model_version"] == "v1"
        assert seen[1]["kind"] == "window" and not seen[1]["drifted"] and not seen[1]["alarm"]
        assert set(seen[1]["tests"]) >= {"confidence_ks", "class_chi2", "count_ks", "box_size_ks", "appearance_mmd"}

    feeder.samples(WINDOW * PERSISTENCE, "B")  # drift in every window: the alarm after PERSISTENCE of them
    raised = wait_for(lambda: [e for e in events(client, names) if e[0] == ALARM_EVENT], lambda e: len(e) == 2)
    assert {payload["scope"] for _, payload in raised} == {CAMERA, ALL_SCOPE}
    state = json.loads(client.hget(names.drift_state, CAMERA))
    assert state["alarm"] and state["consecutive"] == PERSISTENCE and state["windows_evaluated"] == 1 + PERSISTENCE
    assert state["last_window"]["drifted"] and "confidence_ks" in state["last_window"]["reasons"]
    assert state["reference"]["state"] == "set" and state["reference"]["model_version"] == "v1"

    feeder.samples(WINDOW * PERSISTENCE, "A")  # clean again: cleared after as many windows
    wait_for(lambda: [e for e in events(client, names) if e[0] == CLEARED_EVENT], lambda e: len(e) == 2)
    assert not json.loads(client.hget(names.drift_state, ALL_SCOPE))["alarm"]

    feeder.samples(3, "B", version="v2")  # a new champion: the reference is reset, B frames start the new one
    feeder.samples(2, "A", version="v1")  # late answers of the replaced champion do not reset it back
    feeder.samples(WINDOW - 3, "B", version="v2")
    seen = wait_for(lambda: windows(client, names, CAMERA), lambda w: w[-1]["kind"] == "reference")
    assert seen[-1]["model_version"] == "v2" and seen[-1]["frames"] == WINDOW
    feeder.samples(WINDOW, "B", version="v2")  # B is now the reference: no drift
    seen = wait_for(lambda: windows(client, names, CAMERA), lambda w: w[-1]["kind"] == "window")
    assert not seen[-1]["drifted"] and seen[-1]["model_version"] == "v2"

    wait_for(lambda: monitor.status()["samples_read"], lambda n: n == feeder.sampler.sampled)
    # Samples are counted as read before their batch is acknowledged: wait for the acknowledgement.
    wait_for(lambda: client.xpending(names.drift_samples, names.drift_group)["pending"], lambda n: n == 0)
    status = monitor.status()
    assert status["running"] and status["scopes"][CAMERA]["model_version"] == "v2"
    assert status["scopes"][CAMERA]["windows_evaluated"] == 1 + 2 * PERSISTENCE + 1


def test_periodic_tasks_run_and_a_failing_one_does_not_stop_the_others(
    settings: Settings, redis_server: EmbeddedRedis
) -> None:
    worker = DriftMonitor(settings, redis_server.url)
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    worker.add_periodic(broken)
    worker.add_periodic(lambda: ran.append("accuracy"))
    worker.periodic()
    assert ran == ["accuracy"]
    worker.stop()
