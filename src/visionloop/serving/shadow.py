"""Shadow mode: mirror answered frames to the shadow Detector, off the response path, and pair the two answers.

The champion answers first; a mirrored frame then waits in a bounded queue for the shadow. A frame that would wait
beyond ``shadow.queue_size`` is dropped and counted, never waited for, so a slow shadow cannot slow the champion.
Both results (the shadow's with ``role=shadow``) are joined by frame id on the shadow-pairs stream, with the scalars
the operational comparison needs (latency, detections, mean confidence, disagreement at IoU 0.5), so the summary
never parses the results again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visionloop.core.contracts import Detections, EncodedFrame, FrameResult, ModelRole, StageLatency
from visionloop.core.settings import ShadowSettings
from visionloop.serving.detector import NO_MODEL

log = logging.getLogger(__name__)
DISAGREE_IOU = 0.5


def disagree(a: Detections, b: Detections, threshold: float, iou: float = DISAGREE_IOU) -> bool:
    """True when the two models' boxes at or above ``threshold`` do not pair up one to one (same class, IoU >= iou).

    Greedy by IoU, as detection matching usually is; a frame where both see nothing agrees.
    """
    ka, kb = a.confidence >= threshold, b.confidence >= threshold
    boxes_a, boxes_b = a.xyxy[ka], b.xyxy[kb]
    class_a, class_b = a.class_id[ka], b.class_id[kb]
    if len(boxes_a) != len(boxes_b):
        return True
    if len(boxes_a) == 0:
        return False
    top_left = np.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    bottom_right = np.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    area_a = np.prod(boxes_a[:, 2:] - boxes_a[:, :2], axis=1)
    area_b = np.prod(boxes_b[:, 2:] - boxes_b[:, :2], axis=1)
    overlap = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    overlap[class_a[:, None] != class_b[None, :]] = 0.0
    used_a, used_b = set(), set()
    for flat in np.argsort(-overlap, axis=None):
        i, j = divmod(int(flat), len(boxes_b))
        if overlap[i, j] < iou:
            break
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
    return len(used_a) != len(boxes_a)


def pair_fields(champion: FrameResult, shadow: FrameResult, threshold: float) -> dict[str, str]:
    """One shadow-pairs stream entry: both results (JSON) joined by frame id, and the comparison's scalars."""

    def stats(result: FrameResult) -> tuple[int, float]:
        keep = result.detections.confidence >= threshold
        conf = result.detections.confidence[keep]
        return int(keep.sum()), float(conf.mean()) if len(conf) else 0.0

    (champion_n, champion_conf), (shadow_n, shadow_conf) = stats(champion), stats(shadow)
    return {
        "frame_id": champion.frame_id,
        "camera_id": champion.camera_id,
        "champion_version": champion.model_version,
        "shadow_version": shadow.model_version,
        "champion_ms": f"{champion.latency.inference_ms + champion.latency.post_ms:.3f}",
        "shadow_ms": f"{shadow.latency.inference_ms + shadow.latency.post_ms:.3f}",
        "champion_detections": str(champion_n),
        "shadow_detections": str(shadow_n),
        "champion_confidence": f"{champion_conf:.4f}",
        "shadow_confidence": f"{shadow_conf:.4f}",
        "disagree": "1" if disagree(champion.detections, shadow.detections, threshold) else "0",
        "champion": json.dumps(champion.to_dict(), separators=(",", ":")),
        "shadow": json.dumps(shadow.to_dict(), separators=(",", ":")),
    }


def error_fields(champion: FrameResult, shadow_version: str, error: str) -> dict[str, str]:
    return {
        "frame_id": champion.frame_id,
        "camera_id": champion.camera_id,
        "champion_version": champion.model_version,
        "shadow_version": shadow_version,
        "error": error[:500],
    }


def _text(fields: dict[Any, Any], key: str) -> str | None:
    value = fields.get(key, fields.get(key.encode()))
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def summarize_pairs(entries: Sequence[dict[Any, Any]]) -> dict[str, Any]:
    """The operational comparison of champion and shadow on the same mirrored frames.

    Only pairs of the latest shadow version in ``entries`` count (an older shadow's pairs would blur it).
    Latency is model time (inference + post) per frame, each measured in its own replica.
    """
    versions = [_text(e, "shadow_version") for e in entries]
    latest = next((v for v in reversed(versions) if v), None)
    mine = [e for e, v in zip(entries, versions, strict=True) if v == latest]
    errors = sum(1 for e in mine if _text(e, "error"))
    paired = [e for e in mine if not _text(e, "error")]
    out: dict[str, Any] = {"shadow_version": latest, "pairs": len(paired), "errors": errors}
    if latest is not None:
        out["champion_version"] = _text(mine[-1], "champion_version")
    if not paired:
        return out

    def column(key: str) -> np.ndarray:
        return np.array([float(_text(e, key) or 0.0) for e in paired])

    for role in ("champion", "shadow"):
        ms = column(f"{role}_ms")
        out[role] = {
            "latency_p50_ms": round(float(np.percentile(ms, 50)), 3),
            "latency_p99_ms": round(float(np.percentile(ms, 99)), 3),
            "detections_per_frame": round(float(column(f"{role}_detections").mean()), 4),
            "mean_confidence": round(float(column(f"{role}_confidence").mean()), 4),
        }
    out["disagreement_rate"] = round(float(column("disagree").mean()), 4)
    return out


@dataclass
class MirrorCounters:
    mirrored: int = 0
    dropped: int = 0
    errors: int = 0
    published: int = 0
    publish_errors: int = 0
    not_ready: int = 0
    by_reason: dict[str, int] = field(default_factory=lambda: {"random": 0, "selected": 0})


class ShadowMirror:
    """The bounded queue between the Router and the shadow Detector, and the writer of the shadow-pairs stream."""

    def __init__(
        self,
        shadow: Any,
        settings: ShadowSettings,
        redis_url: str,
        stream: str,
        threshold: float,
        socket_timeout_s: float = 2.0,
        on_count: Any = None,
        seed: int | None = None,
    ) -> None:
        """``shadow``: a handle with ``detect.remote(list[bytes])`` returning FrameReply-like objects.
        ``on_count(outcome, n)`` reports to the metrics (mirrored, dropped, error)."""
        self._shadow = shadow
        self._settings = settings
        self._redis_url, self._stream = redis_url, stream
        self._threshold = threshold
        self._timeout = socket_timeout_s
        self._queue: asyncio.Queue[tuple[EncodedFrame, FrameResult]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._redis: Any = None
        self._rng = random.Random(seed)
        self._on_count = on_count
        self.counters = MirrorCounters()

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    def _count(self, outcome: str, n: int = 1) -> None:
        if self._on_count is not None:
            self._on_count(outcome, n)

    def _ensure_started(self) -> asyncio.Queue[tuple[EncodedFrame, FrameResult]]:
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self._settings.queue_size)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._queue

    def offer_random(self, frames: Sequence[EncodedFrame], results: Sequence[FrameResult | str]) -> None:
        """Mirror ``shadow.mirror_fraction`` of the answered frames, drawn at random."""
        fraction = self._settings.mirror_fraction
        if fraction <= 0:
            return
        for frame, result in zip(frames, results, strict=True):
            if isinstance(result, FrameResult) and self._rng.random() < fraction:
                self.offer(frame, result, "random")

    def offer(self, frame: EncodedFrame, result: FrameResult, reason: str = "selected") -> bool:
        """Queue one frame for the shadow; False (and counted) when the queue is full. Call on the event loop."""
        queue = self._ensure_started()
        try:
            queue.put_nowait((frame, result))
        except asyncio.QueueFull:
            self.counters.dropped += 1
            self._count("dropped")
            return False
        self.counters.mirrored += 1
        self.counters.by_reason[reason] = self.counters.by_reason.get(reason, 0) + 1
        self._count("mirrored")
        return True

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._settings.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._send(batch)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the shadow failing must never touch the champion's path
                self.counters.errors += len(batch)
                self._count("error", len(batch))
                log.warning("shadow call failed for %d frames: %s", len(batch), exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _send(self, batch: list[tuple[EncodedFrame, FrameResult]]) -> None:
        replies = await self._shadow.detect.remote([frame.payload for frame, _ in batch])
        entries = []
        for (_, champion), reply in zip(batch, replies, strict=True):
            if reply.error == NO_MODEL:  # the pointer moved and the shadow replica is still loading it
                self.counters.not_ready += 1
                continue
            if reply.error or reply.detections is None:
                self.counters.errors += 1
                self._count("error")
                entries.append(error_fields(champion, reply.model_version or "", reply.error or "no detections"))
                continue
            shadow = FrameResult(
                camera_id=champion.camera_id,
                seq=champion.seq,
                capture_ts=champion.capture_ts,
                model_version=reply.model_version,
                detections=reply.detections,
                latency=StageLatency(
                    decode_ms=reply.latency.decode_ms,
                    queue_ms=reply.latency.queue_ms,
                    inference_ms=reply.latency.inference_ms,
                    post_ms=reply.latency.post_ms,
                ),
                role=ModelRole.SHADOW,
                frame_width=reply.width,
                frame_height=reply.height,
            )
            entries.append(pair_fields(champion, shadow, self._threshold))
        if entries:
            await self._publish(entries)

    async def _publish(self, entries: list[dict[str, str]]) -> None:
        """Pairs are observations, not records: when Redis is away they are counted and let go."""
        import redis.asyncio as aioredis

        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self._redis_url, socket_timeout=self._timeout)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.xadd(self._stream, entry, maxlen=self._settings.pairs_maxlen, approximate=True)
                await pipe.execute()
            self.counters.published += len(entries)
        except Exception as exc:  # Redis away: observations are lost, counted, and serving goes on
            self.counters.publish_errors += len(entries)
            log.warning("shadow pairs not written (%d): %s", len(entries), exc)

    def status(self) -> dict[str, Any]:
        return {**self.counters.__dict__, "queued": self.queued, "queue_size": self._settings.queue_size}

    async def shutdown(self, timeout_s: float) -> None:
        """Give queued frames a moment to finish, then stop the worker and close Redis."""
        if self._queue is not None and self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout_s)
        if self._task is not None:
            self._task.cancel()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
