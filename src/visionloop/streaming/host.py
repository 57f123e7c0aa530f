"""A camera host: one Ray actor (one process) running several cameras, their frames gathered into shared calls.

With ``cameras.cameras_per_process`` > 1 the manager places cameras on hosts instead of giving each its own worker.
Each camera keeps its own capture and sender threads (``CameraRuntime``, as in a worker); their sends meet in one
``BatchingFrameSink``, so the Detector gets one call per gathered batch instead of one per frame, and the process
pays one Ray hop, one result publisher and one observer forwarder for all its cameras.

Which cameras a host runs is kept in Redis (camera -> host): Ray restarts a crashed host with the arguments it was
created with, and the host then resumes its cameras from there, as a worker resumes its one camera.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any

import redis

from visionloop.core.cameras import CameraNotFound, CameraSpec
from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.frames import FrameSink
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.streaming.batching import BatchingFrameSink
from visionloop.streaming.governor import FreshnessGovernor
from visionloop.streaming.worker import CameraReporter, CameraRuntime

log = logging.getLogger(__name__)


class CameraHost:
    """The Ray actor (created with ``ray.remote`` by the manager) running the cameras placed on it."""

    def __init__(self, host_id: str, settings: Settings, redis_url: str, sink: FrameSink, events: Any = None) -> None:
        cameras = settings.cameras
        # Many threads share this process's GIL (each camera's capture and sender, the gathering, the publisher);
        # Python's default 5 ms hand-off adds up to that much to each step that waits for it.
        sys.setswitchinterval(cameras.gil_switch_ms / 1e3)
        self.host_id = host_id
        self._settings = cameras
        self._sink = BatchingFrameSink(
            sink, cameras.batch_max_frames, cameras.batch_wait_ms / 1e3, cameras.batch_in_flight
        )
        self._reporter = CameraReporter(events)
        self._governor = FreshnessGovernor(cameras.latency_budget_ms, min_scale=cameras.min_rate_share)
        self._streams = StreamNames(settings.redis.stream_prefix)
        self._redis = redis.Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=settings.redis.socket_timeout_s
        )
        self._cameras: dict[str, CameraRuntime] = {}
        self._lock = threading.Lock()  # the actor serves calls from several threads
        for spec in self._assigned():
            self._start(spec)

    def _assigned(self) -> list[CameraSpec]:
        """The cameras the manager placed here (none on a new host; all of them on a restarted one)."""
        mine = [cid for cid, host in self._redis.hgetall(self._streams.camera_hosts).items() if host == self.host_id]
        specs = []
        for camera_id in sorted(mine):
            raw = self._redis.hget(self._streams.cameras, camera_id)
            try:
                specs.append(CameraSpec(**json.loads(str(raw))))
            except (ValueError, TypeError) as exc:
                log.error("camera %s of host %s is missing or invalid in Redis: %s", camera_id, self.host_id, exc)
        return specs

    def _start(self, spec: CameraSpec) -> None:
        runtime = CameraRuntime(
            spec, self._settings, self._send, self._reporter.transition, self._reporter.metrics.latency, self._governor
        )
        runtime.start()
        self._cameras[spec.id] = runtime

    def _send(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        return self._sink.send(frames)

    # -- what the manager calls ----------------------------------------------------------------------------------

    def add(self, spec: dict[str, Any]) -> None:
        camera = CameraSpec(**spec)
        with self._lock:
            if camera.id not in self._cameras:
                self._start(camera)

    def remove(self, camera_id: str) -> dict[str, Any]:
        """Stop the camera and answer its last status."""
        with self._lock:
            runtime = self._cameras.get(camera_id)
            if runtime is None:
                raise CameraNotFound(f"no camera '{camera_id}' on {self.host_id}")
            runtime.stop()
            final = self._status(camera_id)
            del self._cameras[camera_id]
            self._reporter.forget(camera_id)
        return final

    def status(self, camera_id: str) -> dict[str, Any]:
        with self._lock:
            if camera_id not in self._cameras:
                raise CameraNotFound(f"no camera '{camera_id}' on {self.host_id}")
            return self._status(camera_id)

    def _status(self, camera_id: str) -> dict[str, Any]:
        status = {**self._cameras[camera_id].status(), **self._sink.counters(), "host": self.host_id}
        return self._reporter.counted(camera_id, status)

    def cameras(self) -> list[str]:
        with self._lock:
            return sorted(self._cameras)

    def stop(self) -> list[dict[str, Any]]:
        """Stop every camera, then write the results still buffered; answers their last statuses."""
        with self._lock:
            for runtime in self._cameras.values():
                runtime.stop()
            finals = [self._status(camera_id) for camera_id in sorted(self._cameras)]
        self._sink.close(5.0)
        return finals
