"""Frame buffers between the capture thread and the sender.

``LATEST`` (live cameras): a tiny ring that keeps the newest frames and drops the oldest, counting them; latency
stays flat when the model is slower than the camera. ``EVERY`` (files): the capture thread waits for room, so
no frame is skipped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt


class BufferMode(StrEnum):
    LATEST = "latest"
    EVERY = "every"


I420_FORMATS = frozenset({"yuv420p", "yuvj420p"})
# 8-bit pixel formats whose first plane is the luma (Y) at full size: what H.264/H.265/MJPEG decoders give.
LUMA_FIRST_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)


def to_bgr(picture: Any) -> npt.NDArray[np.uint8]:
    """A decoded ``av.VideoFrame`` as BGR. 4:2:0 pictures (what H.264 cameras send) go through OpenCV's I420
    conversion, about three times cheaper than libswscale's here (0.13 against 0.41 ms at 640x360), within 3 grey
    levels of it; other formats through PyAV."""
    if picture.format.name in I420_FORMATS and picture.width % 2 == 0 and picture.height % 2 == 0:
        import cv2

        planar = picture.to_ndarray(format="yuv420p")
        bgr: npt.NDArray[np.uint8] = cv2.cvtColor(planar, cv2.COLOR_YUV2BGR_I420)
        return bgr
    converted: npt.NDArray[np.uint8] = picture.to_ndarray(format="bgr24")
    return converted


class CapturedFrame:
    """A decoded frame waiting for the sender. ``picture`` stays as the decoder gave it (an ``av.VideoFrame``) until
    ``image`` is first read: a live camera that is behind drops frames unconverted (the BGR conversion is about a
    quarter of a camera's decode cost) and its buffer holds YUV, half the bytes. A frame put into an empty buffer is
    the next to go unless the sender is behind, so the capture thread converts it before the put: a camera that keeps
    up pays no conversion on its latency path. A picture that is already an array is taken as BGR."""

    __slots__ = ("_image", "_picture", "capture_ts", "convert_ms", "decode_ms", "queued_at", "seq")

    def __init__(self, picture: Any, seq: int, capture_ts: float, decode_ms: float, queued_at: float) -> None:
        self._picture = picture
        self._image: npt.NDArray[np.uint8] | None = picture if isinstance(picture, np.ndarray) else None
        self.seq = seq
        self.capture_ts = capture_ts  # wall clock when the frame was decoded
        self.decode_ms = decode_ms
        self.queued_at = queued_at  # monotonic
        self.convert_ms = 0.0

    @property
    def converted(self) -> bool:
        return self._image is not None

    @property
    def image(self) -> npt.NDArray[np.uint8]:
        """The frame as a BGR array, converted once, on first use (raises what the conversion raises)."""
        if self._image is None:
            started = time.perf_counter()
            self._image = to_bgr(self._picture)
            self.convert_ms = (time.perf_counter() - started) * 1e3
        return self._image

    def gray(self) -> npt.NDArray[np.uint8]:
        """The picture's grey levels: the decoder's own Y plane where there is one (no conversion at all), else
        the BGR image's grey (motion gating reads this)."""
        picture = self._picture
        if not isinstance(picture, np.ndarray) and picture.format.name in LUMA_FIRST_FORMATS:
            plane = picture.planes[0]
            rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            return rows[:, : plane.width]
        import cv2

        grey: npt.NDArray[np.uint8] = cv2.cvtColor(self.image, cv2.COLOR_BGR2GRAY).astype(np.uint8, copy=False)
        return grey


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
