"""Drift windows (the drift stream) and the monitor's latest view per scope (the drift-state hash).

The monitor (``learning/``) computes the statistics; this only reads them. A window's JSON carries each test's
statistic and p-value, whether the window drifted and whether the alarm is up; the reader accepts the tests as a
mapping (``{"ks_confidence": {"statistic": ..., "p_value": ...}}``) or as a list of objects naming their test.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import redis

from visionloop.core.streams import ACCURACY_STATE_FIELD, StreamNames
from visionloop.dashboards.errors import reading, text

WINDOWS_READ = 500
ALL_SCOPE = "_all"
ADJUSTED = "adjusted (Bonferroni)"


def _tests(window: dict[str, Any]) -> list[dict[str, Any]]:
    tests = window.get("tests", {})
    if isinstance(tests, dict):
        return [{"test": name, **(v if isinstance(v, dict) else {"p_value": v})} for name, v in tests.items()]
    if isinstance(tests, list):
        return [{"test": t.get("test", t.get("name", "?")), **t} for t in tests if isinstance(t, dict)]
    return []


def _p_value(test: dict[str, Any]) -> float | None:
    value = test.get("p_value", test.get("p"))
    return float(value) if isinstance(value, int | float) else None


def drift_windows(client: redis.Redis, streams: StreamNames, count: int = WINDOWS_READ) -> list[dict[str, Any]]:
    """The latest evaluated windows, oldest first: scope, ts and the monitor's JSON merged in."""
    with reading("drift windows"):
        raw: list[Any] = client.xrevrange(streams.drift, count=count) or []  # type: ignore[assignment]
    out = []
    for entry_id, fields in reversed(raw):
        fields = {text(k): v for k, v in (fields or {}).items()}
        try:
            body = json.loads(text(fields.get("json", b"{}")))
        except ValueError:
            continue
        if not isinstance(body, dict):
            continue
        ts = fields.get("ts")
        out.append(
            {
                **body,
                "scope": text(fields.get("scope", body.get("scope", ALL_SCOPE))),
                "ts": float(text(ts)) if ts is not None else int(text(entry_id).split("-")[0]) / 1000,
            }
        )
    return out


def p_values_frame(windows: list[dict[str, Any]], scope: str) -> pd.DataFrame:
    """p-values of each test per window of one scope: index is the window's time, one column per test."""
    rows = []
    for w in windows:
        if w["scope"] != scope:
            continue
        time = pd.to_datetime(w["ts"], unit="s")
        for t in _tests(w):
            p = _p_value(t)
            if p is not None:
                rows.append({"time": time, "test": str(t["test"]), "p_value": p})
        if isinstance(w.get("adjusted_p"), int | float):
            rows.append({"time": time, "test": ADJUSTED, "p_value": float(w["adjusted_p"])})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).pivot_table(index="time", columns="test", values="p_value", aggfunc="last")


def latest_tests(windows: list[dict[str, Any]], scope: str) -> pd.DataFrame:
    """The newest window of a scope: one row per test with its statistic and p-value."""
    mine = [w for w in windows if w["scope"] == scope]
    if not mine:
        return pd.DataFrame()
    rows = []
    for t in _tests(mine[-1]):
        rows.append(
            {
                "test": t["test"],
                "statistic": t.get("statistic"),
                "p_value": _p_value(t),
                "drifted": t.get("drifted"),
            }
        )
    return pd.DataFrame(rows)


def _state_fields(client: redis.Redis, streams: StreamNames) -> dict[str, dict[str, Any]]:
    with reading("drift state"):
        raw: dict[Any, Any] = client.hgetall(streams.drift_state)  # type: ignore[assignment]
    out = {}
    for field, value in raw.items():
        try:
            body = json.loads(value)
        except ValueError:
            continue
        if isinstance(body, dict):
            out[text(field)] = body
    return out


def drift_state(client: redis.Redis, streams: StreamNames) -> dict[str, dict[str, Any]]:
    """scope -> the monitor's latest view (alarm, windows in drift in a row, reference, last window); ``_all``
    first."""
    scopes = {k: v for k, v in _state_fields(client, streams).items() if k != ACCURACY_STATE_FIELD}
    return dict(sorted(scopes.items(), key=lambda kv: (kv[0] != ALL_SCOPE, kv[0])))


def accuracy_report(client: redis.Redis, streams: StreamNames) -> dict[str, Any] | None:
    """The accuracy monitor's latest report (random-arm labels), kept beside the drift state; None before one."""
    return _state_fields(client, streams).get(ACCURACY_STATE_FIELD)


def state_table(state: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per scope: its flat fields, the reference's state and the last window's combined p-value and PSI."""
    rows = []
    for scope, body in state.items():
        flat = {k: v for k, v in body.items() if not isinstance(v, dict | list)}
        reference = body.get("reference") if isinstance(body.get("reference"), dict) else {}
        last = body.get("last_window") if isinstance(body.get("last_window"), dict) else {}
        rows.append(
            {
                "scope": scope,
                **flat,
                "reference": (reference or {}).get("state"),
                "adjusted_p": (last or {}).get("adjusted_p"),
                "psi": (last or {}).get("psi"),
                "reasons": "; ".join(str(r) for r in (last or {}).get("reasons") or []),
            }
        )
    return pd.DataFrame(rows)
