"""Drift & accuracy: per-scope alarm state, p-values of each test over windows, accuracy on the random arm with
its CI against the champion's gold reference, and the alerts (firing and resolved)."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from visionloop.dashboards import audit, drift_data
from visionloop.dashboards.accuracy import BOUNDS, accuracy_frames, accuracy_table, report_table
from visionloop.dashboards.context import DashboardContext
from visionloop.dashboards.views import common

HISTORY_KEY = "accuracy_history"


def _drift(ctx: DashboardContext) -> None:
    st.subheader("Drift")
    state = common.read("drift state", lambda: drift_data.drift_state(ctx.redis, ctx.streams))
    windows = common.read("drift windows", lambda: drift_data.drift_windows(ctx.redis, ctx.streams))
    if state is None or windows is None:
        return
    if not state and not windows:
        common.no_data("drift windows", "the monitor has not finished a window yet")
        return
    if state:
        st.dataframe(drift_data.state_table(state), hide_index=True)
    scopes = sorted({w["scope"] for w in windows} | set(state), key=lambda s: (s != drift_data.ALL_SCOPE, s))
    scope = st.selectbox("Scope (a camera, or _all)", scopes, key="drift_scope")
    p_values = drift_data.p_values_frame(windows, str(scope))
    if p_values.empty:
        common.no_data(f"p-values of {scope}")
        return
    st.markdown(
        f"p-values per window (each test; the window drifts below α = {ctx.settings.drift.alpha:g}, Bonferroni)"
    )
    st.line_chart(p_values, y_label="p-value")
    st.dataframe(drift_data.latest_tests(windows, str(scope)), hide_index=True)


def _accuracy_chart(table: pd.DataFrame) -> alt.Chart:
    """Estimate (point), CI (bar) and the champion's gold reference (red tick) per row."""
    scope = table["scope"].astype(str) if "scope" in table else "_all"
    data = table.assign(what=scope + " · " + table["metric"])
    base = alt.Chart(data).encode(y=alt.Y("what:N", title=None))
    ci = base.mark_rule(strokeWidth=3).encode(x=alt.X("low:Q", title="random-arm accuracy (95% CI)"), x2="high:Q")
    point = base.mark_point(filled=True, size=80).encode(x="estimate:Q")
    ref = base.mark_tick(color="red", thickness=2, size=20).encode(x="reference:Q")
    chart: alt.Chart = (ci + point + ref).properties(height=30 * max(2, len(data)))
    return chart


def _show_accuracy(table: pd.DataFrame, caption: str) -> None:
    st.caption(caption + " Red tick: the champion's gold mAP50 (reference).")
    st.altair_chart(_accuracy_chart(table))
    st.dataframe(table.round(4), hide_index=True)


def _accuracy_from_gauges(ctx: DashboardContext) -> None:
    samples = common.metrics(ctx)
    if samples is None:
        return
    table = accuracy_table(samples)
    if table.empty:
        need = ctx.settings.drift.min_accuracy_frames
        common.no_data("accuracy", f"it needs {need} labelled random-arm frames first")
        return
    _show_accuracy(table, f"On the latest {accuracy_frames(samples)} random-arm frames (from /metrics).")


def _accuracy(ctx: DashboardContext) -> None:
    st.subheader("Accuracy against human labels (random control arm)")
    report = common.read("accuracy", lambda: drift_data.accuracy_report(ctx.redis, ctx.streams))
    if report is None:  # no report in Redis (yet): the gauges may still have one
        _accuracy_from_gauges(ctx)
        return
    table = report_table(report)
    if table.empty:
        common.no_data("accuracy", str(report.get("message") or report.get("status")))
        return
    _show_accuracy(table, f"{report.get('message', '')} · champion {report.get('model_version')}.")
    _accuracy_over_time(report, table)


def _accuracy_over_time(report: dict[str, Any], table: pd.DataFrame) -> None:
    """Overall mAP50 with its CI at each report this session has seen (the monitor keeps only the latest)."""
    history: dict[float, dict[str, Any]] = st.session_state.setdefault(HISTORY_KEY, {})
    overall = table[(table["scope"] == "_all") & (table["metric"] == "map50")]
    computed = report.get("computed_at")
    if overall.empty or not isinstance(computed, int | float):
        return
    row = overall.iloc[0]
    history[float(computed)] = {"time": pd.to_datetime(computed, unit="s"), **{b: row[b] for b in BOUNDS}}
    if len(history) > 1:
        st.markdown("**Overall mAP50 over time** (estimate and 95% CI, as seen by this page)")
        st.line_chart(pd.DataFrame(sorted(history.values(), key=lambda r: r["time"])).set_index("time"))


def _alerts(ctx: DashboardContext) -> None:
    st.subheader("Alerts")
    entries = common.read("alerts", lambda: audit.alerts(ctx.redis, ctx.streams))
    if entries is None:
        return
    if not entries:
        st.success("No alert has fired.")
        return
    rows = [{**a, "since": common.when(a.get("since"))} for a in entries]
    st.dataframe(pd.DataFrame(rows), hide_index=True)


def render() -> None:
    ctx = common.context()
    st.title("Drift & accuracy")

    @st.fragment(run_every=max(ctx.settings.dashboard.refresh_s, 5.0))
    def live() -> None:
        _drift(ctx)
        _accuracy(ctx)
        _alerts(ctx)

    live()
