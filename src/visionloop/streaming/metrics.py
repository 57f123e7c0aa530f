"""Per-camera metrics (Ray metrics, served at the API's /metrics). Labels carry camera ids, never URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visionloop.core.metric_buckets import LATENCY_BOUNDARIES_MS
from visionloop.streaming.state import CameraState


@dataclass
class CameraMetrics:
    frames: Any
    state_gauge: Any
    capture_to_result: Any

    @classmethod
    def create(cls) -> CameraMetrics:
        from ray.util import metrics

        return cls(
            frames=metrics.Counter(
                "visionloop_camera_frames",
                "Camera frames by kind: frames_in (decoded), frames_processed, frames_skipped, frames_gated (held back "
                "by motion gating), reconnects.",
                tag_keys=("camera", "kind"),
            ),
            state_gauge=metrics.Gauge(
                "visionloop_camera_state",
                "1 for the camera's current state, 0 otherwise.",
                tag_keys=("camera", "state"),
            ),
            capture_to_result=metrics.Histogram(
                "visionloop_camera_latency_ms",
                "Capture to result, milliseconds.",
                boundaries=LATENCY_BOUNDARIES_MS,
                tag_keys=("camera",),
            ),
        )

    def count(self, camera: str, kind: str, value: int) -> None:
        self.frames.inc(value, tags={"camera": camera, "kind": kind})

    def state(self, camera: str, current: str) -> None:
        for state in CameraState:
            self.state_gauge.set(1.0 if state.value == current else 0.0, tags={"camera": camera, "state": state.value})

    def latency(self, camera: str, value_ms: float) -> None:
        self.capture_to_result.observe(value_ms, tags={"camera": camera})
