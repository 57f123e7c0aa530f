"""The alert inputs as Redis holds them: the total latency of the latest drift samples, the drift-state hash.

A sample's latency may come as a total or as a stage mapping, in a field of its own or inside a JSON wrapper field;
a sample carrying none is skipped, an unreadable drift-state scope left out.
"""

from __future__ import annotations

import json
from typing import Any

from visionloop.core.streams import StreamNames
from visionloop.core.streams import text as as_text

LATENCY_SAMPLES = 200  # latest drift samples read for the latency p99
LATENCY_MAX_AGE_S = 300.0  # older samples say nothing about the latency now
# Fields of a drift sample that may carry its total latency (ms), in order of preference: learning.drift_sampler
# writes {"camera_id", "ts", "model_version", "json": {..., "total_ms", "lat": {stage: ms}}}; the rest is tolerance.
LATENCY_FIELDS = ("total_ms", "latency_ms", "lat", "latency_total_ms", "total_latency_ms")
SAMPLE_WRAPPERS = ("json", "sample", "data")  # a field holding the sample as one JSON document
LATENCY_STAGES = ("decode", "queue", "inference", "post")
OPTIONAL_STAGES = ("batch",)  # newer samples split the Detector's batch wait from the source's queue


def _flatten(fields: dict[Any, Any]) -> dict[str, str]:
    """Stream fields as text, with a JSON document in a wrapper field (``json``, ...) spread among them."""
    plain = {as_text(k): as_text(v) for k, v in fields.items()}
    for wrapper in SAMPLE_WRAPPERS:
        try:
            inner = json.loads(plain[wrapper]) if wrapper in plain else None
        except ValueError:
            inner = None
        if isinstance(inner, dict):
            plain.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in inner.items()})
    return plain


def _as_total(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        stages = [value.get(stage) for stage in LATENCY_STAGES]
        if all(isinstance(v, int | float) for v in stages):
            extra = [value.get(stage) for stage in OPTIONAL_STAGES]
            return float(sum(stages) + sum(v for v in extra if isinstance(v, int | float)))  # type: ignore[arg-type]
    return None


def sample_latency(fields: dict[Any, Any]) -> float | None:
    """A drift sample's total latency in ms: a total field, or the sum of a stage mapping (``lat``, or
    ``latency_ms`` as in ``FrameResult.to_dict``). None when it carries neither."""
    plain = _flatten(fields)
    for name in LATENCY_FIELDS:
        try:
            total = _as_total(json.loads(plain[name])) if name in plain else None
        except ValueError:
            total = None
        if total is not None:
            return total
    return None


def read_latencies(store: Any, streams: StreamNames, now: float) -> list[float]:
    """Total latencies of the latest drift samples younger than LATENCY_MAX_AGE_S (entry ids are ms times)."""
    out = []
    for entry_id, fields in store.xrevrange(streams.drift_samples, count=LATENCY_SAMPLES) or []:
        if int(as_text(entry_id).split("-")[0]) / 1000 < now - LATENCY_MAX_AGE_S:
            break
        value = sample_latency(fields)
        if value is not None:
            out.append(value)
    return out


def read_drift_state(store: Any, streams: StreamNames) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scope, raw in (store.hgetall(streams.drift_state) or {}).items():
        try:
            out[as_text(scope)] = json.loads(as_text(raw))
        except ValueError:
            continue
    return out
