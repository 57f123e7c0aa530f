"""The alert states in Redis, and the events that record each raise and resolve."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from visionloop.core.redaction import redact
from visionloop.core.streams import StreamNames, event_fields
from visionloop.core.streams import text as as_text
from visionloop.monitoring.alert_conditions import Condition, Status


class AlertBook:
    """Alert states in the alerts hash (name -> JSON {name, state, since, message, severity, scope}); an event on
    each raise and each resolve, none on a repeat. An unknown condition never raises, and never resolves a firing
    alert (no news is not good news); a per-scope alert whose scope is gone (a removed camera) resolves."""

    def __init__(self, store: Any, streams: StreamNames, source: str = "alert_rules") -> None:
        self._redis, self._streams, self._source = store, streams, source

    def states(self) -> dict[str, dict[str, Any]]:
        raw = self._redis.hgetall(self._streams.alerts) or {}
        out = {}
        for name, value in raw.items():
            try:
                out[as_text(name)] = json.loads(as_text(value))
            except ValueError:
                continue
        return out

    def apply(self, conditions: Iterable[Condition], now: float | None = None) -> dict[str, list[str]]:
        """Record one evaluation; returns the names raised, resolved and firing now."""
        now = time.time() if now is None else now
        conditions = list(conditions)
        book = self.states()
        raised: list[str] = []
        resolved: list[str] = []
        for condition in conditions:
            change = self._record(condition, book.get(condition.name), now)
            if change == "raised":
                raised.append(condition.name)
            elif change == "resolved":
                resolved.append(condition.name)
        resolved += self._resolve_gone(conditions, book, now)
        firing = sorted(name for name, entry in self.states().items() if entry.get("state") == Status.FIRING.value)
        return {"raised": raised, "resolved": resolved, "firing": firing}

    def _record(self, condition: Condition, entry: dict[str, Any] | None, now: float) -> str | None:
        was = entry.get("state") if entry else None
        if condition.status == Status.UNKNOWN:
            if was == Status.FIRING.value:
                return None  # keep firing until a reading says otherwise
            self._write(condition, "unknown", entry["since"] if was == "unknown" and entry else now)
            return None
        if condition.status == Status.FIRING:
            if was == Status.FIRING.value and entry:
                self._write(condition, "firing", entry["since"])
                return None
            self._write(condition, "firing", now)
            self._event("alert_raised", condition, now)
            return "raised"
        if was == Status.FIRING.value:
            self._write(condition, "resolved", now)
            self._event("alert_resolved", condition, now)
            return "resolved"
        self._write(condition, "resolved", entry["since"] if was == "resolved" and entry else now)
        return None

    def _resolve_gone(self, conditions: list[Condition], book: dict[str, dict[str, Any]], now: float) -> list[str]:
        """Alerts of a family read in full this time (none of its conditions unknown) that it no longer lists: a
        firing one resolves (its entry stays for one round), any other entry goes."""
        known = {c.family for c in conditions} - {c.family for c in conditions if c.status == Status.UNKNOWN}
        listed = {c.name for c in conditions}
        out = []
        for name, entry in book.items():
            family = str(entry.get("family") or name.split(":", 1)[0])
            if name in listed or family not in known:
                continue
            if entry.get("state") == Status.FIRING.value:
                gone = Condition(name, family, Status.OK, "no longer reported", scope=str(entry.get("scope", "_all")))
                self._write(gone, "resolved", now)
                self._event("alert_resolved", gone, now)
                out.append(name)
            else:
                self._redis.hdel(self._streams.alerts, name)
        return out

    def _write(self, condition: Condition, state: str, since: float) -> None:
        entry = {
            "name": condition.name,
            "family": condition.family,
            "state": state,
            "since": since,
            "message": redact(condition.message),
            "severity": condition.severity.value,
            "scope": condition.scope,
        }
        self._redis.hset(self._streams.alerts, condition.name, json.dumps(entry, separators=(",", ":")))

    def _event(self, kind: str, condition: Condition, now: float) -> None:
        payload = {
            "by": self._source,
            "name": condition.name,
            "family": condition.family,
            "message": redact(condition.message),
            "severity": condition.severity.value,
            "scope": condition.scope,
            "at": now,
        }
        self._redis.xadd(self._streams.events, event_fields(kind, **payload))
