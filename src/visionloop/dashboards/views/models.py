"""Models & A/B: champion and shadow with lineage, the loop's paired statistics, the operational comparison,
Promote / Reject / Rollback, and the audit log."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd  # type: ignore[import-untyped]
import streamlit as st

from visionloop.dashboards import audit
from visionloop.dashboards.api import get_json
from visionloop.dashboards.context import DashboardContext
from visionloop.dashboards.models_data import ab_summary, lineage, version_row
from visionloop.dashboards.views import common

MODEL_ACTIONS = ("Promote", "Reject", "Rollback")


def _roles(ctx: DashboardContext, models: dict[str, Any]) -> None:
    pointers = models.get("pointers") or {}
    serving = (models.get("serving") or {}).get("champion")
    rows = []
    for role in ("champion", "shadow"):
        version = pointers.get(role)
        if version:
            row = version_row(models, version)
            row["created"] = common.when(row["created"])
            rows.append({"role": role, **row, "lineage": " ← ".join(lineage(models, version))})
    if not rows:
        common.no_data("models", "the registry has no champion yet (run 'visionloop models init')")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if serving and serving != pointers.get("champion"):
        st.warning(f"The replicas still serve {serving}; the champion pointer says {pointers.get('champion')}.")
    if not pointers.get("shadow"):
        st.caption("No shadow is running: the loop trains one when enough new labels arrive.")


def _ci_chart(summary: dict[str, Any]) -> alt.Chart:
    data = pd.DataFrame(
        [{"what": "mAP50 difference", "low": summary["ci_low"], "high": summary["ci_high"], "d": summary["d"]}]
    )
    base = alt.Chart(data).encode(y=alt.Y("what:N", title=None))
    rule = base.mark_rule(strokeWidth=3).encode(x=alt.X("low:Q", title="challenger − champion (95% CI)"), x2="high:Q")
    point = base.mark_point(filled=True, size=80).encode(x="d:Q")
    zero = alt.Chart(pd.DataFrame({"x": [0.0]})).mark_rule(strokeDash=[4, 4]).encode(x="x:Q")
    chart: alt.Chart = (rule + point + zero).properties(height=90)
    return chart


def _ab(ctx: DashboardContext, models: dict[str, Any]) -> None:
    st.subheader("A/B: the loop's paired statistics")
    loop = get_json(ctx.api_url, "/v1/loop/status")
    if loop.ok and isinstance(loop.data, dict):
        state = loop.data
        st.caption(f"Loop: {state.get('state')} · stage {state.get('stage') or '-'} · last job {state.get('last_job')}")
        if state.get("last_error"):
            st.warning(f"Loop's last error: {state['last_error']}")
    shadow = (models.get("pointers") or {}).get("shadow")
    last_verdict = loop.data.get("last_verdict") if loop.ok and isinstance(loop.data, dict) else None
    judged = shadow or (last_verdict or {}).get("shadow")
    summary = ab_summary(models, judged)
    if summary is None:
        common.no_data("A/B verdict", "the shadow has not been judged yet" if shadow else "no shadow to compare")
        return
    cols = st.columns(5)
    cols[0].metric(f"decision ({judged})", str(summary["decision"]).upper())
    diff = summary["map50_difference"]
    cols[1].metric("mAP50 difference", "n/a" if diff is None else f"{diff:+.3f}")
    p = summary["mcnemar_p"]
    cols[2].metric("McNemar p", "n/a" if p is None else f"{p:.3g}")
    cols[3].metric("frames (n)", summary["n_frames"] if summary["n_frames"] is not None else "n/a")
    needed = summary["frames_needed"]
    cols[4].metric("labels to settle", "n/a" if needed is None else f"~{needed}")
    st.caption(str(summary.get("reason") or ""))
    if summary["ci_low"] is not None and summary["ci_high"] is not None and diff is not None:
        st.altair_chart(_ci_chart({**summary, "d": diff}))


def _operational(ctx: DashboardContext) -> None:
    st.subheader("Operational comparison (mirrored frames)")
    answer = common.api_read(ctx, "/v1/shadow", "shadow comparison")
    if answer is None:
        return
    comparison = answer.get("comparison") or {}
    if not comparison.get("pairs"):
        common.no_data("shadow pairs", "no frame has been mirrored to a shadow yet")
    else:
        rows = [{"model": role, **comparison[role]} for role in ("champion", "shadow") if role in comparison]
        st.dataframe(pd.DataFrame(rows), hide_index=True)
        st.metric("disagreement rate", f"{comparison.get('disagreement_rate', 0.0):.1%}")
    mirror = answer.get("mirror")
    if mirror:
        st.caption(" · ".join(f"{k} {v}" for k, v in mirror.items() if not isinstance(v, dict)))


def _actions(ctx: DashboardContext, models: dict[str, Any] | None) -> None:
    st.subheader("Actions")
    pointers = (models or {}).get("pointers") or {}
    shadow = pointers.get("shadow")
    force = st.checkbox("Force (promote without a PROMOTE verdict; audited as forced)", key="promote_force")
    cols = st.columns(3)
    if cols[0].button(f"Promote {shadow or 'the shadow'}", key="promote", type="primary"):
        common.run_action(ctx, "Promote", "POST", "/v1/models/promote", {"force": force})
    if cols[1].button(f"Reject {shadow or 'the shadow'}", key="reject", disabled=not shadow):
        common.run_action(ctx, "Reject", "POST", f"/v1/models/{shadow}/reject")
    if cols[2].button("Rollback the champion", key="rollback"):
        common.run_action(ctx, "Rollback", "POST", "/v1/models/rollback")
    for action in MODEL_ACTIONS:
        common.show_last_action(action)


def _pointer_history(ctx: DashboardContext) -> None:
    answer = get_json(ctx.api_url, "/v1/models/history?limit=20")
    if not answer.ok or not isinstance(answer.data, dict) or not answer.data.get("changes"):
        return
    with st.expander("Pointer history (newest last)"):
        st.dataframe(pd.DataFrame(answer.data["changes"]), hide_index=True)
        previous = answer.data.get("previous_champions") or []
        st.caption(f"Rollback stack: {' → '.join(previous) if previous else 'empty'}")


def _audit_log(ctx: DashboardContext) -> None:
    st.subheader("Audit log")
    entries = common.read_some(
        "events", lambda: audit.events(ctx.redis, ctx.streams), "events", "nothing has happened yet"
    )
    if entries is None:
        return
    rows = [
        {"time": common.when(e["ts"]), "kind": e["kind"], "details": audit.summarize_payload(e["payload"])}
        for e in entries
    ]
    kinds = sorted({r["kind"] for r in rows})
    chosen = st.multiselect("Kinds", kinds, default=[], key="audit_kinds", placeholder="all kinds")
    shown = [r for r in rows if not chosen or r["kind"] in chosen]
    st.dataframe(pd.DataFrame(shown), hide_index=True)


def render() -> None:
    ctx = common.context()
    st.title("Models & A/B")
    models = common.api_read(ctx, "/v1/models", "models")
    if models is not None:
        _roles(ctx, models)
        _ab(ctx, models)
    _operational(ctx)
    _actions(ctx, models)
    _pointer_history(ctx)

    @st.fragment(run_every=ctx.settings.dashboard.refresh_s)
    def audit_log() -> None:
        _audit_log(ctx)

    audit_log()
