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

from visionloop.core.cameras import (
    CameraExists,
    CameraLimitReached,
    CameraNotFound,
    CameraSpec,
    CameraUrlRefused,
    check_camera_url,
    load_camera_file,
)
from visionloop.core.frames import FrameSink
from visionloop.core.redaction import redact
from visionloop.core.settings import Settings
from visionloop.core.streams import (
    CAMERA_MANAGER_ACTOR,
    StreamNames,
    camera_host_actor,
    camera_worker_actor,
    event_fields,
)
from visionloop.streaming.worker import CameraWorker

log = logging.getLogger(__name__)
SEEDED_FLAG = "seeded"


class CameraManager:
    """Add, remove, list and inspect cameras at runtime (wrapped with ``ray.remote`` by :func:`manager_actor`)."""

    def __init__(self, settings: Settings, redis_url: str, sink: FrameSink) -> None:
        self._settings = settings
        self._streams = StreamNames(settings.redis.stream_prefix)
        self._redis = redis.Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=settings.redis.socket_timeout_s
        )
        self._redis_url = redis_url
        self._sink = sink
        self._workers: dict[str, Any] = {}  # camera -> its own worker (cameras_per_process 1)
        self._placed: dict[str, str] = {}  # camera -> the host running it (cameras_per_process > 1)
        self._hosts: dict[str, Any] = {}  # host id -> the host actor
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
        self._redis.delete(self._streams.camera_hosts)  # no host runs yet: placements start over
        configured = {spec.id: spec.url for spec in load_camera_file(self._settings.cameras_file())}
        for camera_id, raw in sorted(stored.items()):
            try:
                spec = CameraSpec(**json.loads(raw))
                check_camera_url(spec.url, self._settings.cameras.allow_files or configured.get(spec.id) == spec.url)
                self._start(spec)
            except CameraUrlRefused as exc:  # stored before this check existed: it would fail at every start
                self._redis.hdel(self._streams.cameras, camera_id)
                log.error("camera %s was removed from the camera list, it can never start: %s", camera_id, exc)
                self._event("camera_removed", camera_id=camera_id, reason=str(exc))
                continue
            except (ValueError, TypeError) as exc:
                log.error("camera %s in Redis is invalid and was not started: %s", camera_id, exc)
        return sorted(self._camera_ids())

    def _camera_ids(self) -> list[str]:
        return [*self._workers, *self._placed]

    def _start(self, spec: CameraSpec) -> None:
        import ray

        if self._settings.cameras.cameras_per_process > 1:
            self._place(spec)
            return
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

    def _place(self, spec: CameraSpec) -> None:
        """Run the camera on the first host with room (a new host when all are full): fewer, fuller processes
        gather more frames per model call."""
        import ray

        host_id = self._host_with_room()
        self._redis.hset(self._streams.camera_hosts, spec.id, host_id)
        ray.get(self._hosts[host_id].add.remote(spec.model_dump()), timeout=60)
        self._placed[spec.id] = host_id
        self._specs[spec.id] = spec

    def _host_with_room(self) -> str:
        import ray

        from visionloop.streaming.host import CameraHost

        per_process = self._settings.cameras.cameras_per_process
        for host_id in sorted(self._hosts, key=lambda h: int(h.rsplit("-", 1)[1])):
            if sum(1 for h in self._placed.values() if h == host_id) < per_process:
                return host_id
        number = next(n for n in range(len(self._hosts) + 1) if camera_host_actor(n) not in self._hosts)
        host_id = camera_host_actor(number)
        self._hosts[host_id] = (
            ray.remote(CameraHost)
            .options(  # type: ignore[attr-defined]
                name=host_id,
                num_cpus=self._settings.cameras.worker_num_cpus,
                resources=dict(self._settings.cameras.worker_resources),
                max_concurrency=8,
                max_restarts=-1,  # restarted by Ray after a crash; it resumes its cameras from Redis
            )
            .remote(host_id, self._settings, self._redis_url, self._sink, self._self_handle())
        )
        return host_id

    def _status_ref(self, camera_id: str) -> Any:
        if camera_id in self._placed:
            return self._hosts[self._placed[camera_id]].status.remote(camera_id)
        return self._workers[camera_id].status.remote()

    def _self_handle(self) -> Any:
        import ray

        return ray.get_runtime_context().current_actor

    def stop_all(self) -> int:
        import ray

        stopping = [worker.stop.remote() for worker in [*self._workers.values(), *self._hosts.values()]]
        ray.get(stopping, timeout=30)
        for worker in [*self._workers.values(), *self._hosts.values()]:
            ray.kill(worker)
        count = len(self._camera_ids())
        self._workers.clear()
        self._placed.clear()
        self._hosts.clear()
        return count

    # -- the API -----------------------------------------------------------------------------------------------

    def add(self, spec_data: dict[str, Any]) -> dict[str, Any]:
        spec = CameraSpec(**spec_data)
        check_camera_url(spec.url, self._settings.cameras.allow_files)
        with self._lock:
            if spec.id in self._camera_ids():
                raise CameraExists(f"camera '{spec.id}' already exists; remove it first to change it")
            limit = self._settings.cameras.max_cameras
            if len(self._camera_ids()) >= limit:
                raise CameraLimitReached(f"{limit} cameras already run (cameras.max_cameras); remove one first")
            self._redis.hset(self._streams.cameras, spec.id, spec.model_dump_json())
            self._start(spec)
        self._event("camera_added", camera_id=spec.id, url=spec.redacted_url())
        return spec.public()

    def remove(self, camera_id: str) -> dict[str, Any]:
        import ray

        with self._lock:
            worker = self._workers.pop(camera_id, None)
            host_id = self._placed.pop(camera_id, None)
        if worker is None and host_id is None:
            raise CameraNotFound(f"no camera '{camera_id}'")
        if worker is not None:
            final = ray.get(worker.stop.remote(), timeout=30)
            ray.kill(worker)
        else:
            assert host_id is not None
            final = ray.get(self._hosts[host_id].remove.remote(camera_id), timeout=30)
            self._redis.hdel(self._streams.camera_hosts, camera_id)
            self._let_go_if_empty(host_id)
        self._specs.pop(camera_id, None)
        self._redis.hdel(self._streams.cameras, camera_id)
        self._event("camera_removed", camera_id=camera_id)
        return dict(final)

    def _let_go_if_empty(self, host_id: str) -> None:
        """End a host whose last camera went (a process kept for nothing costs memory and idle CPU)."""
        import ray

        with self._lock:
            if host_id in self._placed.values() or host_id not in self._hosts:
                return
            host = self._hosts.pop(host_id)
        ray.get(host.stop.remote(), timeout=30)
        ray.kill(host)

    def status(self, camera_id: str) -> dict[str, Any]:
        import ray

        if camera_id not in self._camera_ids():
            raise CameraNotFound(f"no camera '{camera_id}'")
        return dict(ray.get(self._status_ref(camera_id), timeout=10))

    def list(self) -> list[dict[str, Any]]:
        """Every camera's status; a worker that does not answer is listed as such, not hidden."""
        import ray

        ids = sorted(self._camera_ids())
        refs = {camera_id: self._status_ref(camera_id) for camera_id in ids}
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


def manager_actor(settings: Settings, redis_url: str, sink: FrameSink) -> Any:
    """Create the manager actor (named, so the API finds it); :meth:`CameraManager.resume` then starts the cameras."""
    import ray

    remote_class: Any = ray.remote(CameraManager)
    return remote_class.options(  # on the cameras' nodes: it lives and dies with them, not with the model's
        name=CAMERA_MANAGER_ACTOR,
        num_cpus=0,
        max_concurrency=8,
        resources=dict(settings.cameras.worker_resources),
    ).remote(settings, redis_url, sink)
