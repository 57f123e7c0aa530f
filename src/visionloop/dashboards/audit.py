"""The alerts hash (the banners) and the events stream (the audit log), read from Redis."""

from __future__ import annotations

import json
from typing import Any

import redis

from visionloop.core.streams import StreamNames
from visionloop.dashboards.errors import reading, text

EVENTS_SHOWN = 200


def alerts(client: redis.Redis, streams: StreamNames) -> list[dict[str, Any]]:
    """Every alert the monitors keep (firing first, then by name); an entry that is not JSON is skipped."""
    with reading("alerts"):
        raw: dict[Any, Any] = client.hgetall(streams.alerts)  # type: ignore[assignment]
    out = []
    for name, value in raw.items():
        try:
            entry = json.loads(value)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append({"name": text(name), **entry})
    return sorted(out, key=lambda a: (a.get("state") != "firing", str(a.get("name"))))


def firing(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [a for a in entries if a.get("state") == "firing"]


def events(client: redis.Redis, streams: StreamNames, count: int = EVENTS_SHOWN) -> list[dict[str, Any]]:
    """The latest audit events, newest first: id, time, kind, and the payload as a dict."""
    with reading("events"):
        raw: list[Any] = client.xrevrange(streams.events, count=count) or []  # type: ignore[assignment]
    out = []
    for entry_id, fields in raw:
        fields = {text(k): v for k, v in (fields or {}).items()}
        try:
            payload = json.loads(fields.get("payload", b"{}"))
        except ValueError:
            payload = {"raw": text(fields.get("payload", b""))}
        ts = fields.get("ts")
        out.append(
            {
                "id": text(entry_id),
                "ts": float(text(ts)) if ts is not None else int(text(entry_id).split("-")[0]) / 1000,
                "kind": text(fields.get("kind", b"?")),
                "payload": payload if isinstance(payload, dict) else {"value": payload},
            }
        )
    return out


def summarize_payload(payload: dict[str, Any], limit: int = 160) -> str:
    """One line a person reads: ``key=value`` pairs, nested values as compact JSON."""
    parts = []
    for key, value in payload.items():
        shown = json.dumps(value, separators=(",", ":"), default=str) if isinstance(value, dict | list) else value
        parts.append(f"{key}={shown}")
    line = " ".join(parts)
    return line if len(line) <= limit else line[: limit - 1] + "…"
