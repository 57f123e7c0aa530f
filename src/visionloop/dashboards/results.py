"""Per-stage latency and frames per second over time, from the latest entries of the results stream.

The stream holds what the serving stack published (a ``FrameResult`` per frame), so these views need no history
kept by the dashboard: each refresh re-reads the newest entries and bins them by capture time.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import redis

from visionloop.core.streams import StreamNames
from visionloop.dashboards.errors import reading, text

STAGES = ("decode", "queue", "batch", "inference", "post")
RESULTS_READ = 600  # entries per refresh: enough for a minute of a few cameras, cheap to parse


def recent_results(client: redis.Redis, streams: StreamNames, count: int = RESULTS_READ) -> list[dict[str, Any]]:
    """The latest results (FrameResult.to_dict), oldest first; entries that do not parse are skipped."""
    with reading("results"):
        raw: list[Any] = client.xrevrange(streams.results, count=count) or []  # type: ignore[assignment]
    out = []
    for _, fields in reversed(raw):
        value = (fields or {}).get(b"json")
        try:
            result = json.loads(text(value)) if value is not None else None
        except ValueError:
            continue
        if isinstance(result, dict) and "capture_ts" in result:
            out.append(result)
    return out


def latency_frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per result: time, camera, role, and each stage's latency in ms."""
    rows = []
    for r in results:
        lat = r.get("latency_ms") or {}
        rows.append(
            {
                "time": pd.to_datetime(float(r["capture_ts"]), unit="s"),
                "camera": r.get("camera_id", "?"),
                "role": r.get("role", "champion"),
                **{stage: float(lat.get(stage, 0.0)) for stage in STAGES},
            }
        )
    return pd.DataFrame(rows, columns=["time", "camera", "role", *STAGES])


def stage_percentiles_over_time(results: list[dict[str, Any]], bin_s: float = 5.0) -> pd.DataFrame:
    """Per time bin: p50 and p99 of every stage (columns ``inference p99`` ...), indexed by the bin's start."""
    frame = latency_frame(results)
    if frame.empty:
        return pd.DataFrame()
    grouped = frame.set_index("time")[list(STAGES)].resample(f"{int(bin_s * 1000)}ms")
    p50 = grouped.quantile(0.5).add_suffix(" p50")
    p99 = grouped.quantile(0.99).add_suffix(" p99")
    out = pd.concat([p50, p99], axis=1).dropna(how="all")
    return out[[f"{s} {p}" for s in STAGES for p in ("p50", "p99")]]


def stage_percentiles(results: list[dict[str, Any]]) -> pd.DataFrame:
    """p50 and p99 of each stage over all the given results: rows are stages."""
    frame = latency_frame(results)
    if frame.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {"p50 ms": frame[list(STAGES)].quantile(0.5), "p99 ms": frame[list(STAGES)].quantile(0.99)}
    ).round(2)


def fps_over_time(results: list[dict[str, Any]], bin_s: float = 5.0) -> pd.DataFrame:
    """Results per second per camera, per time bin (the champion's answered frames)."""
    frame = latency_frame(results)
    frame = frame[frame["role"] == "champion"]
    if frame.empty:
        return pd.DataFrame()
    counts = frame.groupby([pd.Grouper(key="time", freq=f"{int(bin_s * 1000)}ms"), "camera"]).size()
    per_bin = counts.unstack("camera").fillna(0.0) / bin_s
    # The newest bin is still filling: showing it would draw a false drop at the end of the chart.
    return per_bin.iloc[:-1] if len(per_bin) > 1 else per_bin
