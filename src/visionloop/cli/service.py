"""Run the whole service in one process tree: Redis (when embedded), Ray, the Serve app."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import redis

from visionloop.cli.plugins import frame_observer
from visionloop.core.errors import VisionloopError
from visionloop.core.exposure import check_exposure
from visionloop.core.frames import DetectorFrameSink, ResultTarget, ServeFrameSink
from visionloop.core.ray_runtime import init_ray, shutdown_ray
from visionloop.core.redaction import redact
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.settings import Settings
from visionloop.core.streams import (
    DRIFT_MONITOR_ACTOR,
    EXPLAIN_WORKER_ACTOR,
    LABELING_WORKER_ACTOR,
    LOOP_WORKER_ACTOR,
    WEBRTC_GATEWAY_ACTOR,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str


def redis_reachable(url: str, timeout_s: float = 2.0) -> str | None:
    """None when Redis answers PING, else the reason it does not."""
    client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


class VisionloopService:
    """Starts the parts in order and stops them in reverse; a context manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis: EmbeddedRedis | None = None
        self.redis_url = settings.redis.url or ""
        self.redis_problem: str | None = None
        self.endpoints: list[Endpoint] = []
        self.camera_manager: Any = None
        self.webrtc_gateway: Any = None
        self.webrtc_url: str | None = None
        self.labeling_worker: Any = None
        self.loop_worker: Any = None
        self.drift_monitor: Any = None
        self.explain_worker: Any = None
        self.dashboard: Any = None
        self.dashboard_url: str | None = None
        self.label_studio_url: str | None = None
        self._ray_started = False

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api.host}:{self.settings.api.port}"

    def start(self) -> VisionloopService:
        check_exposure(self.settings)  # before anything listens
        try:
            self._start_redis()
            init_ray(self.settings)
            self._ray_started = True
            from visionloop.serving.app import start_serving

            start_serving(self.settings, self.redis_url, frame_observer(self.settings))
            self._wait_healthy()
            self._deliver_pending_events()
            self._start_cameras()
            self._start_webrtc()
            self._start_labeling()
            self._start_loop()
            self._start_monitoring()
            self._start_dashboard()
            self._check_training_fits()
        except BaseException:
            self.stop()
            raise
        self.endpoints = [
            Endpoint("HTTP API", self.api_url),
            Endpoint("OpenAPI docs", f"{self.api_url}/docs"),
            Endpoint("Prometheus metrics", f"{self.api_url}/metrics"),
            Endpoint("Redis", redact(self.redis_url)),
        ]
        if self.webrtc_url:
            self.endpoints.append(Endpoint("Browser camera page", self.webrtc_url))
        if self.label_studio_url:
            self.endpoints.append(Endpoint("Label Studio", self.label_studio_url))
        if self.dashboard_url:
            self.endpoints.append(Endpoint("Dashboard", self.dashboard_url))
        return self

    def _start_cameras(self) -> None:
        if self.redis_problem:
            log.error("camera list lives in Redis, which is unreachable: cameras not started")
            return
        from visionloop.streaming.manager import start_manager

        self.camera_manager = start_manager(
            self.settings,
            self.redis_url,
            DetectorFrameSink(
                ResultTarget.from_settings(self.settings, self.redis_url), tracking=self.settings.tracking
            ),
        )

    def _start_webrtc(self) -> None:
        if not self.settings.webrtc.enabled:
            return
        import ray

        from visionloop.streaming.webrtc.actor import GatewayActor

        remote_class: Any = ray.remote(GatewayActor)
        self.webrtc_gateway = remote_class.options(name=WEBRTC_GATEWAY_ACTOR, num_cpus=0).remote()
        self.webrtc_url = ray.get(self.webrtc_gateway.start.remote(self.settings, ServeFrameSink()), timeout=60)

    @staticmethod
    def _stop_actor(actor: Any, method: str, timeout_s: float, what: str) -> None:
        """Ask an actor to wind down, then end it; a failure is logged, the shutdown goes on."""
        if actor is None:
            return
        import ray

        try:
            ray.get(getattr(actor, method).remote(), timeout=timeout_s)
        except Exception as exc:  # shutting down anyway; say what went wrong
            log.error("stopping the %s failed: %s", what, exc)
        ray.kill(actor)

    def _start_labeling(self) -> None:
        if not self.settings.labeling.enabled or self.redis_problem:
            return
        import ray

        from visionloop.core.model_setup import registry_for
        from visionloop.labeling.worker import LabelingWorker

        try:
            names = registry_for(self.settings).champion().class_names or list(self.settings.model.class_names)
        except VisionloopError:
            names = list(self.settings.model.class_names)
        remote_class: Any = ray.remote(LabelingWorker)
        self.labeling_worker = remote_class.options(name=LABELING_WORKER_ACTOR, num_cpus=0, max_concurrency=4).remote(
            self.settings, self.redis_url, names
        )
        started = ray.get(self.labeling_worker.start.remote(), timeout=600)
        self.label_studio_url = started["label_studio"]

    def _start_loop(self) -> None:
        """The learning loop's worker: reacts to new data set versions (it needs Redis for the events stream)."""
        if not self.settings.loop.enabled or self.redis_problem:
            return
        import ray

        from visionloop.learning.loop import LoopWorker

        remote_class: Any = ray.remote(LoopWorker)
        self.loop_worker = remote_class.options(name=LOOP_WORKER_ACTOR, num_cpus=0, max_concurrency=4).remote(
            self.settings, self.redis_url
        )
        ray.get(self.loop_worker.start.remote(), timeout=60)

    def _start_monitoring(self) -> None:
        """The drift monitor (which also evaluates accuracy and the alert conditions) and the explanation worker:
        both read Redis streams the Router's observers fill."""
        if self.redis_problem:
            return
        import ray

        if self.settings.drift.enabled:
            from visionloop.monitoring.drift_monitor import DriftMonitor

            monitor: Any = ray.remote(DriftMonitor)
            self.drift_monitor = monitor.options(name=DRIFT_MONITOR_ACTOR, num_cpus=0, max_concurrency=4).remote(
                self.settings, self.redis_url, watch_accuracy_and_alerts=True
            )
            ray.get(self.drift_monitor.start.remote(), timeout=60)
        if self.settings.explain.enabled:
            from visionloop.explaining.worker import ExplainWorker

            worker: Any = ray.remote(ExplainWorker)
            self.explain_worker = worker.options(
                name=EXPLAIN_WORKER_ACTOR, num_cpus=self.settings.explain.num_cpus, max_concurrency=4
            ).remote(self.settings, self.redis_url)
            ray.get(self.explain_worker.start.remote(), timeout=60)

    def _check_training_fits(self) -> None:
        """Say so at start when what the service reserved leaves too few CPUs for a fine-tuning task: it would wait
        for ever (Ray queues a task until its resources are free)."""
        if not self.settings.loop.enabled:
            return
        import ray

        free = float(ray.available_resources().get("CPU", 0.0))  # type: ignore[no-untyped-call]
        needed = self.settings.training.num_cpus
        if free < needed:
            log.warning(
                "only %.2f CPUs are left unreserved but a fine-tuning task asks for training.num_cpus=%.2f: the loop's "
                "challengers would wait; lower a reservation (serving.num_cpus, shadow.num_cpus, explain.num_cpus, "
                "cameras.worker_num_cpus) or training.num_cpus",
                free,
                needed,
            )

    def _start_dashboard(self) -> None:
        if not self.settings.dashboard.enabled:
            return
        from visionloop.cli.dashboard import start_dashboard

        self.dashboard, self.dashboard_url = start_dashboard(self.settings, self.redis_url)

    def _stop_monitoring(self) -> None:
        monitor, self.drift_monitor = self.drift_monitor, None
        self._stop_actor(monitor, "stop", 30, "drift monitor")
        worker, self.explain_worker = self.explain_worker, None
        self._stop_actor(worker, "stop", 30, "explanation worker")

    def _stop_dashboard(self) -> None:
        process, self.dashboard = self.dashboard, None
        if process is not None:
            from visionloop.cli.dashboard import stop_dashboard

            stop_dashboard(process)

    def _stop_loop(self) -> None:
        worker, self.loop_worker = self.loop_worker, None
        self._stop_actor(worker, "stop", 30, "learning loop")

    def _stop_labeling(self) -> None:
        worker, self.labeling_worker = self.labeling_worker, None
        self._stop_actor(worker, "stop", 60, "labeling worker")

    def _stop_webrtc(self) -> None:
        gateway, self.webrtc_gateway = self.webrtc_gateway, None
        self._stop_actor(gateway, "stop", 30, "WebRTC gateway")

    def _stop_cameras(self) -> None:
        manager, self.camera_manager = self.camera_manager, None
        self._stop_actor(manager, "stop_all", 60, "cameras")

    def _deliver_pending_events(self) -> None:
        from visionloop.core.events import EventLog
        from visionloop.core.streams import StreamNames

        pending = self.settings.var.events_pending
        delivered = EventLog(self.redis_url, StreamNames(self.settings.redis.stream_prefix), pending).flush_pending()
        if delivered:
            log.info("delivered %d events recorded while Redis was away", delivered)

    def _start_redis(self) -> None:
        if self.settings.redis.url is None:
            data_dir = self.settings.var.redis
            self.redis = EmbeddedRedis(self.settings.redis.embedded_port, data_dir).start()
            self.redis_url = self.redis.url
            return
        self.redis_problem = redis_reachable(self.redis_url, self.settings.redis.socket_timeout_s)
        if self.redis_problem:
            log.error(
                "Redis at %s is unreachable (%s): results will be buffered in memory (up to %d) until it is back",
                redact(self.redis_url),
                self.redis_problem,
                self.settings.redis.result_buffer_size,
            )

    def _wait_healthy(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.api_url}/v1/health", timeout=10.0)
                if response.status_code == 200 and "version" in response.json().get("model", {}):
                    return
                last = response.text
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.5)
        raise VisionloopError(f"the API at {self.api_url} did not become healthy in {timeout_s:.0f} s: {last}")

    def stop(self) -> None:
        self._stop_dashboard()
        if self._ray_started:
            self._stop_monitoring()
            self._stop_loop()
            self._stop_labeling()
            self._stop_webrtc()
            self._stop_cameras()
            shutdown_ray()
            self._ray_started = False
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def __enter__(self) -> VisionloopService:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
