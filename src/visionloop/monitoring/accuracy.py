"""Rolling accuracy of the current champion against human labels, on the random control arm only.

Drift statistics say the traffic changed; only human labels say whether the champion got worse (confidence cannot
see the objects it misses). The frames of the random arm were picked at random, not where the champion looked
unsure, so they estimate its accuracy on the traffic the cameras send now without bias. The latest
``drift.accuracy_window`` of them are replayed through the evaluation's predict path (ONNX Runtime, the champion's
``model.onnx``), matched with the A/B's cached matching (Ultralytics' validator at IoU 0.5) and scored: mAP50, and
precision and recall at the serving threshold, each with a seeded bootstrap CI over frames (boxes of one frame are
not independent, so frames are the unit resampled). Predictions are cached per (model version, frame): a new label
costs one prediction, a new champion one pass over the window.

Here: :class:`AccuracyMonitor`, which runs it periodically. The report is :mod:`.accuracy_report`'s, the random
arm's frames :mod:`.accuracy_index`'s, the statistics :mod:`.accuracy_stats`'; their names are re-exported here.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import redis

from visionloop.core.settings import Settings
from visionloop.core.streams import ACCURACY_STATE_FIELD, StreamNames
from visionloop.monitoring.accuracy_index import CAMERA_FIELD, LabelledFrame, RandomArmIndex, parse_frame_id
from visionloop.monitoring.accuracy_report import (
    ALL_SCOPE,
    MATCH_IOU,
    PredictionCache,
    Predictor,
    accuracy_report,
    not_enough,
    reference_of,
)
from visionloop.monitoring.accuracy_stats import CONFIDENCE, METRICS, RESAMPLES, score_matches

__all__ = [
    "ALL_SCOPE",
    "CAMERA_FIELD",
    "CONFIDENCE",
    "MATCH_IOU",
    "METRICS",
    "RESAMPLES",
    "AccuracyMonitor",
    "LabelledFrame",
    "PredictionCache",
    "Predictor",
    "RandomArmIndex",
    "accuracy_report",
    "not_enough",
    "parse_frame_id",
    "reference_of",
    "score_matches",
]

log = logging.getLogger(__name__)


class AccuracyMonitor:
    """Keeps the prediction cache between evaluations, stores each report in the drift-state hash and sets the
    accuracy gauges when it runs inside Ray (the drift monitor actor calls :meth:`update` periodically)."""

    def __init__(
        self,
        settings: Settings,
        resamples: int = RESAMPLES,
        predict: Predictor | None = None,
    ) -> None:
        self._settings = settings
        self._resamples = resamples
        self._predict = predict
        self.cache = PredictionCache()
        self._index = RandomArmIndex(settings.var.labels_incoming)
        self._gauges: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None

    def update(self, store: Any = None) -> dict[str, Any]:
        """Recompute (cheap when nothing changed), store in Redis (``store``: a redis client) and set gauges."""
        report = accuracy_report(
            self._settings, self.cache, resamples=self._resamples, predict=self._predict, index=self._index
        )
        self.last = report
        if store is not None:
            key = StreamNames(self._settings.redis.stream_prefix).drift_state
            try:
                store.hset(key, ACCURACY_STATE_FIELD, json.dumps(report, separators=(",", ":")))
            except (redis.RedisError, OSError) as exc:  # Redis away: the gauges and the next round still work
                log.warning("accuracy report not stored: %s", exc)
        self._set_gauges(report)
        return report

    def _metrics(self) -> dict[str, Any] | None:
        if self._gauges is None:
            try:
                import ray
                from ray.util import metrics

                if not ray.is_initialized():
                    return None
                self._gauges = {
                    "accuracy": metrics.Gauge(
                        "visionloop_accuracy",
                        "Champion accuracy on the random-arm human labels (estimate and 95% CI bounds).",
                        tag_keys=("metric", "bound"),
                    ),
                    "frames": metrics.Gauge("visionloop_accuracy_frames", "Random-arm labelled frames scored."),
                    "reference": metrics.Gauge(
                        "visionloop_accuracy_reference",
                        "The champion's own mAP50 (gold sets) accuracy is compared with.",
                        tag_keys=("metric",),
                    ),
                }
            except Exception as exc:  # no Ray, or no metrics agent: reports still go to Redis
                log.debug("accuracy gauges unavailable: %s", exc)
                return None
        return self._gauges

    def _set_gauges(self, report: dict[str, Any]) -> None:
        gauges = self._metrics()
        if gauges is None:
            return
        gauges["frames"].set(float(report.get("frames") or 0))
        reference = (report.get("reference") or {}).get("map50")
        if reference is not None:
            gauges["reference"].set(float(reference), tags={"metric": "map50"})
        overall = report.get("overall") or {}
        for metric in METRICS:
            values = overall.get(metric) or {} if overall.get("status") == "ok" else {}
            for bound in ("estimate", "low", "high"):
                value = values.get(bound)
                # NaN while there is no number (too few labels): a stale value must not keep an alert firing.
                number = float(value) if value is not None and math.isfinite(value) else math.nan
                gauges["accuracy"].set(number, tags={"metric": metric, "bound": bound})
