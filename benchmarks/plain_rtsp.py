"""The loops a camera user would write without visionloop, measured on the same live cameras and weights:

- ``threads``: per camera, a thread that reads the RTSP stream with ``cv2.VideoCapture`` and calls Ultralytics
  ``predict`` (fp32 torch) on every frame it reads (one model per thread);
- ``sequential``: one thread, one model, a frame from each camera in turn (the dozen lines of a first try);
- ``streams``: Ultralytics' own multi-stream predict: a ``.streams`` source (a reader thread per stream keeping its
  newest frame) predicted in batches of one frame per camera.

Each result's glass-to-result age comes from the frame clock in its picture, as for visionloop's results, so a loop
that falls behind the live stream is seen answering old frames. They are the baselines of ``e2e_speedup``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil

from benchmarks.ages import camera_ages_report
from visionloop.core.frame_clock import FrameClock, read_frame_number

BASELINES = ("threads", "sequential", "streams")


class _Recorder:
    """Ages per camera while counting, and the CPU this process used meanwhile."""

    def __init__(self, cameras: int, clock: FrameClock) -> None:
        self.clock = clock
        self.ages: dict[str, list[float]] = {str(i): [] for i in range(cameras)}
        self.counting = threading.Event()
        self.stop = threading.Event()
        self.read_failures = 0
        self.started: set[int] = set()  # cameras that gave a result (streams open, models loaded)
        self._lock = threading.Lock()

    def result(self, camera: int, image: np.ndarray[Any, Any]) -> None:
        """A result for ``image`` of ``camera`` is there now."""
        self.started.add(camera)
        if not self.counting.is_set():
            return
        number = read_frame_number(image)
        if number is not None:
            with self._lock:
                self.ages[str(camera)].append(self.clock.age_s(number, time.time()))

    def measure(self, seconds: float, warmup_s: float, start_timeout_s: float = 90.0) -> dict[str, Any]:
        """Count for ``seconds``, once every camera gave a result (at most ``start_timeout_s``: opening 16 streams
        one after the other takes a while) and ``warmup_s`` more passed."""
        deadline = time.monotonic() + start_timeout_s
        while len(self.started) < len(self.ages) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(warmup_s)
        process = psutil.Process()
        cpu_start = sum(process.cpu_times()[:2])
        self.counting.set()
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        self.counting.clear()
        cpu = (sum(process.cpu_times()[:2]) - cpu_start) / elapsed
        self.stop.set()
        report = camera_ages_report(self.ages, len(self.ages), elapsed)
        report.update(seconds=elapsed, cpu_cores=cpu, read_failures=self.read_failures)
        return report


def _threads(weights: Path, urls: list[str], imgsz: int, rec: _Recorder) -> list[threading.Thread]:
    from ultralytics import YOLO  # type: ignore[attr-defined]

    def camera(index: int, url: str) -> None:
        model = YOLO(str(weights), task="detect")
        capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        try:
            while not rec.stop.is_set():
                ok, frame = capture.read()
                if not ok:
                    rec.read_failures += 1
                    time.sleep(0.05)
                    continue
                model.predict(frame, imgsz=imgsz, verbose=False)
                rec.result(index, frame)
        finally:
            capture.release()

    return [threading.Thread(target=camera, args=(i, url), daemon=True) for i, url in enumerate(urls)]


def _sequential(weights: Path, urls: list[str], imgsz: int, rec: _Recorder) -> list[threading.Thread]:
    from ultralytics import YOLO  # type: ignore[attr-defined]

    def loop() -> None:
        model = YOLO(str(weights), task="detect")
        captures = [cv2.VideoCapture(url, cv2.CAP_FFMPEG) for url in urls]
        try:
            while not rec.stop.is_set():
                for index, capture in enumerate(captures):
                    ok, frame = capture.read()
                    if not ok:
                        rec.read_failures += 1
                        continue
                    model.predict(frame, imgsz=imgsz, verbose=False)
                    rec.result(index, frame)
        finally:
            for capture in captures:
                capture.release()

    return [threading.Thread(target=loop, daemon=True)]


def _streams(weights: Path, urls: list[str], imgsz: int, rec: _Recorder, workdir: Path) -> list[threading.Thread]:
    from ultralytics import YOLO  # type: ignore[attr-defined]

    source = workdir / f"cameras-{len(urls)}.streams"
    source.write_text("\n".join(urls) + "\n", encoding="utf-8")

    def loop() -> None:
        model = YOLO(str(weights), task="detect")
        results = model.predict(str(source), imgsz=imgsz, stream=True, verbose=False)
        try:
            for number, result in enumerate(results):
                # Each batch holds one frame per camera, in the order of the .streams file.
                rec.result(number % len(urls), result.orig_img)
                if rec.stop.is_set():
                    break
        finally:
            dataset = getattr(model.predictor, "dataset", None)
            if dataset is not None and hasattr(dataset, "close"):
                dataset.close()

    return [threading.Thread(target=loop, daemon=True)]


def baseline_loop(
    kind: str, weights: Path, urls: list[str], imgsz: int, seconds: float, clock: FrameClock, workdir: Path,
    warmup_s: float = 10.0,
) -> dict[str, Any]:  # fmt: skip
    """Run baseline ``kind`` on ``urls`` and report its results' ages per camera over ``seconds`` after
    ``warmup_s`` (models loaded, streams open), with the CPU this process used."""
    rec = _Recorder(len(urls), clock)
    builders: dict[str, Callable[[], list[threading.Thread]]] = {
        "threads": lambda: _threads(weights, urls, imgsz, rec),
        "sequential": lambda: _sequential(weights, urls, imgsz, rec),
        "streams": lambda: _streams(weights, urls, imgsz, rec, workdir),
    }
    threads = builders[kind]()
    for thread in threads:
        thread.start()
    report = rec.measure(seconds, warmup_s)
    for thread in threads:
        thread.join(30)
    report["baseline"] = kind
    return report
