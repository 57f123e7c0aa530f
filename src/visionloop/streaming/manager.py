"""The camera manager: one Ray actor that owns the camera workers and keeps the camera list in Redis.

Because the list lives in Redis, a restarted service resumes the same cameras; ``configs/cameras.yaml`` only
seeds an empty list. Camera state changes go to the events stream (the audit log).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import redis

from visionloop.core.cameras import CameraExists, CameraLimitReached, CameraNotFound, CameraSpec, load_camera_file
from visionloop.core.frames import FrameSink
from visionloop.core.redaction import redact
from visionloop.core.settings import Settings
from visionloop.core.streams import CAMERA_MANAGER_ACTOR, StreamNames, camera_worker_actor, event_fields
from visionloop.streaming.worker import CameraWorker

log = logging.getLogger(__name__)
SEEDED_FLAG = "seeded"


class CameraManager:
    """Add, remove, list and inspect cameras at runtime (wrapped with ``ray.remote`` by :func:`start_manager`)."""

    def __init__(self, settings: Settings, redis_url: str, sink: FrameSink) -> None:
        self._settings = settings
        self._streams = StreamNames(settings.redis.stream_prefix)
        self._redis = redis.Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=settings.redis.socket_timeout_s
        )
        self._sink = sink
        self._workers: dict[str, Any] = {}
        self._specs: dict[str, CameraSpec] = {}
        self._lock = threading.Lock()  # the actor serves calls from several threads

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def resume(self) -> list[str]:
        """Start every camera of the stored list (seeding it from the config file the first time)."""
        stored = self._redis.hgetall(self._streams.cameras)
        if not stored and not self._redis.hget(self._streams.cameras_meta, SEEDED_FLAG):
            for spec in load_camera_file(self._settings.cameras_file()):
                self._redis.hset(self._streams.cameras, spec.id, spec.model_dump_json())
            self._redis.hset(self._streams.cameras_meta, SEEDED_FLAG, "1")
            stored = self._redis.hgetall(self._streams.cameras)
        for camera_id, raw in sorted(stored.items()):
            try:
                self._start(CameraSpec(**json.loads(raw)))
            except (ValueError, TypeError) as exc:
                log.error("camera %s in Redis is invalid and was not started: %s", camera_id, exc)
        return sorted(self._workers)

    def _start(self, spec: CameraSpec) -> None:
        import ray

        worker = (
            ray.remote(CameraWorker)
            .options(  # type: ignore[attr-defined]
                name=camera_worker_actor(spec.id),
                num_cpus=self._settings.cameras.worker_num_cpus,
                resources=dict(self._settings.cameras.worker_resources),
                max_concurrency=4,
                # A worker process that dies (a crash, an OOM kill) is started again by Ray with the same spec, so
                # the camera comes back without the manager's help; remove() ends it for good (no_restart).
                max_restarts=-1,
            )
            .remote(spec.model_dump(), self._settings.cameras.model_dump(mode="json"), self._sink, self._self_handle())
        )
        self._workers[spec.id] = worker
        self._specs[spec.id] = spec

    def _self_handle(self) -> Any:
        import ray

        return ray.get_runtime_context().current_actor

    def stop_all(self) -> int:
        import ray

        stopping = [worker.stop.remote() for worker in self._workers.values()]
        ray.get(stopping, timeout=30)
        for worker in self._workers.values():
            ray.kill(worker)
        count = len(self._workers)
        self._workers.clear()
        return count

    # -- the API -----------------------------------------------------------------------------------------------

    def add(self, spec_data: dict[str, Any]) -> dict[str, Any]:
        spec = CameraSpec(**spec_data)
        with self._lock:
            if spec.id in self._workers:
                raise CameraExists(f"camera '{spec.id}' already exists; remove it first to change it")
            limit = self._settings.cameras.max_cameras
            if len(self._workers) >= limit:
                raise CameraLimitReached(f"{limit} cameras already run (cameras.max_cameras); remove one first")
            self._redis.hset(self._streams.cameras, spec.id, spec.model_dump_json())
            self._start(spec)
        self._event("camera_added", camera_id=spec.id, url=spec.redacted_url())
        return spec.public()

    def remove(self, camera_id: str) -> dict[str, Any]:
        import ray

        with self._lock:
            worker = self._workers.pop(camera_id, None)
        if worker is None:
            raise CameraNotFound(f"no camera '{camera_id}'")
        final = ray.get(worker.stop.remote(), timeout=30)
        ray.kill(worker)
        self._specs.pop(camera_id, None)
        self._redis.hdel(self._streams.cameras, camera_id)
        self._event("camera_removed", camera_id=camera_id)
        return dict(final)

    def status(self, camera_id: str) -> dict[str, Any]:
        import ray

        worker = self._workers.get(camera_id)
        if worker is None:
            raise CameraNotFound(f"no camera '{camera_id}'")
        return dict(ray.get(worker.status.remote(), timeout=10))

    def list(self) -> list[dict[str, Any]]:
        """Every camera's status; a worker that does not answer is listed as such, not hidden."""
        import ray

        ids = sorted(self._workers)
        refs = {camera_id: self._workers[camera_id].status.remote() for camera_id in ids}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=10)
        out = []
        for camera_id, ref in refs.items():
            try:
                if ref not in ready:
                    raise TimeoutError("its worker did not answer within 10 s (still starting, or overloaded)")
                out.append(dict(ray.get(ref)))
            except Exception as exc:  # report the camera with the reason instead of failing the whole list
                spec = self._specs[camera_id]
                out.append(
                    {
                        "id": camera_id,
                        "url": spec.redacted_url(),
                        "state": "unavailable",
                        "frames_in": 0,
                        "frames_processed": 0,
                        "frames_skipped": 0,
                        "frames_gated": 0,
                        "reconnects": 0,
                        "last_error": redact(f"{type(exc).__name__}: {exc}"),
                        "state_reason": redact(f"{type(exc).__name__}: {exc}"),
                        "alive": False,
                    }
                )
        return out

    def camera_state(self, camera_id: str, old: str, new: str, reason: str) -> None:
        self._event("camera_state", camera_id=camera_id, old=old, new=new, reason=reason)

    def _event(self, kind: str, **payload: Any) -> None:
        try:
            self._redis.xadd(self._streams.events, event_fields(kind, **payload))  # type: ignore[arg-type]
        except redis.RedisError as exc:
            log.error("could not record event %s: %s", kind, exc)


def start_manager(settings: Settings, redis_url: str, sink: FrameSink) -> Any:
    """Create the manager actor and resume the stored cameras; returns its handle."""
    import ray

    remote_class: Any = ray.remote(CameraManager)
    actor: Any = remote_class.options(  # on the cameras' nodes: it lives and dies with them, not with the model's
        name=CAMERA_MANAGER_ACTOR,
        num_cpus=0,
        max_concurrency=8,
        resources=dict(settings.cameras.worker_resources),
    ).remote(settings, redis_url, sink)
    ray.get(actor.resume.remote(), timeout=120)
    return actor
