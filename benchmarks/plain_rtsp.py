"""The plain loop a camera user would write without visionloop: per camera, a thread that reads the RTSP stream
with ``cv2.VideoCapture`` and calls Ultralytics ``predict`` (fp32 torch) on every frame it reads.

It is the end-to-end baseline of ``e2e_speedup``: the same simulated cameras, the same champion weights, the same
input size, measured in the same run.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2


@dataclass
class LoopCounts:
    frames: list[int] = field(default_factory=list)
    read_failures: int = 0


def plain_rtsp_loop_fps(
    weights: Path, urls: list[str], imgsz: int, seconds: float, warmup_s: float = 5.0
) -> dict[str, float]:
    """Frames/s predicted by one thread per camera over ``seconds`` (after ``warmup_s``), and its read failures."""
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
                model.predict(frame, imgsz=imgsz, verbose=False)
                if counting.is_set():
                    counts.frames[index] += 1
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
    return {"fps": counted / elapsed, "cameras": len(urls), "seconds": elapsed, "read_failures": counts.read_failures}
