"""Camera-like load on the HTTP API: N clients, each sending groups of frames for a fixed time."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from visionloop.cli.client import ApiClient


@dataclass
class LoadReport:
    frames: int = 0
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    request_latency_ms: list[float] = field(default_factory=list)
    stage_ms: dict[str, list[float]] = field(default_factory=dict)
    detections: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.request_latency_ms, q)) if self.request_latency_ms else float("nan")

    def add_result(self, result: dict[str, Any]) -> None:
        """Count one answered frame (a FrameResult as JSON): its detections and its per-stage latency."""
        self.frames += 1
        self.detections += len(result.get("detections", {}).get("boxes", []))
        for stage, value in result.get("latency_ms", {}).items():
            self.stage_ms.setdefault(stage, []).append(value)

    def stage_median(self, stage: str) -> float:
        values = self.stage_ms.get(stage, [])
        return float(np.median(values)) if values else float("nan")


def _client_loop(
    base_url: str,
    token: str,
    frames: Sequence[bytes],
    camera_id: str,
    frames_per_request: int,
    stop_at: float,
    report: LoadReport,
    lock: threading.Lock,
) -> None:
    position = 0
    with ApiClient(base_url, token) as client:
        while time.monotonic() < stop_at:
            group = [frames[(position + i) % len(frames)] for i in range(frames_per_request)]
            position += frames_per_request
            started = time.perf_counter()
            try:
                if frames_per_request == 1:
                    results = [client.detect(group[0], camera_id=camera_id)]
                else:
                    results = client.detect_batch(group, camera_id=camera_id)["results"]
            except Exception:  # counted; a load generator keeps going
                with lock:
                    report.errors += 1
                continue
            elapsed = (time.perf_counter() - started) * 1e3
            with lock:
                report.requests += 1
                report.request_latency_ms.append(elapsed)
                for result in results:
                    report.add_result(result)


def run_clients(
    base_url: str,
    token: str,
    frames: Sequence[bytes],
    clients: int = 4,
    seconds: float = 10.0,
    frames_per_request: int = 8,
) -> LoadReport:
    """Drive the API from ``clients`` threads (camera ids cam-0..) for ``seconds``; returns what they saw."""
    report, lock = LoadReport(), threading.Lock()
    started = time.monotonic()
    stop_at = started + seconds
    threads = [
        threading.Thread(
            target=_client_loop,
            args=(base_url, token, frames, f"cam-{i}", frames_per_request, stop_at, report, lock),
            daemon=True,
        )
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.monotonic() - started
    return report
