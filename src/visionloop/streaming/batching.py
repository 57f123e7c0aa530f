"""Many cameras' frames into one model call: a sink that gathers the frames every camera of a process sends.

A camera's sender thread calls ``send`` and waits for its own results, as it would with any sink; behind it, a few
batcher threads each take the oldest waiting call, add every other call already waiting (up to ``max_frames``), wait
at most ``max_wait_s`` for more while the batch is small, and make one call to the inner sink for all of them. While
a call is in flight the next batch fills by itself, so under load batches grow without anyone waiting for a clock;
when the cameras are few, a frame waits ``max_wait_s`` at most, and not at all once every camera that sent in the
last second is in the batch (a lone camera never waits). A batch never waits for every camera: a camera that
stalls (a keyframe, a reconnect) is simply not in it.

The inner sink's cost per call (a Ray hop: ~1 ms of CPU on each side plus Serve's routing) is paid once per batch
instead of once per frame, which is what issue 14's profile put at 40% of a camera worker's CPU.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from visionloop.core.contracts import EncodedFrame
from visionloop.core.frames import FrameReplies, FrameSink

ACTIVE_S = 1.0  # a camera that sent within this long is one a batch may wait for


@dataclass
class _Call:
    frames: list[EncodedFrame]
    reply: Future[FrameReplies] = field(default_factory=Future)


class BatchingFrameSink:
    """A FrameSink for many threads in one process; one inner call per gathered batch (see the module's docstring).

    ``in_flight`` batcher threads overlap one batch's model call with the next one's gathering; the inner sink must
    take calls from that many threads at once."""

    def __init__(self, inner: FrameSink, max_frames: int = 16, max_wait_s: float = 0.004, in_flight: int = 2) -> None:
        if max_frames < 1 or in_flight < 1 or max_wait_s < 0:
            raise ValueError("max_frames and in_flight must be >= 1 and max_wait_s >= 0")
        self.inner = inner
        self.max_frames = max_frames
        self.max_wait_s = max_wait_s
        self._calls: deque[_Call] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._gathering = False  # one batcher at a time gathers; the others wait their turn (or for their call)
        self._last_sent: dict[str, float] = {}  # camera -> when it last sent (monotonic)
        self.batches = 0
        self.frames = 0
        self._threads = [threading.Thread(target=self._run, name=f"batcher-{i}", daemon=True) for i in range(in_flight)]
        for thread in self._threads:
            thread.start()

    def send(self, frames: Sequence[EncodedFrame]) -> FrameReplies:
        """The results of ``frames`` (in order), from the batch they went in; raises what the inner call raised."""
        call = _Call(list(frames))
        if not call.frames:
            return []
        with self._cond:
            if self._closed:
                raise RuntimeError("the batching sink is closed")
            now = time.monotonic()
            for frame in call.frames:
                self._last_sent[frame.camera_id] = now
            self._calls.append(call)
            self._cond.notify_all()  # the batcher that is gathering, whichever thread the wait woke
        return call.reply.result()

    def _gather(self) -> list[_Call] | None:
        """The next batch: the oldest call, every call waiting behind it, and those arriving within ``max_wait_s``
        while the batch is short of ``max_frames``. None once closed and drained."""
        with self._cond:
            while not self._calls or self._gathering:
                if self._closed and not self._calls:
                    return None
                self._cond.wait()
            self._gathering = True
            try:
                return self._gathered()
            finally:
                self._gathering = False
                self._cond.notify_all()

    def _gathered(self) -> list[_Call]:
        """(With the condition held.) The oldest call and those that join it."""
        batch = [self._calls.popleft()]
        size = len(batch[0].frames)
        deadline = time.monotonic() + self.max_wait_s
        while size < self.max_frames:
            if self._calls and size + len(self._calls[0].frames) <= self.max_frames:
                call = self._calls.popleft()
                batch.append(call)
                size += len(call.frames)
                continue
            remaining = deadline - time.monotonic()
            if self._calls or remaining <= 0 or self._closed or self._everyone_in(batch):
                break  # the next call would overflow the batch, time is up, or nobody else is sending
            self._cond.wait(remaining)
        return batch

    def _everyone_in(self, batch: list[_Call]) -> bool:
        """Whether every camera that sent within the last second has frames in ``batch`` (waiting is pointless)."""
        now = time.monotonic()
        for camera, at in list(self._last_sent.items()):
            if now - at > ACTIVE_S:
                del self._last_sent[camera]  # bounded: cameras that went quiet are forgotten
        present = {frame.camera_id for call in batch for frame in call.frames}
        return present.issuperset(self._last_sent)

    def _run(self) -> None:
        while (batch := self._gather()) is not None:
            frames = [frame for call in batch for frame in call.frames]
            try:
                replies = self.inner.send(frames)
                if len(replies) != len(frames):
                    raise RuntimeError(f"the sink answered {len(replies)} results for {len(frames)} frames")
            except Exception as exc:  # every caller in the batch gets the failure, the batcher goes on
                for call in batch:
                    call.reply.set_exception(exc)
                continue
            with self._cond:
                self.batches += 1
                self.frames += len(frames)
            start = 0
            for call in batch:
                call.reply.set_result(replies[start : start + len(call.frames)])
                start += len(call.frames)

    def counters(self) -> dict[str, int]:
        return {**self.inner.counters(), "batches": self.batches, "batched_frames": self.frames}

    def close(self, timeout_s: float) -> None:
        """Answer the calls still waiting, stop the batchers, then close the inner sink."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.inner.close(max(0.0, deadline - time.monotonic()))
