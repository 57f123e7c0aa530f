"""From a served frame to the review queue: ask the samplers, then the gates, then queue it with its reason.

Cheap checks first: the samplers look only at the detections; the frame is decoded (for the novelty memory and
the duplicate check) only once a sampler wants it, and the Redis-backed gates run last.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
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
from visionloop.labeling.strata import StratumHold


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
        hold: StratumHold[tuple[bytes, FrameResult, Selection]] | None = None,
    ) -> None:
        self._sampler, self._queue = sampler, queue
        self._hold = hold
        self._jpeg_quality = jpeg_quality
        self._dedup, self._rate, self._quota = dedup, rate, quota
        self.stats = SelectorStats()

    def offer(self, frame: EncodedFrame, result: FrameResult) -> ReviewItem | None:
        """Queue the frame if it is worth labelling and passes every gate; returns what was queued of it.

        With strata (``hold``), a picked frame waits for the end of its camera's window and only the window's most
        doubtful go on (None is returned for it now); the random control arm never waits. Runs off the serving
        path (the Router hands frames to a background thread), so decoding here is fine.
        """
        self.stats.seen += 1
        if self._hold is not None:
            for jpeg, held_result, held_selection in self._hold.release(result.camera_id, result.capture_ts):
                self._admit_held(jpeg, held_result, held_selection)
        try:
            image = frame.decoded()
        except InvalidImageError:
            self.stats.rejected["undecodable"] += 1
            return None
        selection = self._sampler.select(result, image)
        if selection is None:
            self.stats.rejected["not selected"] += 1
            return None
        if self._hold is None or selection.sampler == "random":
            return self._admit(image, lambda: frame.encoded(self._jpeg_quality), result, selection)
        if not self._hold.would_keep(result.camera_id, result.capture_ts, selection.score):
            self.stats.rejected["stratum has a more doubtful frame"] += 1
            return None
        candidate = (frame.encoded(self._jpeg_quality), result, selection)
        for jpeg, held_result, held_selection in self._hold.hold(
            result.camera_id, result.capture_ts, selection.score, candidate
        ):
            self._admit_held(jpeg, held_result, held_selection)
        return None

    def flush(self) -> int:
        """Queue what the strata still hold (the selector stops); returns how many were queued."""
        if self._hold is None:
            return 0
        return sum(self._admit_held(*held) is not None for held in self._hold.drain())

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
        if self._dedup.is_duplicate(result.camera_id, image):
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
        build_sampler(settings),
        ReviewQueue(client, StreamNames(prefix), consumer="selector"),
        DuplicateFilter(client, prefix, labeling.dedup_window_s, labeling.dedup_max_distance),
        RateLimiter(client, prefix, labeling.per_camera_per_minute),
        ClassQuota(client, prefix, labeling.per_class_per_hour),
        settings.cameras.jpeg_quality,
        StratumHold(labeling.stratum_s, labeling.stratum_frames) if labeling.stratum_s > 0 else None,
    )
