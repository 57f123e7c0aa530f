"""Gates a selected frame passes before it is queued: near-duplicate suppression, per-camera rate limits and
per-class quotas. Their state lives in Redis, so several labeling workers respect one budget."""

from __future__ import annotations

import time
from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt
import redis

from visionloop.core.boxes import box_iou, greedy_match
from visionloop.core.contracts import Detections
from visionloop.core.streams import StreamNames

Image = npt.NDArray[np.uint8]


def perceptual_hash(image: Image) -> int:
    """64-bit DCT hash: robust to small shifts, noise and re-encoding, unlike a byte hash."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8].reshape(-1)
    bits = low[1:] > np.median(low[1:])
    return int("".join("1" if b else "0" for b in bits), 2)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def objects_signature(detections: Detections) -> str:
    """The detected objects in a short text (class and whole-pixel box each), kept beside a frame's hash."""
    return ";".join(
        f"{int(c)},{','.join(str(round(float(v))) for v in box)}"
        for c, box in zip(detections.class_id, detections.xyxy, strict=True)
    )


def _parse_signature(text: str) -> tuple[npt.NDArray[np.float32], list[int]]:
    rows = [[float(v) for v in part.split(",")] for part in text.split(";") if part]
    boxes = np.array([row[1:5] for row in rows], np.float32).reshape(-1, 4)
    return boxes, [int(row[0]) for row in rows]


def same_objects(a: str, b: str, min_iou: float) -> bool:
    """True when both frames show the same objects where they were: as many boxes, each matched one to one with a
    box of the same class at IoU >= ``min_iou``."""
    boxes_a, classes_a = _parse_signature(a)
    boxes_b, classes_b = _parse_signature(b)
    if len(classes_a) != len(classes_b):
        return False
    iou = box_iou(boxes_a, boxes_b)
    iou[np.array(classes_a)[:, None] != np.array(classes_b)[None, :]] = 0.0
    return len(greedy_match(iou, min_iou)) == len(classes_a)


class DuplicateFilter:
    """Suppress a frame that is a near copy of one selected from the same camera in the last window.

    A near copy looks the same (its perceptual hash within ``max_distance`` bits) and, when ``min_box_iou`` > 0,
    shows the same objects in the same places. A fixed camera's background dominates a whole-frame hash, so frames
    seconds apart often hash alike while their objects have moved: the hash alone throws those away.
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        window_s: float = 60.0,
        max_distance: int = 6,
        keep: int = 500,
        min_box_iou: float = 0.0,
    ) -> None:
        self._redis, self._keys = client, StreamNames(prefix)
        self.window_s, self.max_distance, self.keep, self.min_box_iou = window_s, max_distance, keep, min_box_iou

    def is_duplicate(
        self, camera_id: str, image: Image, now: float | None = None, detections: Detections | None = None
    ) -> bool:
        """True if a near copy was selected recently; otherwise remember this frame and return False."""
        now = time.time() if now is None else now
        key = self._keys.dedup(camera_id)
        code = perceptual_hash(image)
        objects = objects_signature(detections) if detections is not None else ""
        self._redis.zremrangebyscore(key, 0, now - self.window_s)
        for member in self._redis.zrange(key, 0, -1):
            text = member.decode() if isinstance(member, bytes) else str(member)
            other_code, _, rest = text.partition(":")
            if hamming(code, int(other_code, 16)) > self.max_distance:
                continue
            other_objects = rest.partition(":")[2]
            if self.min_box_iou <= 0 or same_objects(objects, other_objects, self.min_box_iou):
                return True
        with self._redis.pipeline() as pipe:
            pipe.zadd(key, {f"{code:016x}:{now:.6f}:{objects}": now})
            pipe.zremrangebyrank(key, 0, -self.keep - 1)
            pipe.expire(key, int(self.window_s) + 60)
            pipe.execute()
        return False


class RateLimiter:
    """At most ``per_minute`` selections per camera per minute, counted in Redis across workers."""

    def __init__(self, client: redis.Redis, prefix: str, per_minute: int) -> None:
        self._redis, self._keys, self.per_minute = client, StreamNames(prefix), per_minute

    def allow(self, camera_id: str, now: float | None = None) -> bool:
        minute = int((time.time() if now is None else now) // 60)
        key = self._keys.rate(camera_id, minute)
        with self._redis.pipeline() as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = pipe.execute()
        return int(count) <= self.per_minute


class ClassQuota:
    """At most ``per_hour`` selected frames per predicted class per hour: no class floods the labelers."""

    def __init__(self, client: redis.Redis, prefix: str, per_hour: int) -> None:
        self._redis, self._keys, self.per_hour = client, StreamNames(prefix), per_hour

    def allow(self, classes: Iterable[int], now: float | None = None) -> bool:
        """True (and counted) if any of the frame's classes is under quota; frames with no box always pass."""
        hour = int((time.time() if now is None else now) // 3600)
        wanted = sorted(set(classes))
        if not wanted:
            return True
        keys = [self._keys.quota(c, hour) for c in wanted]
        counts = [int(v or 0) for v in self._redis.mget(keys)]
        if all(count >= self.per_hour for count in counts):
            return False
        with self._redis.pipeline() as pipe:
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, 7200)
            pipe.execute()
        return True
