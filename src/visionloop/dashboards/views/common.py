"""What every page shares: the context, alert banners, "no data yet" notes, the API token and actions."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import streamlit as st

from visionloop.core.errors import ConfigError
from visionloop.dashboards import audit, snapshots
from visionloop.dashboards.api import ApiAnswer, act, get_json, get_text
from visionloop.dashboards.context import DashboardContext, load_context
from visionloop.dashboards.errors import DataUnavailable
from visionloop.dashboards.promtext import Sample, parse_samples

T = TypeVar("T")
TOKEN_KEY = "api_token"  # noqa: S105 (the session key, not a token)
LAST_ACTION_KEY = "last_action"


def context() -> DashboardContext:
    """This run's context; invalid settings stop the page with the loader's message (it names key and source)."""
    try:
        return load_context()
    except ConfigError as exc:
        st.error(f"The dashboard's settings are invalid: {exc}")
        st.stop()


def no_data(what: str, why: str | None = None) -> None:
    """The plain note a page shows where its data is missing."""
    st.info(f"No data yet: {what}." + (f" ({why})" if why else ""))


def read(what: str, fetch: Callable[[], T]) -> T | None:
    """``fetch()``, or None after saying plainly that ``what`` is unavailable (never a stack trace)."""
    try:
        return fetch()
    except DataUnavailable as exc:
        no_data(what, str(exc))
        return None


def read_some(source: str, fetch: Callable[[], T], what: str, why: str | None = None) -> T | None:
    """``read(source, fetch)``, and a "no data yet" note about ``what`` when it comes back empty: None either way."""
    value = read(source, fetch)
    if value is None:
        return None
    if not value:
        no_data(what, why)
        return None
    return value


def kept_frames(ctx: DashboardContext, key: str) -> tuple[str, list[dict[str, Any]]] | None:
    """A camera chosen among those with kept frames (select box ``key``) and its frames, newest first; None after
    saying what is missing."""
    cameras = read_some(
        "snapshots", lambda: snapshots.snapshot_cameras(ctx.redis, ctx.streams), "kept frames", "no camera has one"
    )
    if cameras is None:
        return None
    camera = str(st.selectbox("Camera", cameras, key=key))
    kept = read_some("snapshots", lambda: snapshots.snapshots(ctx.redis, ctx.streams, camera), f"frames of {camera}")
    return None if kept is None else (camera, kept)


def api_read(ctx: DashboardContext, path: str, what: str) -> Any:
    """The API's JSON answer at ``path``, or None after a "no data yet" note saying why."""
    answer = get_json(ctx.api_url, path)
    if not answer.ok:
        no_data(what, answer.describe())
        return None
    return answer.data


def metrics(ctx: DashboardContext) -> list[Sample] | None:
    """The samples of the API's /metrics, or None (with a note) when it does not answer or cannot be parsed."""
    answer = get_text(ctx.api_url, "/metrics")
    if not answer.ok:
        no_data("metrics", answer.describe())
        return None
    try:
        return parse_samples(str(answer.data))
    except ValueError as exc:
        no_data("metrics", f"/metrics could not be parsed: {exc}")
        return None


def when(ts: Any) -> str:
    """A Unix time as UTC text (empty when missing)."""
    if not isinstance(ts, int | float):
        return ""
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


SEVERITIES = ("critical", "warning", "info")  # worst first


def _severity(alert: dict[str, Any]) -> str:
    return str(alert.get("severity", "warning"))


def _rank(alert: dict[str, Any]) -> tuple[int, float]:
    """Worst severity first; within one, the longest firing first."""
    severity = _severity(alert)
    since = alert.get("since")
    order = SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
    return order, float(since) if isinstance(since, int | float) else float("inf")


def describe_alert(alert: dict[str, Any]) -> str:
    return f"**{alert['name']}** ({_severity(alert)}, since {when(alert.get('since'))}): {alert.get('message', '')}"


def banners(ctx: DashboardContext) -> None:
    """Every firing alert in one compact banner at the top of every page: how many by severity and the worst, the
    whole list one click away (with the resolved ones on Drift & accuracy). A banner per alert, after a fuzz run,
    was a screen of red before any content."""
    try:
        entries = sorted(audit.firing(audit.alerts(ctx.redis, ctx.streams)), key=_rank)
    except DataUnavailable as exc:
        st.warning(f"Alerts unavailable: {exc}")
        return
    if not entries:
        return
    counts = Counter(_severity(alert) for alert in entries)
    tally = ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=lambda s: _rank({"severity": s})[0]))
    plural = "s" if len(entries) != 1 else ""
    summary = f"**{len(entries)} alert{plural} firing** ({tally}). Worst: {describe_alert(entries[0])}"
    (st.error if counts.get("critical") else st.warning)(summary, icon=":material/warning:")
    if len(entries) > 1:
        with st.expander(f"All {len(entries)} firing alerts (their history: Drift & accuracy)"):
            st.markdown("\n".join(f"- {describe_alert(alert)}" for alert in entries))


def token_input() -> None:
    """The API token, typed once in the sidebar and kept in the session (never in the URL or the settings)."""
    st.sidebar.text_input(
        "API token",
        type="password",
        key=TOKEN_KEY,
        help="Actions (promote, reject, rollback, cameras, explanations) send it as a bearer token.",
    )


def token() -> str:
    return str(st.session_state.get(TOKEN_KEY, "") or "").strip()


def run_action(ctx: DashboardContext, label: str, method: str, path: str, body: Any = None) -> ApiAnswer:
    """Send one mutating request with the session's token (none is sent without one) and keep its outcome."""
    answer = act(ctx.api_url, method, path, token(), json=body)
    st.session_state[LAST_ACTION_KEY] = {"label": label, "answer": answer, "at": time.time()}
    return answer


def show_last_action(prefix: str = "") -> None:
    """The outcome of the latest action whose label starts with ``prefix``, until the next one."""
    last = st.session_state.get(LAST_ACTION_KEY)
    if not last or not str(last["label"]).startswith(prefix):
        return
    answer: ApiAnswer = last["answer"]
    if answer.ok:
        st.success(f"{last['label']}: {answer.describe()}")
        if isinstance(answer.data, dict | list):
            with st.expander("API answer"):
                st.json(answer.data)
    elif not answer.sent:
        st.error(f"{last['label']} not sent: {answer.error}.")
    elif answer.refused:
        st.error(f"{last['label']} refused: {answer.error} (HTTP {answer.status}).")
    else:
        st.error(f"{last['label']} failed: {answer.describe()}")


CLASS_NAMES_KEY = "class_names"
CLASS_NAMES_TTL_S = 60.0


def class_names(ctx: DashboardContext) -> list[str]:
    """The serving model's class names (from /v1/health), cached a minute in the session: kept frames carry class
    ids only, and a box reads better with its name. Empty when the API does not answer."""
    cached = st.session_state.get(CLASS_NAMES_KEY)
    if cached and time.time() - cached[0] < CLASS_NAMES_TTL_S:
        return list(cached[1])
    answer = get_json(ctx.api_url, "/v1/health")
    names: list[str] = []
    if answer.ok and isinstance(answer.data, dict):
        names = [str(n) for n in (answer.data.get("model") or {}).get("classes") or []]
    st.session_state[CLASS_NAMES_KEY] = (time.time(), names)
    return names
