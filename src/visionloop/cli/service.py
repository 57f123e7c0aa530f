"""Run the whole service in one process tree: Redis (when embedded), Ray, the product's Serve application (the
same composition a cluster deploys: :mod:`visionloop.cli.composition`), the dashboard."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx
import redis

from visionloop.cli.composition import build_product, stop_workers, workers_status
from visionloop.core.errors import VisionloopError
from visionloop.core.exposure import check_exposure
from visionloop.core.ray_runtime import init_ray, shutdown_ray
from visionloop.core.redaction import redact
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.settings import Settings

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
        self.webrtc_url: str | None = None
        self.dashboard: Any = None
        self.dashboard_url: str | None = None
        self.label_studio_url: str | None = None
        self._ray_started = False
        self._serving = False

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

            start_serving(self.settings, build_product(self.settings, self.redis_url))
            self._serving = True
            self._wait_healthy()
            self._deliver_pending_events()
            self._report_workers()
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

    def _report_workers(self) -> None:
        """Read the URLs the workers serve (browser cameras, Label Studio) and say which did not start: the
        watchdog keeps trying those (Redis or Label Studio still away)."""
        workers = workers_status()
        for key, worker in workers.items():
            if not worker["running"]:
                log.error("the %s worker did not start: %s (retrying in the background)", key, worker["last_error"])
        self.webrtc_url = workers.get("webrtc", {}).get("url")
        self.label_studio_url = workers.get("labeling", {}).get("label_studio")

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

    def _stop_dashboard(self) -> None:
        process, self.dashboard = self.dashboard, None
        if process is not None:
            from visionloop.cli.dashboard import stop_dashboard

            stop_dashboard(process)

    def _stop_workers(self) -> None:
        """Wind the workers down in order while Serve still runs (Label Studio stops cleanly, cameras close)."""
        if not self._serving:
            return
        self._serving = False
        try:
            stop_workers()
        except Exception as exc:  # shutting down anyway; Serve's shutdown ends the actors it owns
            log.error("stopping the background workers failed: %s", exc)

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
            self._stop_workers()
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
