"""Answered frames -> compact summaries on the drift-samples stream, which the drift monitor reads.

A ``FrameObserver`` run by the serving Router off the response path, for every answered champion frame. Per camera it
keeps at most one frame per ``drift.sample_interval_s`` of capture time (consecutive video frames are near copies,
and sparse samples keep a window's frames close to independent), decodes it at a quarter size for the appearance
vector, and adds one small entry to the stream. It never keeps a frame for labeling, so it always answers None.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import redis

from visionloop.core.contracts import EncodedFrame, FrameResult, ModelRole
from visionloop.core.frames import CameraThrottle
from visionloop.core.imaging import frame_embedding
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.monitoring.drift_stats import FrameSummary

log = logging.getLogger(__name__)

REDIS_BACKOFF_S = 5.0  # after a Redis failure, samples are dropped (not retried per frame) for this long


@dataclass(frozen=True)
class DriftSample:
    """One sampled frame: who, when, which model, what it found (above the operating threshold), how it looked and
    what it cost."""

    camera_id: str
    ts: float
    model_version: str
    frame_id: str
    confidences: list[float]
    class_ids: list[int]
    box_sizes: list[float]  # sqrt of box area / frame area
    appearance: list[float]
    latency_ms: dict[str, float]
    total_ms: float

    @property
    def summary(self) -> FrameSummary:
        return FrameSummary(self.confidences, self.class_ids, self.box_sizes, self.appearance)

    def to_fields(self) -> dict[str, str]:
        body = {
            "frame_id": self.frame_id,
            "conf": self.confidences,
            "cls": self.class_ids,
            "size": self.box_sizes,
            "n": len(self.confidences),
            "app": self.appearance,
            "lat": self.latency_ms,
            "total_ms": self.total_ms,
        }
        return {
            "camera_id": self.camera_id,
            "ts": f"{self.ts:.3f}",
            "model_version": self.model_version,
            "json": json.dumps(body, separators=(",", ":")),
        }

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes] | dict[str, str]) -> DriftSample:
        text = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in fields.items()
        }
        body: dict[str, Any] = json.loads(text["json"])
        return cls(
            camera_id=text["camera_id"],
            ts=float(text["ts"]),
            model_version=text["model_version"],
            frame_id=str(body.get("frame_id", "")),
            confidences=[float(v) for v in body.get("conf", [])],
            class_ids=[int(v) for v in body.get("cls", [])],
            box_sizes=[float(v) for v in body.get("size", [])],
            appearance=[float(v) for v in body.get("app", [])],
            latency_ms={str(k): float(v) for k, v in body.get("lat", {}).items()},
            total_ms=float(body.get("total_ms", 0.0)),
        )


def summarise(frame: EncodedFrame, result: FrameResult, conf_threshold: float) -> DriftSample | None:
    """The sample of one answered frame; None when its bytes do not decode."""
    if frame.image is not None:  # a camera's array: a quarter of each side, as the JPEG path decodes it
        height, width = frame.image.shape[:2]
        small = cv2.resize(frame.image, (max(1, width // 4), max(1, height // 4)), interpolation=cv2.INTER_AREA)
        image = np.asarray(small, dtype=np.uint8)
    else:
        decoded = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
        if decoded is None:
            return None
        image = np.asarray(decoded, dtype=np.uint8)
    width = result.frame_width or image.shape[1] * 4
    height = result.frame_height or image.shape[0] * 4
    detections = result.detections
    keep = detections.confidence >= conf_threshold
    boxes = detections.xyxy[keep]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / max(width * height, 1)
    latency = result.latency
    return DriftSample(
        camera_id=result.camera_id,
        ts=result.capture_ts,
        model_version=result.model_version,
        frame_id=result.frame_id,
        confidences=[round(float(c), 4) for c in detections.confidence[keep]],
        class_ids=[int(c) for c in detections.class_id[keep]],
        box_sizes=[round(math.sqrt(max(float(a), 0.0)), 4) for a in areas],
        appearance=[round(float(v), 3) for v in frame_embedding(image)],
        latency_ms={
            "decode": round(latency.decode_ms, 3),
            "queue": round(latency.queue_ms, 3),
            "batch": round(latency.batch_ms, 3),
            "inference": round(latency.inference_ms, 3),
            "post": round(latency.post_ms, 3),
        },
        total_ms=round(latency.total_ms, 3),
    )


class DriftSampler:
    """The observer: rate-limits per camera, summarises, adds to the stream."""

    def __init__(
        self,
        client: redis.Redis,
        streams: StreamNames,
        interval_s: float,
        maxlen: int,
        conf: float,
        retention_s: float = 0.0,
    ) -> None:
        self._client, self._streams = client, streams
        self._maxlen, self._conf, self._retention_s = maxlen, conf, retention_s
        self._throttle = CameraThrottle(interval_s)
        self._retry_at = 0.0
        self.sampled = 0
        self.dropped = 0  # while Redis was away

    def due(self, result: FrameResult) -> bool:
        """Whether this camera's frame is at least ``interval_s`` of capture time after its last kept one (or went
        back in time: the source restarted)."""
        return self._throttle.due(result.camera_id, result.capture_ts)

    def offer(self, frame: EncodedFrame, result: FrameResult) -> None:
        if result.role != ModelRole.CHAMPION or not self.due(result):
            return None
        if time.monotonic() < self._retry_at:
            self.dropped += 1
            return None
        sample = summarise(frame, result, self._conf)
        if sample is None:
            return None
        try:
            self._add(sample.to_fields())
        except (redis.RedisError, OSError):
            self._retry_at = time.monotonic() + REDIS_BACKOFF_S
            self.dropped += 1
            raise  # the Router counts and logs it; the next samples are dropped quietly until the backoff ends
        self.sampled += 1
        return None

    def _add(self, fields: dict[str, str]) -> None:
        """XADD with the age trim (MINID) when there is a retention; the length cap holds either way."""
        stream = self._streams.drift_samples
        if not self._retention_s:
            self._client.xadd(stream, fields, maxlen=self._maxlen, approximate=True)  # type: ignore[arg-type]
            return
        minid = f"{int((time.time() - self._retention_s) * 1000)}-0"
        with self._client.pipeline(transaction=False) as pipe:
            pipe.xadd(stream, fields, minid=minid, approximate=True)  # type: ignore[arg-type]
            pipe.xtrim(stream, maxlen=self._maxlen, approximate=True)  # XADD takes one trim rule; the cap is the other
            pipe.execute()


def build_drift_sampler(settings: Settings, redis_url: str) -> DriftSampler:
    """The observer factory the face hands to serving (``FrameObserverFactory``)."""
    client = redis.Redis.from_url(redis_url, socket_timeout=settings.redis.socket_timeout_s)
    drift = settings.drift
    return DriftSampler(
        client,
        StreamNames(settings.redis.stream_prefix),
        drift.sample_interval_s,
        drift.samples_maxlen,
        settings.serving.conf_threshold,
        drift.samples_retention_s,
    )
