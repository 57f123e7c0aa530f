"""From a served frame to the review queue: ask the samplers, then the gates, then queue it with its reason.

Cheap checks first: the samplers look only at the detections; the frame is decoded (for the novelty memory and
the duplicate check) only once a sampler wants it, and the Redis-backed gates run last.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import redis

from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.errors import InvalidImageError
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.labeling.diversity import SelectionMemory
from visionloop.labeling.gates import ClassQuota, DuplicateFilter, RateLimiter
from visionloop.labeling.review_queue import ReviewItem, ReviewQueue
from visionloop.labeling.samplers import CompositeSampler, Image, Selection
from visionloop.labeling.strata import Strata

Held = tuple[bytes, FrameResult, Selection]  # a frame waiting for its stratum's end: its JPEG, result, reason


@dataclass
class SelectorStats:
    seen: int = 0
    selected: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)


class FrameSelector:
    def __init__(
        self,
        sampler: CompositeSampler,
        queue: ReviewQueue,
        dedup: DuplicateFilter,
        rate: RateLimiter,
        quota: ClassQuota,
        jpeg_quality: int = 90,
        strata: Strata[Held] | None = None,
    ) -> None:
        self._sampler, self._queue = sampler, queue
        self._strata = strata
        self._jpeg_quality = jpeg_quality
        self._dedup, self._rate, self._quota = dedup, rate, quota
        self.stats = SelectorStats()

    def offer(self, frame: EncodedFrame, result: FrameResult) -> list[ReviewItem]:
        """Queue the frame if it is worth labelling and passes every gate; returns what this call queued.

        With strata, a frame waits for the end of its camera's window: a doubt window sends its most doubtful
        frames, a random window (the control arm) one frame drawn uniformly. What a call returns is then the frames
        of the window that just ended, not the frame offered. Runs off the serving path (the Router hands frames to
        a background thread), so decoding here is fine.
        """
        self.stats.seen += 1
        strata = self._strata
        queued: list[ReviewItem] = []
        if strata is not None:
            queued += self._admit_all(strata.release(result.camera_id, result.capture_ts))
            if strata.is_random(result.camera_id, result.capture_ts):
                return queued + self._hold_random(strata, frame, result)
        try:
            image = frame.decoded()
        except InvalidImageError:
            self.stats.rejected["undecodable"] += 1
            return queued
        selection = self._sampler.select(result, image)
        if selection is None:
            self.stats.rejected["not selected"] += 1
            return queued
        if strata is None:
            item = self._admit(image, lambda: frame.encoded(self._jpeg_quality), result, selection)
            return [item] if item is not None else []
        if not strata.doubt.would_keep(result.camera_id, result.capture_ts, selection.score):
            self.stats.rejected["stratum has a more doubtful frame"] += 1
            return queued
        candidate = (frame.encoded(self._jpeg_quality), result, selection)
        return queued + self._admit_all(
            strata.doubt.hold(result.camera_id, result.capture_ts, selection.score, candidate)
        )

    def _hold_random(self, strata: Strata[Held], frame: EncodedFrame, result: FrameResult) -> list[ReviewItem]:
        key = strata.draw()
        if not strata.random.would_keep(result.camera_id, result.capture_ts, key):
            return []
        reason = f"random control arm: a frame drawn uniformly from its camera's {strata.window_s:g} s window"
        try:
            candidate = (frame.encoded(self._jpeg_quality), result, Selection("random", 1.0, reason))
        except InvalidImageError:
            self.stats.rejected["undecodable"] += 1
            return []
        return self._admit_all(strata.random.hold(result.camera_id, result.capture_ts, key, candidate))

    def _admit_all(self, held: Iterable[Held]) -> list[ReviewItem]:
        admitted = (self._admit_held(*one) for one in held)
        return [item for item in admitted if item is not None]

    def flush(self) -> int:
        """Queue what the strata still hold (the selector stops); returns how many were queued."""
        if self._strata is None:
            return 0
        return sum(self._admit_held(*held) is not None for held in self._strata.drain())

    def _admit_held(self, jpeg: bytes, result: FrameResult, selection: Selection) -> ReviewItem | None:
        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        if decoded is None:
            self.stats.rejected["undecodable"] += 1
            return None
        return self._admit(np.asarray(decoded, np.uint8), lambda: jpeg, result, selection)

    def _admit(
        self, image: Image, jpeg: Callable[[], bytes], result: FrameResult, selection: Selection
    ) -> ReviewItem | None:
        """The gates, then the queue: near duplicates, the camera's rate, the class quotas."""
        if self._dedup.is_duplicate(result.camera_id, image, detections=result.detections):
            self.stats.rejected["near duplicate"] += 1
            return None
        if not self._rate.allow(result.camera_id):
            self.stats.rejected["camera rate limit"] += 1
            return None
        if not self._quota.allow(int(c) for c in result.detections.class_id):
            self.stats.rejected["class quota"] += 1
            return None
        item = ReviewItem(result.frame_id, jpeg(), result, selection, time.time())  # a camera's frame: encoded late
        self._queue.put(item)
        self._sampler.observe_selected(result, image)
        self.stats.selected += 1
        self.stats.by_reason[selection.sampler] += 1
        return item


PER_BOX_SAMPLERS = ("least_confidence", "margin", "entropy")


def build_sampler(
    settings: Settings, threshold: float | None = None, random_rate: float | None = None, seed: int | None = None
) -> CompositeSampler:
    """The composite sampler the settings describe: the service's selector and the benchmark both build it here."""
    labeling = settings.labeling
    options: dict[str, dict[str, Any]] = {key: {"aggregate_by": labeling.aggregate} for key in PER_BOX_SAMPLERS}
    options["confidence_band"] = {"threshold": settings.serving.conf_threshold, "aggregate_by": labeling.aggregate}
    return CompositeSampler(
        labeling.sampler_weights,
        labeling.select_threshold if threshold is None else threshold,
        labeling.random_rate if random_rate is None else random_rate,
        options=options,
        seed=seed,
        diversity=labeling.diversity,
        class_balance=labeling.class_balance,
        memory=SelectionMemory(labeling.memory_size, labeling.diversity_scale),
    )


def build_selector(settings: Settings, redis_url: str) -> FrameSelector:
    """The selector the settings describe, with its state in the given Redis."""
    labeling = settings.labeling
    client = redis.Redis.from_url(redis_url, socket_timeout=settings.redis.socket_timeout_s)
    prefix = settings.redis.stream_prefix
    return FrameSelector(
        build_sampler(settings, random_rate=0.0 if labeling.stratum_s > 0 else None),  # strata draw the control arm
        ReviewQueue(client, StreamNames(prefix), consumer="selector"),
        DuplicateFilter(
            client,
            prefix,
            labeling.dedup_window_s,
            labeling.dedup_max_distance,
            min_box_iou=labeling.dedup_box_iou,
        ),
        RateLimiter(client, prefix, labeling.per_camera_per_minute),
        ClassQuota(client, prefix, labeling.per_class_per_hour),
        settings.cameras.jpeg_quality,
        Strata(labeling.stratum_s, labeling.stratum_frames, labeling.stratum_random)
        if labeling.stratum_s > 0
        else None,
    )
