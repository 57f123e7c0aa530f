"""Serving metrics, exported through Ray's metrics agent and re-served at the API's ``/metrics``.

Metric objects must be created inside the Ray worker that records them, so each replica builds its own set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from visionloop.core.metric_buckets import BATCH_BOUNDARIES, LATENCY_BOUNDARIES_MS


@dataclass
class DetectorMetrics:
    frames: Any
    batch_size: Any
    stage_latency: Any
    errors: Any

    @classmethod
    def create(cls) -> DetectorMetrics:
        from ray.util import metrics

        return cls(
            frames=metrics.Counter(
                "visionloop_frames", "Frames run through a model.", tag_keys=("model_version", "role")
            ),
            batch_size=metrics.Histogram(
                "visionloop_batch_size", "Frames per model call.", boundaries=BATCH_BOUNDARIES, tag_keys=("role",)
            ),
            stage_latency=metrics.Histogram(
                "visionloop_stage_latency_ms",
                "Per-frame latency of each serving stage (decode, queue, inference, post), milliseconds.",
                boundaries=LATENCY_BOUNDARIES_MS,
                tag_keys=("stage", "role"),
            ),
            errors=metrics.Counter("visionloop_errors", "Errors by kind.", tag_keys=("kind",)),
        )


@dataclass
class RouterMetrics:
    requests: Any
    request_latency: Any
    results_buffered: Any
    results_dropped: Any
    errors: Any
    shadow_frames: Any

    @classmethod
    def create(cls) -> RouterMetrics:
        from ray.util import metrics

        return cls(
            requests=metrics.Counter(
                "visionloop_requests", "HTTP API requests by endpoint and status code.", tag_keys=("endpoint", "status")
            ),
            request_latency=metrics.Histogram(
                "visionloop_request_latency_ms",
                "Time from request received to response, milliseconds.",
                boundaries=LATENCY_BOUNDARIES_MS,
                tag_keys=("endpoint",),
            ),
            results_buffered=metrics.Gauge(
                "visionloop_results_buffered", "Results waiting in memory for Redis to accept them."
            ),
            results_dropped=metrics.Counter(
                "visionloop_results_dropped", "Results lost because Redis stayed away longer than the buffer lasts."
            ),
            errors=metrics.Counter("visionloop_router_errors", "Router errors by kind.", tag_keys=("kind",)),
            shadow_frames=metrics.Counter(
                "visionloop_shadow_frames",
                "Frames offered to the shadow: mirrored, dropped (its queue was full) or error.",
                tag_keys=("outcome",),
            ),
        )
