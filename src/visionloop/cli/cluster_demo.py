"""``make cluster-demo``: the service across two Ray nodes, and what losing the inference node costs.

A head node (custom resource ``edge``: the cameras) and a worker node (``infer``: the Detector replicas) are started
with `ray start` on 127.0.0.1; `visionloop up`'s service joins them (``ray.address``). Simulated RTSP cameras
stream; the worker node's raylet is killed mid-stream, then the node is started again. The figures: where each actor
ran, the seconds each camera went without results, the frames lost, and what health said meanwhile.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.table import Table

from visionloop.cli.service import VisionloopService
from visionloop.core.contracts import FrameResult
from visionloop.core.placement import ActorPlace, actor_places
from visionloop.core.progress import working
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames

EDGE, INFER = "edge", "infer"
WATCHED_ACTORS = ("Detector", "CameraHost", "CameraWorker", "Router", "Workers")


@dataclass
class ClusterDemoReport:
    placement: list[ActorPlace] = field(default_factory=list)
    health_while_down: str = ""
    cameras_while_down: dict[str, str] = field(default_factory=dict)
    seconds_without_results: dict[str, float] = field(default_factory=dict)
    frames_lost: int = 0
    frames_skipped: int = 0  # by the cameras while their model calls waited: a live camera keeps its newest frame
    resumed: bool = False
    node_restart_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "placement": [{"actor": p.actor, "node": p.node_id[:8], "resources": list(p.node_resources)}
                          for p in self.placement],
            "health_while_down": self.health_while_down,
            "cameras_while_down": self.cameras_while_down,
            "seconds_without_results": self.seconds_without_results,
            "frames_lost": self.frames_lost,
            "frames_skipped": self.frames_skipped,
            "resumed": self.resumed,
            "node_restart_s": round(self.node_restart_s, 2),
        }  # fmt: skip


def cluster_settings(settings: Settings, address: str) -> Settings:
    """``settings`` joined to the cluster at ``address``, with the Detector on ``infer`` and the cameras on
    ``edge``; the parts this demo does not need are off so two nodes of one CPU each can hold it."""
    data = settings.model_dump(mode="python")
    data["ray"]["address"] = address
    data["serving"].update(replica_resources={INFER: 0.1}, num_cpus=0.5, replicas=1)
    data["cameras"]["worker_resources"] = {EDGE: 0.1}
    for section in ("labeling", "loop", "drift", "explain", "dashboard", "webrtc", "shadow"):
        data[section]["enabled"] = False
    return Settings.model_validate(data)


def _latest_results(client: redis.Redis, stream: str, since: float) -> dict[str, list[float]]:
    """Capture times of the results published since ``since``, per camera."""
    entries: list[tuple[bytes, dict[str | bytes, str | bytes]]] = client.xrange(  # type: ignore[assignment]
        stream, min=str(int(since * 1000))
    )
    per_camera: dict[str, list[float]] = {}
    for _, fields in entries:
        result = FrameResult.from_stream_fields(fields)
        per_camera.setdefault(result.camera_id, []).append(result.capture_ts)
    return per_camera


def longest_gaps(per_camera: dict[str, list[float]], start: float, end: float) -> dict[str, float]:
    """Per camera, the longest stretch of [start, end] with no result (the window's edges count)."""
    gaps = {}
    for camera, times in per_camera.items():
        edges = [start, *sorted(t for t in times if start <= t <= end), end]
        gaps[camera] = round(max(b - a for a, b in itertools.pairwise(edges)), 2)
    return gaps


class ClusterDemo:
    """Runs the service on a LocalRayCluster with simulated cameras, and kills and restores the inference node."""

    def __init__(self, settings: Settings, console: Console, work_dir: Path) -> None:
        self.settings = settings
        self.console = console
        self.work_dir = work_dir
        self.report = ClusterDemoReport()

    def run(self, stream_s: float, down_s: float, resume_timeout_s: float = 180.0) -> ClusterDemoReport:
        from visionloop.simulation.ray_cluster import LocalRayCluster
        from visionloop.simulation.rtsp_cameras import RtspSimulator, prepare_world_camera

        videos = [prepare_world_camera(f"cam{i}", "A", 60 + i, 4.0, 10, self.work_dir, 180, 320) for i in (1, 2)]
        with working(self.console, "Starting a head node (edge) and a worker node (infer) with `ray start`..."):
            cluster = LocalRayCluster(free_port_from(26379), {EDGE: 1.0}).start()
        saved = {key: os.environ.get(key) for key in cluster.auth_env}
        try:
            infer = cluster.add_worker("inference", {INFER: 1.0})
            os.environ.update(cluster.auth_env)  # this process joins the cluster as its driver
            settings = cluster_settings(self.settings, cluster.address)
            with RtspSimulator(videos, free_port_from(28554)) as simulator, VisionloopService(settings) as service:
                self._stream(service, simulator, cluster, infer, stream_s, down_s, resume_timeout_s)
        finally:
            cluster.stop()
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return self.report

    def _stream(
        self, service: VisionloopService, simulator: Any, cluster: Any, infer: Any, stream_s: float, down_s: float,
        resume_timeout_s: float,
    ) -> None:  # fmt: skip
        settings = service.settings
        auth = {"Authorization": f"Bearer {settings.api.token.get_secret_value()}"}
        api = httpx.Client(base_url=service.api_url, timeout=60)
        for name in ("cam1", "cam2"):
            spec = {"id": name, "url": simulator.url(name), "target_fps": 10}
            api.post("/v1/cameras", json=spec, headers=auth).raise_for_status()
        self._wait(lambda: all(c["frames_processed"] > 10 for c in api.get("/v1/cameras").json()), 90, "streaming")
        self.report.placement = [p for p in actor_places() if any(w in p.actor for w in WATCHED_ACTORS)]
        self.console.print(placement_table(self.report.placement))
        time.sleep(stream_s)
        client = redis.Redis.from_url(service.redis_url)
        stream = StreamNames(settings.redis.stream_prefix).results
        skipped_before = sum(int(c.get("frames_skipped", 0)) for c in api.get("/v1/cameras").json())
        killed_at = time.time()
        pid = cluster.kill_raylet(infer)
        self.console.print(f"killed the inference node's raylet (pid {pid}) and its processes")
        time.sleep(down_s)
        self.report.health_while_down = str(api.get("/v1/health", timeout=60).json().get("status"))
        self.report.cameras_while_down = {c["id"]: c["state"] for c in api.get("/v1/cameras").json()}
        restarted = time.monotonic()
        cluster.add_worker("inference", {INFER: 1.0})
        self.report.node_restart_s = time.monotonic() - restarted
        self.console.print("the inference node is back; waiting for the cameras' results to resume")
        self.report.resumed = self._wait(
            lambda: len(_latest_results(client, stream, time.time() - 2)) == 2, resume_timeout_s, "resumed"
        )
        end = time.time()
        self.report.seconds_without_results = longest_gaps(
            _latest_results(client, stream, killed_at - 5), killed_at, end
        )
        cameras = api.get("/v1/cameras").json()
        self.report.frames_lost = sum(int(c.get("frames_lost", 0)) for c in cameras)
        self.report.frames_skipped = sum(int(c.get("frames_skipped", 0)) for c in cameras) - skipped_before
        client.close()

    def _wait(self, condition: Any, timeout_s: float, what: str) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if condition():
                    return True
            except (httpx.HTTPError, redis.RedisError, KeyError, ValueError):
                pass
            time.sleep(0.5)
        self.console.print(f"[red]not {what} within {timeout_s:.0f} s[/]")
        return False


def free_port_from(port: int) -> int:
    """The first free loopback port at or above ``port``."""
    from visionloop.core.redis_server import port_is_free

    while not port_is_free(port):
        port += 1
    return port


def placement_table(places: list[ActorPlace]) -> Table:
    table = Table(title="where each actor runs")
    for column in ("actor", "node", "node resources", "pid"):
        table.add_column(column)
    for place in places:
        table.add_row(place.actor, place.node_id[:8], ",".join(place.node_resources) or "-", str(place.pid))
    return table


def report_table(report: ClusterDemoReport) -> Table:
    table = Table(title="losing the inference node mid-stream")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("health while the node was down", report.health_while_down)
    table.add_row(
        "camera states while it was down", ", ".join(f"{k}={v}" for k, v in report.cameras_while_down.items())
    )
    for camera, seconds in sorted(report.seconds_without_results.items()):
        table.add_row(f"{camera}: seconds without results", f"{seconds:.1f}")
    table.add_row("frames lost (model calls that failed)", str(report.frames_lost))
    table.add_row("frames skipped by the cameras meanwhile", str(report.frames_skipped))
    table.add_row("`ray start` of the returning node", f"{report.node_restart_s:.1f} s")
    table.add_row("results resumed", "yes" if report.resumed else "NO")
    return table
