"""Frame buffers between the capture thread and the sender.

``LATEST`` (live cameras): a tiny ring that keeps the newest frames and drops the oldest, counting them; latency
stays flat when the model is slower than the camera. ``EVERY`` (files): the capture thread waits for room, so
no frame is skipped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt


class BufferMode(StrEnum):
    LATEST = "latest"
    EVERY = "every"


@dataclass(frozen=True)
class CapturedFrame:
    image: npt.NDArray[np.uint8]
    seq: int
    capture_ts: float  # wall clock when the frame was decoded
    decode_ms: float
    queued_at: float  # monotonic


class FrameBuffer:
    def __init__(self, mode: BufferMode, capacity: int = 2) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.mode = mode
        self.capacity = capacity
        self._frames: deque[CapturedFrame] = deque()
        self._cond = threading.Condition()
        self.skipped = 0
        self._closed = False

    def put(self, frame: CapturedFrame, timeout_s: float = 1.0) -> bool:
        """Add a frame; in EVERY mode wait (up to ``timeout_s``) for room. False if it was not added."""
        with self._cond:
            if self.mode is BufferMode.EVERY:
                deadline = time.monotonic() + timeout_s
                while len(self._frames) >= self.capacity and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            elif len(self._frames) >= self.capacity:
                self._frames.popleft()
                self.skipped += 1
            if self._closed:
                return False
            self._frames.append(frame)
            self._cond.notify_all()
            return True

    def take(self, max_frames: int, timeout_s: float) -> list[CapturedFrame]:
        """Up to ``max_frames`` frames, oldest first; waits up to ``timeout_s`` for the first."""
        with self._cond:
            if not self._frames:
                self._cond.wait(timeout_s)
            out: list[CapturedFrame] = []
            while self._frames and len(out) < max_frames:
                out.append(self._frames.popleft())
            if out:
                self._cond.notify_all()
            return out

    def __len__(self) -> int:
        return len(self._frames)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._frames.clear()
            self._cond.notify_all()
