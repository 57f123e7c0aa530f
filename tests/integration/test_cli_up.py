"""`visionloop up` as an operator runs it: it prints where things listen, and SIGTERM stops everything it started
without losing a result it acknowledged or a frame it queued for review."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from tests.conftest import free_port, wait_for
from tests.reliability import record_reliability
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames, review_queued_total
from visionloop.simulation.clips import render_clip_jpegs

pytestmark = pytest.mark.integration


def test_up_serves_then_stops_cleanly_on_sigterm(module_var_dir: Path) -> None:
    api_port, redis_port = free_port(), free_port()
    env = {
        **os.environ,
        "VISIONLOOP_PATHS__VAR_DIR": str(module_var_dir),
        "VISIONLOOP_API__PORT": str(api_port),
        "VISIONLOOP_REDIS__EMBEDDED_PORT": str(redis_port),
        "VISIONLOOP_RAY__METRICS_EXPORT_PORT": str(free_port()),
        "VISIONLOOP_API__TOKEN": TOKEN,
        "VISIONLOOP_LABELING__ENABLED": "true",
        "VISIONLOOP_LABELING__LABEL_STUDIO_PORT": str(free_port()),
        "VISIONLOOP_LABELING__STRATUM_S": "0",  # no strata: frames are queued as they are judged...
        "VISIONLOOP_LABELING__RANDOM_RATE": "1.0",  # ...and every answered frame is queued for review...
        "VISIONLOOP_LABELING__DEDUP_MAX_DISTANCE": "0",  # ...unless it is the very same picture
        "COLUMNS": "200",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "visionloop.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, healthy = time.monotonic() + 120, False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{api_port}/v1/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy:
                break
            time.sleep(1)
        assert healthy, "the API never answered"
        children = psutil.Process(process.pid).children(recursive=True)
        assert any("redis-server" in " ".join(c.cmdline()) for c in children)
        with DetectLoad(f"http://127.0.0.1:{api_port}") as load:
            wait_for_answers(load, 20)
            queued_before = review_items(f"redis://127.0.0.1:{redis_port}/0")
            process.send_signal(signal.SIGTERM)  # while requests are in flight
            output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{api_port}" in output and "Stopped." in output
    assert f"redis://127.0.0.1:{redis_port}/0" in output
    # Every child goes: polled, since a child that was told to stop may take a moment (a zombie counts as gone).
    wait_for(lambda: [c for c in children if _alive(c)], lambda left: not left, timeout_s=30, interval_s=0.2)
    # The same Redis data, started again: every answered frame's result and every queued review item is there.
    with EmbeddedRedis(redis_port, module_var_dir / "redis") as server:
        client = redis.Redis.from_url(server.url)
        streams = StreamNames()
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(streams.results)  # type: ignore[assignment]
        published = len([fields for _, fields in entries if fields.get(b"camera_id") == CAMERA.encode()])
        queued_after = review_queued_total(client, streams)  # imported ones leave the stream, counted
        client.close()
    record_reliability(
        "shutdown",
        {
            "results_acknowledged": load.answered,
            "results_in_redis_after_sigterm": published,
            "review_items_before_sigterm": queued_before,
            "review_items_after_sigterm": queued_after,
        },
    )
    assert published >= load.answered > 0
    assert queued_after >= queued_before >= REVIEW_ITEMS


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


TOKEN = "test-token-123"
CAMERA = "sigterm"
REVIEW_ITEMS = 10  # queued before the SIGTERM


class DetectLoad:
    """Posts frames to /v1/detect from a thread until the service goes away; counts the 200s (acknowledged)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._jpegs = render_clip_jpegs(frames=24, width=320, height=180, seed=5)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for index in range(100_000):
                if self._stop.is_set():
                    return
                jpeg = self._jpegs[index % len(self._jpegs)]
                try:
                    response = client.post(
                        "/v1/detect",
                        params={"camera_id": CAMERA},
                        files={"image": ("f.jpg", jpeg)},
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    )
                except httpx.HTTPError:
                    return  # the service is gone
                self.answered += response.status_code == 200

    def __enter__(self) -> DetectLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def wait_for_answers(load: DetectLoad, count: int) -> None:
    deadline = time.monotonic() + 60
    while load.answered < count and time.monotonic() < deadline:
        time.sleep(0.1)
    assert load.answered >= count


def review_items(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 30
        while (count := review_queued_total(client, StreamNames())) < REVIEW_ITEMS and time.monotonic() < deadline:
            time.sleep(0.2)
        return count
    finally:
        client.close()
