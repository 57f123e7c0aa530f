"""The batching sink: many cameras' sends become few inner calls, each caller gets its own results, failures reach
every caller of the failed batch and nothing else."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from visionloop.core.contracts import EncodedFrame
from visionloop.core.frames import FrameReplies
from visionloop.streaming.batching import BatchingFrameSink


class SlowSink:
    """Answers each frame with "camera:seq" after ``delay_s`` per call, recording every call's size."""

    def __init__(self, delay_s: float, fail_on: str | None = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.calls: list[int] = []
        self.closed = False
        self._lock = threading.Lock()

    def send(self, frames: Sequence[EncodedFrame]) -> FrameReplies:
        with self._lock:
            self.calls.append(len(frames))
        time.sleep(self.delay_s)
        if self.fail_on and any(f.camera_id == self.fail_on for f in frames):
            raise ConnectionError("the Detector is away")
        return [f"{f.camera_id}:{f.seq}" for f in frames]

    def counters(self) -> dict[str, int]:
        return {"results_dropped": 0}

    def close(self, timeout_s: float) -> None:
        self.closed = True


def _cameras_sending(sink: BatchingFrameSink, cameras: int, frames_each: int) -> dict[str, list[object]]:
    got: dict[str, list[object]] = {f"cam{c}": [] for c in range(cameras)}

    def camera(name: str) -> None:
        for seq in range(frames_each):
            try:
                got[name] += sink.send([EncodedFrame(name, seq=seq)])
            except ConnectionError as exc:
                got[name].append(exc)

    threads = [threading.Thread(target=camera, args=(name,)) for name in got]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return got


def test_eight_cameras_share_calls_and_each_gets_its_own_results_in_order() -> None:
    inner = SlowSink(delay_s=0.02)
    sink = BatchingFrameSink(inner, max_frames=16, max_wait_s=0.002, in_flight=1)
    got = _cameras_sending(sink, cameras=8, frames_each=20)
    sink.close(5.0)
    assert got == {name: [f"{name}:{seq}" for seq in range(20)] for name in got}
    assert sum(inner.calls) == 160 and max(inner.calls) <= 16
    # While one call is in flight the other cameras' frames gather: far fewer calls than frames.
    assert len(inner.calls) <= 160 / 4, inner.calls
    assert sink.counters() == {"results_dropped": 0, "batches": len(inner.calls), "batched_frames": 160}
    assert inner.closed


def test_a_failed_call_fails_only_the_frames_in_it() -> None:
    inner = SlowSink(delay_s=0.01, fail_on="cam0")
    sink = BatchingFrameSink(inner, max_frames=1, max_wait_s=0.0, in_flight=2)  # one frame per call
    got = _cameras_sending(sink, cameras=2, frames_each=5)
    sink.close(5.0)
    assert all(isinstance(reply, ConnectionError) for reply in got["cam0"]) and len(got["cam0"]) == 5
    assert got["cam1"] == [f"cam1:{seq}" for seq in range(5)]  # the batcher lived on


def test_a_lone_camera_never_waits_and_a_quiet_one_is_waited_for_only_until_the_deadline() -> None:
    inner = SlowSink(delay_s=0.0)
    sink = BatchingFrameSink(inner, max_frames=16, max_wait_s=0.5, in_flight=1)
    started = time.monotonic()
    for seq in range(5):
        assert sink.send([EncodedFrame("cam0", seq=seq)]) == [f"cam0:{seq}"]
    alone = time.monotonic() - started
    sink.send([EncodedFrame("cam1", seq=0)])  # a second camera, which then goes quiet
    started = time.monotonic()
    assert sink.send([EncodedFrame("cam0", seq=5)]) == ["cam0:5"]
    waited = time.monotonic() - started
    sink.close(5.0)
    assert alone < 0.5  # five frames, not one deadline waited out: the batch held every camera that sends
    assert 0.45 <= waited < 5.0  # cam1 sent within the second: cam0's frame waited for it, until the deadline
    assert inner.calls == [1] * 7


def test_a_closed_sink_refuses_new_frames() -> None:
    sink = BatchingFrameSink(SlowSink(delay_s=0.0))
    sink.close(5.0)
    with pytest.raises(RuntimeError, match="closed"):
        sink.send([EncodedFrame("cam0", seq=1)])
    assert sink.send([]) == []


@pytest.mark.parametrize(("max_frames", "in_flight", "max_wait_s"), [(0, 1, 0.0), (1, 0, 0.0), (1, 1, -1.0)])
def test_bad_settings_are_refused(max_frames: int, in_flight: int, max_wait_s: float) -> None:
    with pytest.raises(ValueError):
        BatchingFrameSink(SlowSink(0.0), max_frames=max_frames, max_wait_s=max_wait_s, in_flight=in_flight)


def test_with_two_batchers_in_flight_a_gathering_batch_is_not_robbed() -> None:
    # Both cameras send while a batch waits for them: the call they share must hold both frames, though a second
    # batcher is idle and could have opened a batch of its own with the second camera's frame.
    inner = SlowSink(delay_s=0.0)
    sink = BatchingFrameSink(inner, max_frames=16, max_wait_s=1.0, in_flight=2)
    got = _cameras_sending(sink, cameras=2, frames_each=5)
    sink.close(5.0)
    assert got == {name: [f"{name}:{seq}" for seq in range(5)] for name in got}
    # The first camera's first frame goes before the second camera is known, so its last one goes alone too.
    assert inner.calls in ([2] * 5, [1, 2, 2, 2, 2, 1]), inner.calls
