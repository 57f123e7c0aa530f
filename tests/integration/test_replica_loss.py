"""Losing a process mid-stream: a Detector replica, a Router replica and a camera worker are killed while four
simulated RTSP cameras stream; the streams go on, and the video without results is measured per camera.

Seconds of video lost are read from the results in Redis: the longest gap between consecutive results of a camera
in the window around the kill, less one frame period. A window without a kill, measured the same way and under the
same load, is the baseline (on two busy cores a camera skips frames now and then anyway): the bounds are on what a
kill costs beyond it, so a slow machine's own gaps are not charged to the kill.

Failed API requests are counted per kill, not per second: the probe sends one request at a time, so a machine's
speed changes how many requests a window holds, not how many can meet a dying replica.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
import redis

from tests.conftest import free_port, make_settings, wait_for
from tests.reliability import record_reliability
from visionloop.cli.service import VisionloopService
from visionloop.core.contracts import FrameResult
from visionloop.core.streams import StreamNames, camera_worker_actor
from visionloop.simulation.rtsp_cameras import RtspSimulator, prepare_world_camera

pytestmark = pytest.mark.integration
AUTH = {"Authorization": "Bearer test-token-123"}
CAMERAS = 4
FPS = 10
WINDOW_S = 8.0  # measured after each kill: long enough for a replacement process to start
MAX_LOST_S = 2.0  # the bound for a replica, beyond the baseline's gap
# A camera worker's own restart (a new actor, the RTSP session opened again) is measured over a longer window and
# bounded at 3 s, above the 2 s goal by a margin for a busy machine (one kill, one figure): measured 1.2 s here.
WORKER_WINDOW_S = 20.0
WORKER_MAX_LOST_S = 3.0
# Per kill: the request in flight on the dying replica, and one that reached it while it was dying (Serve retries
# the later ones on a live replica). Any failure away from a kill is a defect.
MAX_FAILED_PER_KILL = 2


def _results_between(client: redis.Redis, stream: str, start: float, end: float) -> dict[str, list[float]]:
    """Capture times of the results published in [start, end), per camera."""
    entries: list[tuple[bytes, dict[str | bytes, str | bytes]]] = client.xrange(  # type: ignore[assignment]
        stream, min=str(int(start * 1000)), max=str(int(end * 1000))
    )
    per_camera: dict[str, list[float]] = {}
    for _, fields in entries:
        result = FrameResult.from_stream_fields(fields)
        per_camera.setdefault(result.camera_id, []).append(result.capture_ts)
    return per_camera


def _seconds_lost(per_camera: dict[str, list[float]], start: float, end: float) -> dict[str, float]:
    """Per camera: the longest stretch of video without a result (the window's edges count), less a frame."""
    lost = {}
    for camera in (f"cam{i}" for i in range(CAMERAS)):
        times = sorted(t for t in per_camera.get(camera, []) if start <= t < end)
        edges = [start, *times, end]
        lost[camera] = round(max(b - a for a, b in itertools.pairwise(edges)) - 1.0 / FPS, 2)
    return lost


class ApiProbe:
    """Sends /v1/detect one request at a time, 100 ms apart, in a thread; records when each went, when it was
    answered and how (the status, or the error's name)."""

    def __init__(self, url: str, jpeg: bytes) -> None:
        self.url, self.jpeg = url, jpeg
        self.calls: list[tuple[float, float, int | str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.wait(0.1):
                sent = time.time()
                try:
                    outcome: int | str = client.post(
                        "/v1/detect", files={"image": ("f.jpg", self.jpeg)}, headers=AUTH
                    ).status_code
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                self.calls.append((sent, time.time(), outcome))

    def failures_by_kill(self, kills: dict[str, float]) -> dict[str, list[tuple[float, float, int | str]]]:
        """Failed calls by the kill whose window they met (answered after it, sent within WINDOW_S of it); calls
        that met no kill's window under "none"."""
        out: dict[str, list[tuple[float, float, int | str]]] = {name: [] for name in [*kills, "none"]}
        for call in self.calls:
            if call[2] == 200:
                continue
            met = [name for name, at in kills.items() if call[1] >= at and call[0] <= at + WINDOW_S]
            out[met[0] if met else "none"].append(call)
        return out

    def answered_after(self, at: float) -> bool:
        """Whether a call sent after ``at`` succeeded: the API came back."""
        return any(sent > at and outcome == 200 for sent, _, outcome in self.calls)

    def __enter__(self) -> ApiProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _serve_replica(deployment: str) -> Any:
    names = [a for a in ray.util.list_named_actors(all_namespaces=True) if f"#{deployment}#" in a["name"]]
    assert names, f"no replica of {deployment} found"
    return ray.get_actor(names[0]["name"], namespace=names[0]["namespace"])


def _kill_and_measure(
    client: redis.Redis, stream: str, kill: Callable[[], None], window_s: float = WINDOW_S
) -> tuple[float, dict[str, float]]:
    """When the kill was sent, and the seconds of video each camera lost in the window after it."""
    killed_at = time.time()
    kill()
    time.sleep(window_s)  # a measuring window, not a wait for a condition: every gap in it counts
    end = time.time()
    return killed_at, _seconds_lost(_results_between(client, stream, killed_at - 1.0, end), killed_at, end)


@pytest.mark.timeout(600)
def test_a_killed_replica_or_camera_worker_costs_seconds_not_the_stream(module_var_dir: Path, tmp_path: Path) -> None:
    videos = [
        prepare_world_camera(f"cam{i}", "A", 40 + i, seconds=4, fps=FPS, out_dir=tmp_path, height=180, width=320)
        for i in range(CAMERAS)
    ]
    settings = make_settings(
        module_var_dir,
        serving__replicas="2",
        serving__router_replicas="2",
        serving__num_cpus="0.5",
        cameras__worker_num_cpus="0",
        cameras__stall_timeout_s="2",
    )
    with RtspSimulator(videos, free_port()) as simulator, VisionloopService(settings) as service:
        api = httpx.Client(base_url=service.api_url, timeout=60)
        for i in range(CAMERAS):
            spec = {"id": f"cam{i}", "url": simulator.url(f"cam{i}"), "target_fps": FPS}
            assert api.post("/v1/cameras", json=spec, headers=AUTH).status_code == 201
        wait_for(
            lambda: api.get("/v1/cameras").json(),
            lambda rows: len(rows) == CAMERAS and all(r["frames_processed"] >= 20 for r in rows),
            90,
            0.5,
        )
        client = redis.Redis.from_url(service.redis_url)
        stream = StreamNames(settings.redis.stream_prefix).results
        figures: dict[str, Any] = {}
        kills: dict[str, float] = {}
        with ApiProbe(service.api_url, _probe_jpeg()) as probe:
            start = time.time()
            time.sleep(WINDOW_S)  # the baseline: the same window and load, without a kill
            end = time.time()
            figures["baseline_s"] = _seconds_lost(_results_between(client, stream, start - 1, end), start, end)
            kills["detector"], figures["detector_s"] = _kill_and_measure(
                client, stream, lambda: ray.kill(_serve_replica("ChampionDetector"), no_restart=True)
            )
            kills["router"], figures["router_s"] = _kill_and_measure(
                client, stream, lambda: ray.kill(_serve_replica("Router"), no_restart=True)
            )
        failures = probe.failures_by_kill(kills)
        figures["api_requests"], figures["api_failed"] = len(probe.calls), sum(map(len, failures.values()))
        # cam0's process: the camera host it shares (the default) or its own worker (cameras_per_process 1).
        cam0 = next(row for row in api.get("/v1/cameras").json() if row["id"] == "cam0")
        worker = ray.get_actor(cam0.get("host") or camera_worker_actor("cam0"))
        _, figures["camera_worker_s"] = _kill_and_measure(
            client, stream, lambda: ray.kill(worker, no_restart=False), WORKER_WINDOW_S
        )
        rows = wait_for(
            lambda: api.get("/v1/cameras").json(),
            lambda rows: all(r["state"] == "streaming" for r in rows),
            60,
            0.5,
        )
        figures["replica_retries"] = sum(r.get("replica_retries", 0) for r in rows)
        figures["frames_lost"] = sum(r.get("frames_lost", 0) for r in rows)
        worst = {key: max(value.values()) for key, value in figures.items() if isinstance(value, dict)}
        record_reliability(
            "replica_loss",
            {
                "cameras": CAMERAS,
                "fps": FPS,
                "seconds_of_video_lost_max": worst,
                "seconds_of_video_lost": {k: v for k, v in figures.items() if isinstance(v, dict)},
                "api_requests_during_kills": figures["api_requests"],
                "api_requests_failed": figures["api_failed"],
                "api_requests_failed_by_kill": {name: len(calls) for name, calls in failures.items()},
                "replica_retries": figures["replica_retries"],
                "frames_lost_in_failed_calls": figures["frames_lost"],
            },
        )
        client.close()
    beyond = {key: round(value - worst["baseline_s"], 2) for key, value in worst.items() if key != "baseline_s"}
    assert beyond["detector_s"] < MAX_LOST_S and beyond["router_s"] < MAX_LOST_S, (beyond, worst)
    assert beyond["camera_worker_s"] < WORKER_MAX_LOST_S, (beyond, worst)  # the camera came back by itself
    assert not failures["none"], failures  # no request fails while nothing is killed
    assert all(len(failures[name]) <= MAX_FAILED_PER_KILL for name in kills), failures
    assert all(probe.answered_after(at) for at in kills.values()), (kills, probe.calls[-5:])  # the API came back


def _probe_jpeg() -> bytes:
    from visionloop.simulation.clips import render_clip_jpegs

    return render_clip_jpegs(frames=1, width=320, height=180, seed=3)[0]
