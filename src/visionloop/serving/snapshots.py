"""Keep each camera's latest answered frames (image + result) in Redis for the dashboard.

The dashboard's Live view and the explanations need real frames, and only the Router holds them; the hot path must
not pay for that, so this is a frame observer (it runs off the response path) that keeps at most one frame per
camera every ``dashboard.snapshot_interval_s`` in a capped list, newest first.
"""

from __future__ import annotations

import base64
import json
import time

import redis

from visionloop.core.contracts import EncodedFrame, FrameResult, ModelRole
from visionloop.core.frames import CameraThrottle
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames


class SnapshotKeeper:
    """A ``FrameObserver``: throttled per camera, capped per camera, never keeps a frame for labeling."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self._streams = StreamNames(settings.redis.stream_prefix)
        self._throttle = CameraThrottle(settings.dashboard.snapshot_interval_s)
        self._keep = settings.dashboard.snapshots_per_camera
        self._jpeg_quality = settings.cameras.jpeg_quality
        timeout = settings.redis.socket_timeout_s
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)

    def offer(self, frame: EncodedFrame, result: FrameResult) -> None:
        if result.role != ModelRole.CHAMPION or not self._throttle.due(result.camera_id, time.monotonic()):
            return None
        entry = {
            "frame_id": result.frame_id,
            "camera_id": result.camera_id,
            "ts": result.capture_ts,
            "model_version": result.model_version,
            # A camera's frame arrives as an array: encoded here, for the few frames kept.
            "jpeg_b64": base64.b64encode(frame.encoded(self._jpeg_quality)).decode("ascii"),
            "result": result.to_dict(),
        }
        key = self._streams.snapshots(result.camera_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.lpush(key, json.dumps(entry, separators=(",", ":")))
        pipe.ltrim(key, 0, self._keep - 1)
        pipe.sadd(self._streams.snapshot_cameras, result.camera_id)
        pipe.execute()
        return None


def build_snapshot_keeper(settings: Settings, redis_url: str) -> SnapshotKeeper:
    return SnapshotKeeper(settings, redis_url)
