"""Read the API's ``/metrics`` (Prometheus text): sums, per-label totals, histogram quantiles, counter rates.

Ray prefixes every metric with ``ray_`` and adds its own labels (node, worker); the helpers here sum over those.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

PREFIX = "ray_"


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_samples(text: str) -> list[Sample]:
    """Every sample of the exposition text; a malformed text raises ValueError."""
    out: list[Sample] = []
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.append(Sample(s.name, dict(s.labels), float(s.value)))
    return out


def _matches(sample: Sample, name: str, match: dict[str, str]) -> bool:
    return sample.name == name and all(sample.labels.get(k) == v for k, v in match.items())


def total(samples: list[Sample], name: str, **match: str) -> float | None:
    """The sum of every series of ``name`` whose labels include ``match``; None when there is none."""
    values = [s.value for s in samples if _matches(s, name, match) and not math.isnan(s.value)]
    return sum(values) if values else None


def sum_by(samples: list[Sample], name: str, label: str, **match: str) -> dict[str, float]:
    """Series of ``name`` summed per value of ``label``."""
    out: dict[str, float] = defaultdict(float)
    for s in samples:
        if _matches(s, name, match) and label in s.labels and not math.isnan(s.value):
            out[s.labels[label]] += s.value
    return dict(out)


def histogram_quantile(samples: list[Sample], base: str, q: float, **match: str) -> float | None:
    """Prometheus' estimate (linear inside the bucket) over every series of ``base``_bucket matching ``match``."""
    buckets: dict[float, float] = defaultdict(float)
    for s in samples:
        if _matches(s, f"{base}_bucket", match) and "le" in s.labels:
            buckets[float(s.labels["le"])] += s.value
    if not buckets:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for bound in bounds:
        cumulative = buckets[bound]
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # above the highest finite bound: the best it can say, like Prometheus
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, cumulative
    return lower


def histogram_mean(samples: list[Sample], base: str, **match: str) -> float | None:
    count = total(samples, f"{base}_count", **match)
    sum_ = total(samples, f"{base}_sum", **match)
    if not count or sum_ is None:
        return None
    return sum_ / count


def rates(previous: dict[str, float], current: dict[str, float], seconds: float) -> dict[str, float]:
    """Per-second increase of counters between two readings (a counter that went down restarted: from 0)."""
    if seconds <= 0:
        return {}
    out = {}
    for key, value in current.items():
        before = previous.get(key)
        if before is None:
            continue
        out[key] = (value - before if value >= before else value) / seconds
    return out


def mean_batch_size(samples: list[Sample]) -> float | None:
    """Frames per model call: frames counted / model calls counted. (Not the histogram's ``_sum``: Ray 2.60's
    exporter showed half the true sum of this histogram in the service, while its count matched.)"""
    frames = total(samples, f"{PREFIX}visionloop_frames_total", role="champion")
    calls = total(samples, f"{PREFIX}visionloop_batch_size_count", role="champion")
    return frames / calls if frames is not None and calls else None
