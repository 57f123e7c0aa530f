"""Shadow mode's pieces: disagreement at IoU 0.5, the operational summary, and the bounded mirror queue."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from tests.conftest import eventually
from visionloop.core.contracts import Detections, EncodedFrame, FrameResult, ModelRole, StageLatency
from visionloop.core.settings import ShadowSettings
from visionloop.serving.shadow import ShadowMirror, disagree, pair_fields, summarize_pairs


def dets(*boxes: tuple[float, float, float, float, float, int]) -> Detections:
    arr = np.array(boxes, np.float32).reshape(-1, 6)
    return Detections(arr[:, :4], arr[:, 4], arr[:, 5].astype(np.int32))


BOX = (10, 10, 50, 50, 0.9, 1)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (dets(), dets(), False),  # both see nothing
        (dets(BOX), dets(BOX), False),
        (dets(BOX), dets((12, 12, 52, 52, 0.8, 1)), False),  # IoU 0.82
        (dets(BOX), dets((30, 30, 70, 70, 0.8, 1)), True),  # IoU 0.14
        (dets(BOX), dets((10, 10, 50, 50, 0.9, 2)), True),  # another class
        (dets(BOX), dets(), True),  # a missed object
        (dets(BOX), dets(BOX, (60, 60, 90, 90, 0.7, 0)), True),  # a false alarm
        (dets(BOX), dets(BOX, (60, 60, 90, 90, 0.1, 0)), False),  # below the operating threshold: not counted
        (dets(BOX, (60, 60, 90, 90, 0.9, 0)), dets((61, 61, 90, 90, 0.8, 0), BOX), False),  # order does not matter
    ],
)
def test_disagreement_at_iou_half(a: Detections, b: Detections, expected: bool) -> None:
    assert disagree(a, b, threshold=0.25) is expected
    assert disagree(b, a, threshold=0.25) is expected


def result(version: str, detections: Detections, role: ModelRole, inference_ms: float, seq: int = 1) -> FrameResult:
    return FrameResult("cam", seq, 100.0 + seq, version, detections, StageLatency(inference_ms=inference_ms), role)


def test_summary_of_pairs_counts_only_the_latest_shadow() -> None:
    entries: list[dict[Any, Any]] = []
    for seq in range(10):  # an older shadow's pairs, which must not count
        entries.append(pair_fields(result("v1", dets(), ModelRole.CHAMPION, 5, seq),
                                   result("v2", dets(BOX), ModelRole.SHADOW, 50, seq), 0.25))  # fmt: skip
    for seq in range(100):
        shadow = dets(BOX) if seq % 4 else dets()  # disagrees on every 4th frame
        entries.append(pair_fields(result("v1", dets(BOX), ModelRole.CHAMPION, 10 + seq % 10, seq),
                                   result("v3", shadow, ModelRole.SHADOW, 20, seq), 0.25))  # fmt: skip
    entries.append({"shadow_version": "v3", "champion_version": "v1", "error": "boom"})
    summary = summarize_pairs([{k.encode(): v.encode() for k, v in e.items()} for e in entries])  # as Redis gives
    assert summary["shadow_version"] == "v3" and summary["pairs"] == 100 and summary["errors"] == 1
    assert summary["disagreement_rate"] == 0.25
    assert summary["champion"]["latency_p50_ms"] == pytest.approx(14.5)
    assert summary["champion"]["latency_p99_ms"] == pytest.approx(19.0)
    assert summary["shadow"]["latency_p99_ms"] == 20.0
    assert summary["champion"]["detections_per_frame"] == 1.0 and summary["shadow"]["detections_per_frame"] == 0.75
    assert summary["shadow"]["mean_confidence"] == pytest.approx(0.9 * 0.75, abs=1e-3)
    assert summarize_pairs([]) == {"shadow_version": None, "pairs": 0, "errors": 0}


@dataclass
class Reply:
    detections: Detections | None
    latency: StageLatency
    model_version: str
    width: int = 64
    height: int = 64
    error: str | None = None


class SlowShadow:
    """A stand-in for the shadow Detector's handle that answers only when released (the unit seam)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls: list[int] = []
        self.detect = self

    async def remote(self, frames: list[bytes]) -> list[Reply]:
        self.calls.append(len(frames))
        await self.release.wait()
        return [Reply(dets(BOX), StageLatency(inference_ms=3), "v9") for _ in frames]


def test_a_full_queue_drops_and_counts_and_never_blocks_the_caller() -> None:
    async def scenario() -> tuple[ShadowMirror, SlowShadow, list[bool], float]:
        shadow = SlowShadow()
        settings = ShadowSettings(queue_size=4, max_batch=2, mirror_fraction=1.0)
        mirror = ShadowMirror(shadow, settings, "redis://127.0.0.1:1/0", "pairs", 0.25, socket_timeout_s=0.2)
        frame = EncodedFrame("cam", b"jpeg")
        champion = result("v1", dets(BOX), ModelRole.CHAMPION, 5)
        offered_in = 0.0  # the time spent in offer() alone: it must never wait for the shadow

        def offer() -> bool:
            nonlocal offered_in
            started = time.perf_counter()
            try:
                return mirror.offer(frame, champion)
            finally:
                offered_in += time.perf_counter() - started

        accepted = [offer()]
        await eventually(lambda: shadow.calls == [1], 10)  # the worker takes the first frame and waits on the shadow
        accepted += [offer() for _ in range(10)]
        shadow.release.set()
        # The rest drain; pairs fail to reach the (absent) Redis and are counted.
        await eventually(lambda: mirror.counters.publish_errors >= 5, 10)
        await mirror.shutdown(1.0)
        return mirror, shadow, accepted, offered_in

    mirror, shadow, accepted, offered_in = asyncio.run(scenario())
    assert accepted == [True] + [True] * 4 + [False] * 6  # 1 in flight + 4 queued, then full
    assert mirror.counters.mirrored == 5 and mirror.counters.dropped == 6
    assert offered_in < 0.2  # offering never waited for the shadow
    assert shadow.calls == [1, 2, 2]  # batches of at most max_batch
    assert mirror.counters.publish_errors == 5 and mirror.counters.published == 0
