"""The whole product as one Serve application: the Router and its Detectors, and the background workers.

``visionloop up`` and Serve's own tools (``serve run visionloop.cli.deploy:app``, a KubeRay RayService) both deploy
what :func:`build_product` returns, so a cluster labels, learns and watches drift as a laptop does, and a new
worker is added in one place.

The background workers (camera manager, WebRTC gateway, labeling, learning loop, drift monitor, explanations) are
Ray actors owned by the one replica of the ``Workers`` deployment, not Serve deployments of their own:

- they keep their names, by which the Router and the CLI find them;
- they are loops over Redis streams, not request handlers, so Serve's routing, autoscaling and handles add nothing;
- ownership gives the lifecycle: an owned actor dies with its owner, so deleting the application (or losing the
  replica's node) ends them all, and Serve then starts the replica again, which starts them again;
- a worker killed on its own is noticed by the replica's watchdog and started again, with backoff when it fails
  to start (Redis or Label Studio still away).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from visionloop.cli.plugins import frame_observer
from visionloop.core.errors import VisionloopError
from visionloop.core.frames import DetectorFrameSink, ResultTarget, ServeFrameSink
from visionloop.core.settings import Settings
from visionloop.core.streams import (
    CAMERA_MANAGER_ACTOR,
    DRIFT_MONITOR_ACTOR,
    EXPLAIN_WORKER_ACTOR,
    LABELING_WORKER_ACTOR,
    LOOP_WORKER_ACTOR,
    WEBRTC_GATEWAY_ACTOR,
    WORKERS_DEPLOYMENT,
)

log = logging.getLogger(__name__)

RETRY_MAX_S = 60.0
ALIVE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WorkerSpec:
    """One background worker: how to create its actor, start it, and ask it to wind down."""

    key: str
    actor_name: str
    create: Callable[[Settings, str], Any]  # the actor handle, not started yet
    start: Callable[[Any, Settings], Any]  # the start call's ObjectRef
    stop_method: str
    start_timeout_s: float
    stop_timeout_s: float


def _remote(cls: type, name: str, **options: Any) -> Any:
    import ray

    remote_class: Any = ray.remote(cls)
    return remote_class.options(name=name, **options)


def _camera_manager(settings: Settings, redis_url: str) -> Any:
    from visionloop.streaming.manager import manager_actor

    sink = DetectorFrameSink(ResultTarget.from_settings(settings, redis_url), tracking=settings.tracking)
    return manager_actor(settings, redis_url, sink)


def _webrtc_gateway(settings: Settings, redis_url: str) -> Any:
    from visionloop.streaming.webrtc.actor import GatewayActor

    return _remote(GatewayActor, WEBRTC_GATEWAY_ACTOR, num_cpus=0).remote()


def _labeling_worker(settings: Settings, redis_url: str) -> Any:
    from visionloop.core.model_setup import registry_for
    from visionloop.labeling.worker import LabelingWorker

    try:
        names = registry_for(settings).champion().class_names or list(settings.model.class_names)
    except VisionloopError:
        names = list(settings.model.class_names)
    return _remote(LabelingWorker, LABELING_WORKER_ACTOR, num_cpus=0, max_concurrency=4).remote(
        settings, redis_url, names
    )


def _loop_worker(settings: Settings, redis_url: str) -> Any:
    from visionloop.learning.loop import LoopWorker

    return _remote(LoopWorker, LOOP_WORKER_ACTOR, num_cpus=0, max_concurrency=4).remote(settings, redis_url)


def _drift_monitor(settings: Settings, redis_url: str) -> Any:
    """Also evaluates accuracy and the alert conditions."""
    from visionloop.monitoring.drift_monitor import DriftMonitor

    return _remote(DriftMonitor, DRIFT_MONITOR_ACTOR, num_cpus=0, max_concurrency=4).remote(
        settings, redis_url, watch_accuracy_and_alerts=True
    )


def _explain_worker(settings: Settings, redis_url: str) -> Any:
    from visionloop.explaining.worker import ExplainWorker

    options = {"num_cpus": settings.explain.num_cpus, "max_concurrency": 4}
    return _remote(ExplainWorker, EXPLAIN_WORKER_ACTOR, **options).remote(settings, redis_url)


def _call(method: str, *args: Any) -> Callable[[Any, Settings], Any]:
    return lambda actor, settings: getattr(actor, method).remote(*args)


def background_workers(settings: Settings) -> list[WorkerSpec]:
    """The workers these settings switch on, in start order (cameras first: they feed everything else)."""
    specs = [WorkerSpec("cameras", CAMERA_MANAGER_ACTOR, _camera_manager, _call("resume"), "stop_all", 120, 60)]
    if settings.webrtc.enabled:
        start_gateway: Callable[[Any, Settings], Any] = lambda actor, s: actor.start.remote(s, ServeFrameSink())  # noqa: E731
        specs.append(WorkerSpec("webrtc", WEBRTC_GATEWAY_ACTOR, _webrtc_gateway, start_gateway, "stop", 60, 30))
    if settings.labeling.enabled:
        specs.append(WorkerSpec("labeling", LABELING_WORKER_ACTOR, _labeling_worker, _call("start"), "stop", 600, 60))
    if settings.loop.enabled:
        specs.append(WorkerSpec("loop", LOOP_WORKER_ACTOR, _loop_worker, _call("start"), "stop", 60, 30))
    if settings.drift.enabled:
        specs.append(WorkerSpec("drift", DRIFT_MONITOR_ACTOR, _drift_monitor, _call("start"), "stop", 60, 30))
    if settings.explain.enabled:
        specs.append(WorkerSpec("explain", EXPLAIN_WORKER_ACTOR, _explain_worker, _call("start"), "stop", 60, 30))
    return specs


@dataclass
class Supervised:
    """A worker's actor and its record: starts, restarts, the last failure, when to try again."""

    spec: WorkerSpec
    actor: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    starts: int = 0
    restarts: int = 0
    failures: int = 0
    last_error: str | None = None
    next_try: float = 0.0

    def report(self) -> dict[str, Any]:
        return {
            "actor": self.spec.actor_name,
            "running": self.actor is not None,
            "starts": self.starts,
            "restarts": self.restarts,
            "last_error": self.last_error,
            **self.info,
        }


class Workers:
    """Starts the background workers, starts again any that dies, stops them all with the application."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self._settings = settings
        self._redis_url = redis_url
        self._check_every_s = settings.ray.workers_check_s
        self._workers = [Supervised(spec) for spec in background_workers(settings)]
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # one start or stop at a time: the watchdog's and stop()'s
        for worker in self._workers:  # one try each now; the watchdog retries what failed
            self._start(worker)
        self._watchdog = threading.Thread(target=self._watch, name="visionloop-workers-watchdog", daemon=True)
        self._watchdog.start()

    def _start(self, worker: Supervised) -> None:
        import ray

        spec, actor = worker.spec, None
        try:
            actor = spec.create(self._settings, self._redis_url)
            started = ray.get(spec.start(actor, self._settings), timeout=spec.start_timeout_s)
        except Exception as exc:  # a worker that cannot start yet must not take the others down
            if actor is not None:
                ray.kill(actor)
            worker.failures += 1
            wait_s = min(RETRY_MAX_S, 2.0**worker.failures)
            worker.last_error, worker.next_try = f"{type(exc).__name__}: {exc}", time.monotonic() + wait_s
            log.error("the %s worker did not start (%s); trying again in %.0f s", spec.key, worker.last_error, wait_s)
            return
        worker.actor, worker.failures, worker.last_error = actor, 0, None
        worker.info = started if isinstance(started, dict) else {"url": started} if started else {}
        worker.starts += 1

    @staticmethod
    def _alive(worker: Supervised) -> bool:
        import ray
        import ray.exceptions

        try:
            # Without task events: Ray's GCS keeps every call's events (up to 100,000 calls, ~3 KB each), and six
            # workers checked every 2 s made it grow by 0.7 MB a minute for hours.
            ping = worker.actor.__ray_ready__.options(enable_task_events=False)
            ray.get(ping.remote(), timeout=ALIVE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            return True  # busy, not gone
        except ray.exceptions.RayActorError:
            return False
        return True

    def _watch(self) -> None:
        while not self._stopping.wait(self._check_every_s):
            for worker in self._workers:
                with self._lock:
                    if self._stopping.is_set():
                        return
                    if worker.actor is not None and self._alive(worker):
                        continue
                    if worker.actor is not None:
                        log.warning("the %s worker is gone; starting it again", worker.spec.key)
                        worker.actor, worker.info = None, {}
                        worker.restarts += 1
                    if time.monotonic() >= worker.next_try:
                        self._start(worker)

    def status(self) -> dict[str, dict[str, Any]]:
        """Each worker's record, by key ('cameras', 'labeling', ...)."""
        return {worker.spec.key: worker.report() for worker in self._workers}

    def stop(self) -> None:
        """Ask each worker to wind down (last started, first stopped), then end it; failures are logged."""
        import ray

        self._stopping.set()
        with self._lock:
            for worker in reversed(self._workers):
                actor, worker.actor = worker.actor, None
                if actor is None:
                    continue
                try:
                    ray.get(getattr(actor, worker.spec.stop_method).remote(), timeout=worker.spec.stop_timeout_s)
                except Exception as exc:  # shutting down anyway; say what went wrong
                    log.error("stopping the %s worker failed: %s", worker.spec.key, exc)
                ray.kill(actor)

    def check_health(self) -> None:
        """Serve's health check: the watchdog must be alive, or nothing brings a dead worker back."""
        if not self._stopping.is_set() and not self._watchdog.is_alive():
            raise VisionloopError("the workers' watchdog thread ended")

    def __del__(self) -> None:  # Serve calls it when the application is deleted or the replica is replaced
        if not getattr(self, "_stopping", threading.Event()).is_set() and hasattr(self, "_workers"):
            self.stop()


def workers_deployment(settings: Settings, redis_url: str) -> Any:
    """The bound ``Workers`` deployment: one replica, no CPU of its own (its workers reserve theirs), on the
    cameras' nodes (``cameras.worker_resources``): the camera manager it owns dies with it, so it must live and
    die with the cameras, not with a node the model runs on."""
    from ray import serve

    deployment: Any = serve.deployment(Workers)
    return deployment.options(
        name=WORKERS_DEPLOYMENT,
        num_replicas=1,
        max_ongoing_requests=8,
        graceful_shutdown_timeout_s=120,  # Label Studio's stop included
        ray_actor_options={"num_cpus": 0, "resources": dict(settings.cameras.worker_resources)},
    ).bind(settings, redis_url)


def build_product(settings: Settings, redis_url: str) -> Any:
    """The whole product as one bound application: the Serve app (Router, Detectors) with the workers in it."""
    from visionloop.serving.app import build_app

    return build_app(
        settings, redis_url, frame_observer(settings), companions=(workers_deployment(settings, redis_url),)
    )


def workers_status(timeout_s: float = 30.0) -> dict[str, dict[str, Any]]:
    """The running application's workers, each with its record (for ``visionloop up`` and the tests)."""
    from ray import serve

    from visionloop.core.streams import SERVE_APP_NAME

    handle = serve.get_deployment_handle(WORKERS_DEPLOYMENT, app_name=SERVE_APP_NAME)
    result: dict[str, dict[str, Any]] = handle.status.remote().result(timeout_s=timeout_s)
    return result


def stop_workers(timeout_s: float = 300.0) -> None:
    """Stop the running application's workers in order, before Serve itself is shut down."""
    from ray import serve

    from visionloop.core.streams import SERVE_APP_NAME

    handle = serve.get_deployment_handle(WORKERS_DEPLOYMENT, app_name=SERVE_APP_NAME)
    handle.stop.remote().result(timeout_s=timeout_s)
