"""The review queue and the selection gates against a real Redis: acknowledgements, reclaiming, dead letters,
shared rate limits, quotas and near-duplicate suppression."""

from __future__ import annotations

import time

import numpy as np
import pytest
import redis

from tests.conftest import wait_for
from visionloop.core.contracts import Detections, FrameResult
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.streams import StreamNames, review_selected
from visionloop.labeling.gates import ClassQuota, DuplicateFilter, RateLimiter, hamming, perceptual_hash
from visionloop.labeling.review_queue import ReviewItem, ReviewQueue
from visionloop.labeling.samplers import Selection
from visionloop.simulation.clips import render_clip

pytestmark = pytest.mark.integration


def _item(n: int) -> ReviewItem:
    result = FrameResult(
        "cam",
        n,
        1.0,
        "v1",
        Detections(np.array([[1, 2, 3, 4]], np.float32), np.array([0.3], np.float32), np.array([2])),
    )
    return ReviewItem(f"cam-{n}", b"\xff\xd8\xff fake jpeg", result, Selection("margin", 0.8, "test"), time.time())


def test_entries_stay_until_acknowledged_and_dead_workers_are_reclaimed(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    streams = StreamNames("t")
    # Entries idle for 2 s count as a dead worker's: long enough that a stall of this machine does not reclaim them
    # early, short enough for a test.
    dead_worker = ReviewQueue(client, streams, consumer="dead", min_idle_ms=2000)
    for n in range(3):
        dead_worker.put(_item(n))
    taken = dead_worker.take(count=10, block_ms=100)
    assert [d.item.frame_id for d in taken if d.item] == ["cam-0", "cam-1", "cam-2"]
    # "dead" never acknowledges; a second worker gets nothing until the entries have been idle long enough.
    rescuer = ReviewQueue(client, streams, consumer="rescuer", min_idle_ms=2000)
    assert rescuer.take(count=10, block_ms=50) == []
    again = wait_for(lambda: rescuer.take(count=10, block_ms=50), timeout_s=30)
    assert [d.item.frame_id for d in again if d.item] == ["cam-0", "cam-1", "cam-2"]
    assert all(d.deliveries == 2 for d in again)
    for delivery in again:
        rescuer.ack(delivery)
    assert rescuer.stats() == {"queued_total": 3, "waiting": 0, "pending": 0, "backlog": 0, "dead_lettered": 0}
    client.close()


def test_an_imported_frame_leaves_the_stream_and_stays_counted(redis_server: EmbeddedRedis) -> None:
    """Each entry carries a JPEG: a stream that kept imported ones grew for ever (3.5 MB a minute at 4 cameras)."""
    client = redis.Redis.from_url(redis_server.url)
    streams = StreamNames("forget")
    queue = ReviewQueue(client, streams, consumer="w", min_idle_ms=60_000)
    ids = [queue.put(_item(n)) for n in range(5)]
    taken = queue.take(count=3, block_ms=50)
    queue.ack(taken[0])
    queue.dead_letter(taken[1], "refused")
    assert [e.decode() for e, _ in client.xrange(streams.review)] == ids[2:]  # one pending, two never delivered
    stats = queue.stats()
    assert stats == {"queued_total": 5, "waiting": 3, "pending": 1, "backlog": 2, "dead_lettered": 1}
    assert review_selected(client, streams) == {"margin": 5}
    client.close()


def test_a_stream_kept_by_an_older_version_forgets_only_what_was_acknowledged(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    streams = StreamNames("older")
    queue = ReviewQueue(client, streams, consumer="w", min_idle_ms=60_000)
    ids = [queue.put(_item(n)) for n in range(7)]
    taken = queue.take(count=5, block_ms=50)
    for delivery in taken[:4]:  # acknowledged the old way: the entries stayed
        client.xack(streams.review, "labeling", delivery.entry_id)
    assert queue.forget_acknowledged(batch=2) == 4
    assert [e.decode() for e, _ in client.xrange(streams.review)] == ids[4:]  # pending ids[4], undelivered 5 and 6
    assert queue.forget_acknowledged() == 0 and queue.stats()["queued_total"] == 7
    client.close()


def test_too_many_deliveries_go_to_the_dead_letter_stream(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url)
    streams = StreamNames("t")
    queue = ReviewQueue(client, streams, consumer="w", max_deliveries=3, min_idle_ms=0)
    queue.put(_item(7))
    client.xadd(streams.review, {"garbage": "1"})  # an entry no worker can parse
    for _ in range(3):
        deliveries = queue.take(count=10, block_ms=50)
    for delivery in deliveries:
        assert queue.should_give_up(delivery)
        queue.dead_letter(delivery, "Label Studio answered 500 three times")
    stats = queue.stats()
    assert stats["pending"] == 0 and stats["dead_lettered"] == 2 and stats["queued_total"] == 2
    assert stats["waiting"] == 0  # dead-lettered entries leave the stream: their frame is in the dead-letter one
    dead = client.xrange(streams.review_dead_letter)
    assert dead[0][1][b"dead_reason"] == b"Label Studio answered 500 three times"
    assert dead[0][1][b"frame_id"] == b"cam-7"  # the frame itself is kept
    client.close()


def test_rate_limit_is_shared_between_workers(redis_server: EmbeddedRedis) -> None:
    one = RateLimiter(redis.Redis.from_url(redis_server.url), "t", per_minute=5)
    two = RateLimiter(redis.Redis.from_url(redis_server.url), "t", per_minute=5)
    now = 1_000_000.0
    decisions = [worker.allow("cam", now) for worker in (one, two) * 4]
    assert decisions.count(True) == 5 and decisions[5:] == [False, False, False]
    assert one.allow("other-cam", now) and one.allow("cam", now + 60)


def test_class_quota(redis_server: EmbeddedRedis) -> None:
    quota = ClassQuota(redis.Redis.from_url(redis_server.url), "t", per_hour=2)
    assert quota.allow([0]) and quota.allow([0, 1])  # class 0 now at 2, class 1 at 1
    assert not quota.allow([0])  # full
    assert quota.allow([0, 1])  # class 1 still has room (now 2)
    assert not quota.allow([1]) and not quota.allow([0, 1])
    assert quota.allow([3]) and quota.allow([])


def test_near_duplicates_are_suppressed_within_the_window(redis_server: EmbeddedRedis) -> None:
    frames = render_clip(frames=40, width=320, height=180, seed=8)
    other = render_clip(frames=1, width=320, height=180, seed=9, domain="C")[0]
    noisy = np.clip(frames[0].astype(int) + np.random.default_rng(0).integers(-6, 7, frames[0].shape), 0, 255).astype(
        np.uint8
    )
    assert hamming(perceptual_hash(frames[0]), perceptual_hash(noisy)) <= 6
    dedup = DuplicateFilter(redis.Redis.from_url(redis_server.url), "t", window_s=60, max_distance=6)
    now = 2_000_000.0
    assert not dedup.is_duplicate("cam", frames[0], now)
    assert dedup.is_duplicate("cam", noisy, now + 1)
    assert dedup.is_duplicate("cam", frames[1], now + 1)  # the next video frame barely moved
    assert not dedup.is_duplicate("cam", other, now + 2)
    assert not dedup.is_duplicate("cam2", frames[0], now + 2)  # per camera
    assert not dedup.is_duplicate("cam", noisy, now + 120)  # the window has passed


def test_a_frame_whose_objects_moved_is_no_duplicate_of_one_that_looks_alike(redis_server: EmbeddedRedis) -> None:
    """A fixed camera's frames hash alike while its objects move: with min_box_iou, only a frame that also shows
    the same objects in the same places is a near copy."""

    def seen(*boxes: tuple[int, float, float, float, float]) -> Detections:
        return Detections(
            np.array([b[1:] for b in boxes], np.float32).reshape(-1, 4),
            np.full(len(boxes), 0.8, np.float32),
            np.array([b[0] for b in boxes], np.int32),
        )

    frame = render_clip(frames=1, width=320, height=180, seed=8)[0]
    dedup = DuplicateFilter(
        redis.Redis.from_url(redis_server.url), "objs", window_s=60, max_distance=6, min_box_iou=0.5
    )
    now = 3_000_000.0
    car, person = (2, 10.0, 10.0, 60.0, 40.0), (0, 200.0, 50.0, 220.0, 100.0)
    assert not dedup.is_duplicate("cam", frame, now, seen(car, person))
    assert dedup.is_duplicate("cam", frame, now + 1, seen(person, (2, 12.0, 11.0, 61.0, 41.0)))  # barely moved
    assert not dedup.is_duplicate("cam", frame, now + 2, seen(car, (0, 150.0, 50.0, 170.0, 100.0)))  # walked on
    assert not dedup.is_duplicate("cam", frame, now + 3, seen(car))  # someone left
    assert not dedup.is_duplicate("cam", frame, now + 4, seen(car, (1, 200.0, 50.0, 220.0, 100.0)))  # another class
    assert dedup.is_duplicate("cam", frame, now + 5, seen(car))  # the same as the frame remembered at now + 3
    hash_only = DuplicateFilter(redis.Redis.from_url(redis_server.url), "hash", window_s=60, max_distance=6)
    assert not hash_only.is_duplicate("cam", frame, now, seen(car))
    assert hash_only.is_duplicate("cam", frame, now + 1, seen(person))  # min_box_iou 0: the hash alone decides


def test_selector_queues_doubtful_frames_once_and_says_why(redis_server: EmbeddedRedis) -> None:
    import cv2

    from visionloop.core.contracts import EncodedFrame
    from visionloop.labeling.samplers import CompositeSampler
    from visionloop.labeling.selector import FrameSelector

    client = redis.Redis.from_url(redis_server.url)
    streams = StreamNames("sel")
    queue = ReviewQueue(client, streams, consumer="w")
    selector = FrameSelector(
        CompositeSampler({"least_confidence": 1.0}, threshold=0.5, random_rate=0.0, options={}),
        queue,
        DuplicateFilter(client, "sel", window_s=60, max_distance=6),
        RateLimiter(client, "sel", per_minute=100),
        ClassQuota(client, "sel", per_hour=100),
    )
    frames = render_clip(frames=3, width=320, height=180, seed=12)
    other = render_clip(frames=1, width=320, height=180, seed=13, domain="C")[0]

    def offer(image: np.ndarray, conf: float, seq: int) -> ReviewItem | None:
        jpeg = cv2.imencode(".jpg", image)[1].tobytes()
        detections = Detections(np.array([[5, 5, 50, 50]], np.float32), np.array([conf], np.float32), np.array([1]))
        result = FrameResult("cam:1", seq, 1000.0 + seq, "v2", detections, frame_width=320, frame_height=180)
        queued = selector.offer(EncodedFrame("cam:1", jpeg, seq), result)
        assert len(queued) <= 1 and all(item.result is result for item in queued)  # no strata: this frame or none
        return queued[0] if queued else None

    assert offer(frames[0], 0.95, 1) is None  # confident: not worth a label
    queued = offer(frames[0], 0.3, 2)
    assert queued is not None and "least_confidence" in queued.selection.reason and ":" not in queued.frame_id
    assert offer(frames[1], 0.3, 3) is None  # the next video frame: a near duplicate
    assert offer(other, 0.3, 4) is not None
    assert selector.stats.selected == 2 and selector.stats.rejected["near duplicate"] == 1
    assert queue.stats()["queued_total"] == 2
    client.close()


def test_review_items_survive_a_redis_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import free_port

    port = free_port()
    streams = StreamNames("aof")
    with EmbeddedRedis(port, tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url)
        queue = ReviewQueue(client, streams, consumer="w")
        for n in range(5):
            queue.put(_item(n))
        taken = queue.take(count=2, block_ms=50)  # two in flight (pending) when Redis goes down
        assert len(taken) == 2
        client.close()
    with EmbeddedRedis(port, tmp_path / "redis") as server:  # same data dir: the AOF is replayed
        client = redis.Redis.from_url(server.url)
        queue = ReviewQueue(client, streams, consumer="w2", min_idle_ms=0)
        recovered = queue.take(count=10, block_ms=50)
        assert sorted(d.item.frame_id for d in recovered if d.item) == [f"cam-{n}" for n in range(5)]
        client.close()


def test_labeling_status_cli_reads_the_queue(redis_server: EmbeddedRedis) -> None:
    import json
    import os
    import subprocess
    import sys

    client = redis.Redis.from_url(redis_server.url)
    queue = ReviewQueue(client, StreamNames("visionloop"), consumer="w")
    for n in range(3):
        queue.put(_item(n))
    queue.take(count=1, block_ms=50)
    client.close()
    out = subprocess.run(
        [sys.executable, "-m", "visionloop.cli", "labeling", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "VISIONLOOP_REDIS__URL": redis_server.url},
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["queued_total"] == 3 and report["pending"] == 1 and report["backlog"] == 2
    assert report["by_reason"] == {"margin": 3} and report["dead_lettered"] == 0


def test_strata_queue_only_the_most_doubtful_frame_of_each_camera_window(redis_server: EmbeddedRedis) -> None:
    import cv2

    from visionloop.core.contracts import EncodedFrame
    from visionloop.labeling.samplers import CompositeSampler
    from visionloop.labeling.selector import FrameSelector
    from visionloop.labeling.strata import Strata

    client = redis.Redis.from_url(redis_server.url)
    queue = ReviewQueue(client, StreamNames("strata"), consumer="w")
    selector = FrameSelector(
        CompositeSampler({"least_confidence": 1.0}, threshold=0.1, random_rate=0.0, options={}),
        queue,
        DuplicateFilter(client, "strata", window_s=60, max_distance=0),
        RateLimiter(client, "strata", per_minute=100),
        ClassQuota(client, "strata", per_hour=100),
        strata=Strata(window_s=10.0, keep=1, random_share=0.0),
    )
    scenes = render_clip(frames=12, width=320, height=180, seed=21, domain="C")
    confidences = [0.8, 0.3, 0.6, 0.7, 0.5, 0.9]  # within the first window the second frame is the most doubtful
    queued: list[ReviewItem] = []
    assert queue.stats()["queued_total"] == 0
    for camera in ("a", "b"):
        for seq, conf in enumerate(confidences):
            image = scenes[seq + (6 if camera == "b" else 0)]
            detections = Detections(np.array([[5, 5, 50, 50]], np.float32), np.array([conf], np.float32), np.array([1]))
            result = FrameResult(camera, seq, 1000.0 + seq, "v2", detections, frame_width=320, frame_height=180)
            item = selector.offer(EncodedFrame(camera, cv2.imencode(".jpg", image)[1].tobytes(), seq), result)
            assert item == []  # picked frames wait for their window's end
    assert queue.stats()["queued_total"] == 0
    late = Detections(np.array([[5, 5, 50, 50]], np.float32), np.array([0.95], np.float32), np.array([1]))
    released = selector.offer(EncodedFrame("a", cv2.imencode(".jpg", scenes[0])[1].tobytes(), 9),
                              FrameResult("a", 9, 1012.0, "v2", late, frame_width=320, frame_height=180))  # fmt: skip
    assert queue.stats()["queued_total"] == 1  # a's first window ended; b's is held until b moves on or goes quiet
    assert [(i.result.camera_id, i.result.seq) for i in released] == [("a", 1)]  # what the Router mirrors
    queued += [d.item for d in queue.take(10, block_ms=10) if d.item is not None]
    assert [(i.result.camera_id, i.result.seq) for i in queued] == [("a", 1)]
    assert selector.flush() == 1  # b's window, drained when the selector stops
    taken = [d.item for d in queue.take(10, block_ms=10) if d.item is not None]
    assert [(i.result.camera_id, i.result.seq) for i in taken] == [("b", 1)]
    assert selector.stats.rejected["stratum has a more doubtful frame"] > 0
    client.close()


def test_random_windows_send_one_uniform_frame_as_the_control_arm(redis_server: EmbeddedRedis) -> None:
    import cv2

    from visionloop.core.contracts import EncodedFrame
    from visionloop.labeling.samplers import CompositeSampler
    from visionloop.labeling.selector import FrameSelector
    from visionloop.labeling.strata import Strata

    client = redis.Redis.from_url(redis_server.url)
    queue = ReviewQueue(client, StreamNames("rnd"), consumer="w")
    selector = FrameSelector(
        CompositeSampler({"least_confidence": 1.0}, threshold=0.99, random_rate=0.0, options={}),  # nothing doubtful
        queue,
        DuplicateFilter(client, "rnd", window_s=60, max_distance=0),
        RateLimiter(client, "rnd", per_minute=100),
        ClassQuota(client, "rnd", per_hour=100),
        strata=Strata(window_s=2.0, keep=1, random_share=1.0, seed=3),
    )
    scenes = render_clip(frames=8, width=320, height=180, seed=22, domain="C")
    confident = Detections(np.array([[5, 5, 50, 50]], np.float32), np.array([0.95], np.float32), np.array([1]))
    for seq in range(8):  # four windows of two frames
        result = FrameResult("cam", seq, 1000.0 + seq, "v2", confident, frame_width=320, frame_height=180)
        selector.offer(EncodedFrame("cam", cv2.imencode(".jpg", scenes[seq])[1].tobytes(), seq), result)
    selector.flush()
    items = [d.item for d in queue.take(10, block_ms=10) if d.item is not None]
    assert len(items) == 4 and {i.selection.sampler for i in items} == {"random"}
    assert sorted(i.result.seq // 2 for i in items) == [0, 1, 2, 3]  # one frame from each window
    client.close()


def test_labeling_status_tallies_reasons_only_when_asked(redis_server: EmbeddedRedis) -> None:
    """The worker exports its gauges every round: that status must not scan the review stream (it read 10,000
    entries a second on an idle service)."""
    from visionloop.labeling.status import labeling_status

    client = redis.Redis.from_url(redis_server.url)
    streams = StreamNames("visionloop")
    queue = ReviewQueue(client, streams, consumer="w")
    for n in range(3):
        queue.put(_item(n))
    try:
        full, counts = labeling_status(client, streams), labeling_status(client, streams, by_reason=False)
        assert sum(full["by_reason"].values()) == 3 and "by_reason" not in counts
        assert {k: v for k, v in full.items() if k != "by_reason"} == counts and counts["queued_total"] == 3
    finally:
        client.close()
