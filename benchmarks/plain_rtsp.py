"""The plain loop a camera user would write without visionloop: per camera, a thread that reads the RTSP stream
with ``cv2.VideoCapture`` and calls Ultralytics ``predict`` (fp32 torch) on every frame it reads.

It is the end-to-end baseline of ``e2e_speedup``: the same simulated cameras, the same champion weights, the same
input size, measured in the same run. With the site's frame clock it also measures each result's glass-to-result
age, the way visionloop's results are measured: a loop that falls behind the live stream answers old frames.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from benchmarks.ages import age_report
from visionloop.core.frame_clock import FrameClock, read_frame_number


@dataclass
class LoopCounts:
    frames: list[int] = field(default_factory=list)
    read_failures: int = 0
    ages_s: list[float] = field(default_factory=list)
    unclocked: int = 0


def plain_rtsp_loop_fps(
    weights: Path, urls: list[str], imgsz: int, seconds: float, warmup_s: float = 5.0, clock: FrameClock | None = None
) -> dict[str, Any]:
    """Frames/s predicted by one thread per camera over ``seconds`` (after ``warmup_s``), its read failures and,
    with the cameras' ``clock``, the ages of its results (``benchmarks.ages``)."""
    from ultralytics import YOLO  # type: ignore[attr-defined]

    counts = LoopCounts(frames=[0] * len(urls))
    counting = threading.Event()
    stop = threading.Event()

    def camera(index: int, url: str) -> None:
        model = YOLO(str(weights), task="detect")
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        try:
            while not stop.is_set():
                ok, frame = capture.read()
                if not ok:
                    counts.read_failures += 1
                    time.sleep(0.05)
                    continue
                number = read_frame_number(frame) if clock is not None else None
                model.predict(frame, imgsz=imgsz, verbose=False)
                if counting.is_set():
                    counts.frames[index] += 1
                    if clock is not None and number is not None:
                        counts.ages_s.append(clock.age_s(number, time.time()))
                    elif clock is not None:
                        counts.unclocked += 1
        finally:
            capture.release()

    threads = [threading.Thread(target=camera, args=(i, url), daemon=True) for i, url in enumerate(urls)]
    for thread in threads:
        thread.start()
    time.sleep(warmup_s)
    counting.set()
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    counted = sum(counts.frames)
    stop.set()
    for thread in threads:
        thread.join(30)
    out = {"fps": counted / elapsed, "cameras": len(urls), "seconds": elapsed, "read_failures": counts.read_failures}
    if clock is not None:
        out.update(age_report(counts.ages_s, elapsed, counts.unclocked))
    return out
