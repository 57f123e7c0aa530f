"""Accuracy against human labels on the random control arm: the monitor's report (Redis) or its gauges."""

from __future__ import annotations

from typing import Any

import pandas as pd  # type: ignore[import-untyped]

from visionloop.dashboards.promtext import PREFIX, Sample, total

METRICS = ("map50", "precision", "recall")
BOUNDS = ("estimate", "low", "high")


def accuracy_table(samples: list[Sample]) -> pd.DataFrame:
    """One row per metric that has an estimate: estimate, CI low and high, and the champion's gold reference."""
    rows = []
    for metric in METRICS:
        values = {b: total(samples, f"{PREFIX}visionloop_accuracy", metric=metric, bound=b) for b in BOUNDS}
        if values["estimate"] is None:
            continue
        reference = total(samples, f"{PREFIX}visionloop_accuracy_reference", metric=metric)
        rows.append({"metric": metric, **values, "reference": reference})
    return pd.DataFrame(rows, columns=["metric", *BOUNDS, "reference"])


def accuracy_frames(samples: list[Sample]) -> int | None:
    value = total(samples, f"{PREFIX}visionloop_accuracy_frames")
    return None if value is None else int(value)


def report_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per (scope, metric) the report could score: estimate and CI; the map50 rows carry the reference."""
    reference = (report.get("reference") or {}).get("map50")
    scopes = {"_all": report.get("overall") or {}, **(report.get("per_camera") or {})}
    rows = []
    for scope, scored in scopes.items():
        if not isinstance(scored, dict) or scored.get("status") != "ok":
            continue
        for metric in METRICS:
            values = scored.get(metric) or {}
            if values.get("estimate") is None:
                continue
            rows.append(
                {
                    "scope": scope,
                    "metric": metric,
                    **{b: values.get(b) for b in BOUNDS},
                    "reference": reference if metric == "map50" else None,
                    "frames": scored.get("frames"),
                }
            )
    return pd.DataFrame(rows, columns=["scope", "metric", *BOUNDS, "reference", "frames"])
