"""Gates a selected frame passes before it is queued: near-duplicate suppression, per-camera rate limits and
per-class quotas. Their state lives in Redis, so several labeling workers respect one budget."""

from __future__ import annotations

import time
from collections.abc import Iterable

import cv2
import numpy as np
import numpy.typing as npt
import redis

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


class DuplicateFilter:
    """Suppress frames within ``max_distance`` bits of one selected from the same camera in the last window."""

    def __init__(
        self, client: redis.Redis, prefix: str, window_s: float = 60.0, max_distance: int = 6, keep: int = 500
    ) -> None:
        self._redis, self._keys = client, StreamNames(prefix)
        self.window_s, self.max_distance, self.keep = window_s, max_distance, keep

    def is_duplicate(self, camera_id: str, image: Image, now: float | None = None) -> bool:
        """True if a near copy was selected recently; otherwise remember this frame and return False."""
        now = time.time() if now is None else now
        key = self._keys.dedup(camera_id)
        code = perceptual_hash(image)
        self._redis.zremrangebyscore(key, 0, now - self.window_s)
        members = self._redis.zrange(key, 0, -1)
        recent = [int((m.decode() if isinstance(m, bytes) else str(m)).split(":", 1)[0], 16) for m in members]
        if any(hamming(code, other) <= self.max_distance for other in recent):
            return True
        with self._redis.pipeline() as pipe:
            pipe.zadd(key, {f"{code:016x}:{now:.6f}": now})
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
