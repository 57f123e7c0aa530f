"""Explain: pick a camera, a kept frame and one of its boxes; ask the API for a SHAP explanation (token) and
show the heatmap over the frame once the worker has it."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from visionloop.dashboards import snapshots
from visionloop.dashboards.annotate import draw_boxes
from visionloop.dashboards.api import get_json
from visionloop.dashboards.context import DashboardContext
from visionloop.dashboards.views import common

KEY = "explain_key"


def _pick_frame(ctx: DashboardContext) -> tuple[str, dict[str, Any]] | None:
    picked = common.kept_frames(ctx, "explain_camera")
    if picked is None:
        return None
    camera, kept = picked
    labels = {str(e["frame_id"]): f"{common.when(e.get('ts'))} · {e['frame_id']}" for e in kept}
    frame_id = st.selectbox(
        "Frame (newest first)", list(labels), format_func=lambda f: labels.get(f, f), key="explain_frame"
    )
    entry = next(e for e in kept if e["frame_id"] == frame_id)
    return camera, entry


def _request(ctx: DashboardContext, camera: str, entry: dict[str, Any], box_index: int) -> None:
    body = {"camera_id": camera, "frame_id": entry["frame_id"], "box_index": box_index}
    answer = common.run_action(ctx, "Explain", "POST", "/v1/explain", body)
    if answer.ok and isinstance(answer.data, dict) and answer.data.get("key"):
        st.session_state[KEY] = str(answer.data["key"])


def _show(ctx: DashboardContext) -> None:
    key = st.session_state.get(KEY)
    if not key:
        return
    entry = common.read("explanation", lambda: snapshots.explanation(ctx.redis, ctx.streams, str(key)))
    if entry is None:
        answer = get_json(ctx.api_url, f"/v1/explain/{quote(str(key), safe='')}")
        entry = answer.data if answer.ok and isinstance(answer.data, dict) else None
    if entry is None:
        common.no_data(f"explanation {key}", "not (or no longer) kept")
        return
    state = entry.get("state")
    preview = snapshots.overlay_png(entry, "preview_png_b64")
    if state in ("queued", "running"):
        st.info(f"Explanation {key}: {state}… (the worker runs at low priority beside the hot path)")
        if preview:
            st.image(preview, caption="EigenCAM preview (one pass, the whole frame: not specific to the box)")
    elif state == "error":
        st.error(f"Explanation {key} failed: {entry.get('error')}")
    elif state == "done":
        _show_done(entry, preview)


def _show_done(entry: dict[str, Any], preview: bytes | None) -> None:
    png = snapshots.overlay_png(entry)
    seconds = entry.get("seconds")
    caption = f"SHAP for box #{entry.get('box_index')} · {entry.get('evals')} evaluations"
    caption += f" · {seconds:.1f} s" if isinstance(seconds, int | float) else ""
    shap_col, preview_col = st.columns(2)
    if png:
        shap_col.image(png, caption=caption)
    else:
        shap_col.warning("The explanation has no overlay image.")
    if preview:
        preview_col.image(preview, caption="EigenCAM preview (one pass; the whole frame, not the box)")
    st.caption(f"Peak attribution (x, y): {entry.get('peak')}")


def _recent(ctx: DashboardContext) -> None:
    recent = common.read("explanations", lambda: snapshots.recent_explanations(ctx.redis, ctx.streams))
    if recent:
        with st.expander("Recent explanations"):
            st.dataframe(pd.DataFrame(recent), hide_index=True)


def _pick_box(ctx: DashboardContext, camera: str, entry: dict[str, Any]) -> None:
    boxes = snapshots.snapshot_boxes(entry, common.class_names(ctx))
    if not boxes:
        common.no_data("detections", "this frame has no box to explain; pick another")
        return
    names = [
        f"#{i} {b.get('class_name', b.get('class_id'))} {float(b.get('confidence', 0)):.2f}"
        for i, b in enumerate(boxes)
    ]
    chosen = st.selectbox("Box", names, key="explain_box")
    box_index = names.index(chosen) if chosen in names else 0
    st.image(draw_boxes(snapshots.snapshot_jpeg(entry), boxes, highlight=box_index), caption=str(entry["frame_id"]))
    if st.button("Explain this box", key="explain", type="primary"):
        _request(ctx, camera, entry, box_index)


def render() -> None:
    ctx = common.context()
    st.title("Explain a detection")
    picked = _pick_frame(ctx)
    if picked is not None:
        _pick_box(ctx, *picked)
    common.show_last_action("Explain")

    @st.fragment(run_every=ctx.settings.dashboard.refresh_s)
    def result() -> None:
        _show(ctx)

    result()
    _recent(ctx)
