"""Cameras: each camera's state, reconnects, last error (redacted), fps and latency; add or remove with the token."""

from __future__ import annotations

from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from visionloop.core.redaction import redact
from visionloop.dashboards.api import get_json
from visionloop.dashboards.context import DashboardContext
from visionloop.dashboards.views import common

COLUMNS = ("id", "state", "fps", "latency_ms_p50", "latency_ms_p99", "frames_in", "frames_processed")
MORE = ("frames_skipped", "frames_gated", "reconnects", "last_error", "url")
DOWN_STATES = ("stalled", "backoff", "failed", "unavailable")


def camera_table(cameras: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows the page shows; the error text and the URL are redacted again (never trust one redaction)."""
    rows = []
    for cam in cameras:
        row = {key: cam.get(key) for key in (*COLUMNS, *MORE)}
        row["state"] = str(cam.get("state", "?")).upper()
        row["last_error"] = redact(str(cam["last_error"])) if cam.get("last_error") else ""
        row["url"] = redact(str(cam.get("url", "")))
        rows.append(row)
    return pd.DataFrame(rows, columns=[*COLUMNS, *MORE])


def _add_form(ctx: DashboardContext) -> None:
    with st.form("add_camera", clear_on_submit=False):
        st.markdown("**Add a camera**")
        camera_id = st.text_input("Camera id", placeholder="gate-2")
        url = st.text_input("URL (rtsp://, http(s)://, or a file path)", type="password")
        cols = st.columns(3)
        fps = cols[0].number_input("Target fps", min_value=0.5, max_value=120.0, value=15.0)
        mode = cols[1].selectbox("Mode", ["auto", "latest", "every"])
        transport = cols[2].selectbox("RTSP transport", ["tcp", "udp"])
        if st.form_submit_button("Add camera"):
            spec = {"id": camera_id, "url": url, "target_fps": fps, "mode": mode, "transport": transport}
            common.run_action(ctx, f"Add camera {camera_id}", "POST", "/v1/cameras", spec)


def _remove(ctx: DashboardContext, ids: list[str]) -> None:
    st.markdown("**Remove a camera**")
    cols = st.columns([3, 1])
    chosen = cols[0].selectbox("Camera to remove", ids, key="remove_camera", label_visibility="collapsed")
    if cols[1].button("Remove", disabled=not ids) and chosen:
        common.run_action(ctx, f"Remove camera {chosen}", "DELETE", f"/v1/cameras/{chosen}")


def render() -> None:
    ctx = common.context()
    st.title("Cameras")

    @st.fragment(run_every=ctx.settings.dashboard.refresh_s)
    def table() -> None:
        cameras = common.api_read(ctx, "/v1/cameras", "cameras")
        if cameras is None:
            return
        if not cameras:
            common.no_data("cameras", "none is configured: add one below")
            return
        st.dataframe(camera_table(cameras), hide_index=True)
        down = [str(c.get("id")) for c in cameras if c.get("state") in DOWN_STATES]
        if down:
            st.warning(f"Not streaming: {', '.join(down)} (see last_error).")

    table()
    common.show_last_action("Add camera")
    common.show_last_action("Remove camera")
    _add_form(ctx)
    _remove(ctx, _camera_ids(ctx))


def _camera_ids(ctx: DashboardContext) -> list[str]:
    """The ids for the remove picker (read quietly: the table above already says when the list is missing)."""
    answer = get_json(ctx.api_url, "/v1/cameras")
    return [str(c.get("id")) for c in answer.data] if answer.ok and isinstance(answer.data, list) else []
