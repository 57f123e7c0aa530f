"""Labeling: the review queue (backlog, imported, labelled, dead-lettered by reason), labels per hour, the arm
mix, and a link to Label Studio."""

from __future__ import annotations

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from visionloop.dashboards import labeling_data
from visionloop.dashboards.api import get_json
from visionloop.dashboards.context import DashboardContext
from visionloop.dashboards.views import common


def label_studio_link(ctx: DashboardContext, reported: str | None) -> str:
    """dashboard.label_studio_url, else the one labeling uses (as the worker reports it, or the local one)."""
    settings = ctx.settings
    return (
        settings.dashboard.label_studio_url
        or reported
        or settings.labeling.label_studio_url
        or f"http://127.0.0.1:{settings.labeling.label_studio_port}"
    )


def _worker(ctx: DashboardContext) -> str | None:
    answer = get_json(ctx.api_url, "/v1/labeling/status")
    if not answer.ok or not isinstance(answer.data, dict):
        st.caption(f"Labeling worker: {answer.describe()}")
        return None
    status = answer.data
    if status.get("state") == "disabled":
        st.caption(f"Labeling is switched off ({status.get('reason')})")
        return None
    running = "running" if status.get("running") else "not running"
    st.caption(f"Labeling worker {running} · Label Studio project {status.get('project_id')}")
    if status.get("last_error"):
        st.warning(f"Labeling's last error: {status['last_error']}")
    reported = status.get("label_studio")
    return str(reported) if reported else None


def _counts(ctx: DashboardContext) -> None:
    counts = common.read("labeling queue", lambda: labeling_data.queue_counts(ctx.redis, ctx.streams))
    if counts is None:
        return
    if not any(counts.values()):
        common.no_data("labeling", "no frame has been selected for labeling yet")
        return
    cols = st.columns(5)
    for col, key in zip(cols, ("queued", "backlog", "imported", "labelled", "dead_lettered"), strict=True):
        value = counts[key]
        col.metric(key.replace("_", "-"), "n/a" if value is None else value)
    reasons = common.read("dead letters", lambda: labeling_data.dead_letter_reasons(ctx.redis, ctx.streams))
    if reasons:
        st.markdown("**Dead-lettered, by reason** (latest entries)")
        st.dataframe(pd.Series(reasons, name="frames").rename_axis("reason").reset_index(), hide_index=True)


def _rates(ctx: DashboardContext) -> None:
    per_hour = common.read("labels", lambda: labeling_data.labels_per_hour(ctx.redis, ctx.streams))
    if per_hour is not None and per_hour.sum() > 0:
        st.markdown("**Labels per hour** (last 24 h)")
        st.bar_chart(per_hour, y_label="labels")
    elif per_hour is not None:
        common.no_data("labels", "no label harvested in the last 24 h")
    mix = common.read("review queue", lambda: labeling_data.arm_mix(ctx.redis, ctx.streams))
    if mix:
        st.markdown(f"**Arm mix** of the {sum(mix.values())} frames queued so far (random = the control arm)")
        st.bar_chart(pd.Series(mix, name="frames"), y_label="frames")


def render() -> None:
    ctx = common.context()
    st.title("Labeling")
    reported = _worker(ctx)
    link = label_studio_link(ctx, reported)
    st.link_button("Open Label Studio", link)

    @st.fragment(run_every=max(ctx.settings.dashboard.refresh_s, 10.0))
    def live() -> None:
        _counts(ctx)
        _rates(ctx)

    live()
