"""Live: frames per second, per-stage latency over time, batch size, queues, replicas, a live annotated frame."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from visionloop.dashboards import results, snapshots
from visionloop.dashboards.annotate import draw_boxes
from visionloop.dashboards.context import DashboardContext
from visionloop.dashboards.labeling_data import queue_counts
from visionloop.dashboards.promtext import PREFIX, Sample, histogram_quantile, mean_batch_size, rates, sum_by, total
from visionloop.dashboards.views import common

COUNTER_KINDS = ("frames_in", "frames_processed", "frames_skipped")
HISTORY_KEY = "live_rates"
RATE_WINDOW_S = 20.0  # frames/s are averaged over about this long
RATE_MIN_SPAN_S = 3.0  # and shown once the oldest reading is at least this old
HISTORY_POINTS = 300


def _frame_rates(samples: list[Sample]) -> dict[str, float] | None:
    """Frames/s per kind over the last RATE_WINDOW_S of this session's readings (None until one is old enough).

    Ray's exporter refreshes counters every few seconds, so the difference between two refreshes of the page is
    often 0 or a burst: a rate over a longer window reads true."""
    totals = sum_by(samples, f"{PREFIX}visionloop_camera_frames_total", "kind")
    now = time.time()
    readings: list[tuple[float, dict[str, float]]] = st.session_state.setdefault("live_counters", [])
    readings.append((now, totals))
    while len(readings) > 2 and now - readings[1][0] >= RATE_WINDOW_S:
        readings.pop(0)
    oldest = readings[0]
    if now - oldest[0] < RATE_MIN_SPAN_S:
        return None
    per_s = rates(oldest[1], totals, now - oldest[0])
    history: list[dict[str, Any]] = st.session_state.setdefault(HISTORY_KEY, [])
    history.append({"time": pd.to_datetime(now, unit="s"), **{k: per_s.get(k, 0.0) for k in COUNTER_KINDS}})
    del history[:-HISTORY_POINTS]
    return per_s


def _replicas(samples: list[Sample]) -> dict[str, float]:
    return sum_by(samples, "ray_serve_deployment_replica_healthy", "deployment")


def _throughput(ctx: DashboardContext) -> None:
    samples = common.metrics(ctx)
    if samples is None:
        return
    if total(samples, f"{PREFIX}visionloop_camera_frames_total") is None:
        common.no_data("camera frame counters", "no camera has reported frames")
    else:
        per_s = _frame_rates(samples)
        for col, kind in zip(st.columns(3), COUNTER_KINDS, strict=True):
            col.metric(f"{kind.replace('_', ' ')} /s", "…" if per_s is None else f"{per_s.get(kind, 0.0):.1f}")
        history = st.session_state.get(HISTORY_KEY, [])
        if len(history) > 1:
            st.line_chart(pd.DataFrame(history).set_index("time"), y_label="frames/s")
    cols = st.columns(4)
    batch = mean_batch_size(samples)
    cols[0].metric("mean batch size", "n/a" if batch is None else f"{batch:.1f}")
    buffered = total(samples, f"{PREFIX}visionloop_results_buffered")
    cols[1].metric("results buffered", "n/a" if buffered is None else f"{buffered:.0f}")
    p99 = histogram_quantile(samples, f"{PREFIX}visionloop_camera_latency_ms", 0.99)
    slo = ctx.settings.dashboard.latency_slo_ms
    cols[2].metric(f"capture→result p99 (SLO {slo:g} ms)", "n/a" if p99 is None else f"{p99:.0f} ms")
    replicas = _replicas(samples)
    cols[3].metric("replicas", " / ".join(f"{k} {v:.0f}" for k, v in replicas.items()) or "n/a")
    if p99 is not None and p99 > slo:
        st.warning(f"Capture-to-result p99 is {p99:.0f} ms, over the {slo:g} ms objective.")


def _queues(ctx: DashboardContext) -> None:
    counts = common.read("labeling queue", lambda: queue_counts(ctx.redis, ctx.streams))
    shadow = common.api_read(ctx, "/v1/shadow", "shadow queue")
    cols = st.columns(2)
    if counts is not None:
        backlog = counts["backlog"]
        cols[0].metric("review backlog", "n/a" if backlog is None else backlog)
    mirror = (shadow or {}).get("mirror") or {}
    if mirror:
        cols[1].metric("shadow queue", f"{mirror.get('queued', 0)} / {mirror.get('queue_size', '?')}")


def _latency(ctx: DashboardContext) -> None:
    recent = common.read_some(
        "results", lambda: results.recent_results(ctx.redis, ctx.streams), "results", "no frame has been answered yet"
    )
    if recent is None:
        return
    st.subheader("Latency per stage (ms)")
    over_time = results.stage_percentiles_over_time(recent)
    if not over_time.empty:
        st.line_chart(over_time, y_label="ms")
    st.dataframe(results.stage_percentiles(recent))
    fps = results.fps_over_time(recent)
    if not fps.empty:
        st.subheader("Answered frames per second, per camera")
        st.line_chart(fps, y_label="frames/s")


def _live_frame(ctx: DashboardContext) -> None:
    picked = common.kept_frames(ctx, "live_camera")
    if picked is None:
        return
    camera, kept = picked
    newest = kept[0]
    boxes = snapshots.snapshot_boxes(newest, common.class_names(ctx))
    caption = f"{camera} · {common.when(newest.get('ts'))} · {newest.get('model_version')} · {len(boxes)} boxes"
    st.image(draw_boxes(snapshots.snapshot_jpeg(newest), boxes), caption=caption)


def render() -> None:
    ctx = common.context()
    st.title("Live")
    every = ctx.settings.dashboard.refresh_s

    @st.fragment(run_every=every)
    def throughput() -> None:
        _throughput(ctx)
        _queues(ctx)

    @st.fragment(run_every=every)
    def latency() -> None:
        _latency(ctx)

    @st.fragment(run_every=every)
    def live_frame() -> None:
        st.subheader("Live frame")
        _live_frame(ctx)

    throughput()
    latency()
    live_frame()
