"""The alert conditions of ``dashboards/alerts.yml``, evaluated in-process: dashboard banners and audit events.

Prometheus evaluates the same conditions on the metrics; these are evaluated on Redis and the API so an operator
without Prometheus still sees them, and every raise and resolve lands on the events stream. The conditions are pure
functions of an :class:`AlertInputs` snapshot; :func:`collect_inputs` gathers one (each source failing alone: a
source it cannot read makes its conditions ``unknown``, never firing); :class:`AlertBook` keeps the state, writes
the alerts hash and publishes ``alert_raised`` / ``alert_resolved`` only when a state changes. Messages name camera
ids, never URLs.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import redis

from visionloop.core.redaction import redact
from visionloop.core.settings import Settings
from visionloop.core.streams import ACCURACY_STATE_FIELD, StreamNames, event_fields

log = logging.getLogger(__name__)

CAMERA_DOWN_AFTER_S = 60.0  # STALLED or BACKOFF longer than this is a camera down (FAILED at once)
DEAD_LETTER_WINDOW_S = 600.0
ACCURACY_DROP = 0.1  # the CI's upper bound this far below the champion's reference mAP50 is a drop
SHADOW_DROP_SHARE = 0.05
LATENCY_SAMPLES = 200  # latest drift samples read for the latency p99
LATENCY_MAX_AGE_S = 300.0  # older samples say nothing about the latency now
LATENCY_MIN_SAMPLES = 20  # fewer: a p99 is just the maximum of a handful
# Fields of a drift sample that may carry its total latency (ms), in order of preference: learning.drift_sampler
# writes {"camera_id", "ts", "model_version", "json": {..., "total_ms", "lat": {stage: ms}}}; the rest is tolerance.
LATENCY_FIELDS = ("total_ms", "latency_ms", "lat", "latency_total_ms", "total_latency_ms")
SAMPLE_WRAPPERS = ("json", "sample", "data")  # a field holding the sample as one JSON document
LATENCY_STAGES = ("decode", "queue", "inference", "post")
OPTIONAL_STAGES = ("batch",)  # newer samples split the Detector's batch wait from the source's queue


class Status(StrEnum):
    FIRING = "firing"
    OK = "ok"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY = {
    "drift_persistent": Severity.WARNING,
    "latency_slo": Severity.CRITICAL,
    "camera_down": Severity.CRITICAL,
    "dead_letter_growth": Severity.WARNING,
    "accuracy_drop": Severity.CRITICAL,
    "shadow_drops": Severity.WARNING,
}


@dataclass(frozen=True)
class Condition:
    """One evaluated condition. ``family`` (the rule) groups per-scope ones: a camera, a drift scope."""

    name: str
    family: str
    status: Status
    message: str
    scope: str = "_all"

    @property
    def severity(self) -> Severity:
        return SEVERITY.get(self.family, Severity.WARNING)


@dataclass(frozen=True)
class ShadowCounters:
    mirrored: int
    dropped: int


@dataclass(frozen=True)
class AlertInputs:
    """What the conditions look at; None: that source could not be read."""

    now: float
    latency_slo_ms: float
    drift_state: dict[str, Any] | None = None  # scope -> parsed JSON of the drift-state hash
    latencies_ms: list[float] | None = None  # recent per-frame total latencies
    cameras: list[dict[str, Any]] | None = None  # GET /v1/cameras
    dead_letter: list[tuple[float, int]] | None = None  # (time, XLEN) history, oldest first
    shadow: dict[str, Any] | None = None  # GET /v1/shadow
    shadow_delta: ShadowCounters | None = None  # mirror counters since the last evaluation


# -- conditions (pure) ------------------------------------------------------------------------------------------


def drift_conditions(inputs: AlertInputs) -> list[Condition]:
    family = "drift_persistent"
    if inputs.drift_state is None:
        return [Condition(family, family, Status.UNKNOWN, "drift state unreadable (Redis)")]
    out = []
    for scope, state in sorted(inputs.drift_state.items()):
        if scope == ACCURACY_STATE_FIELD or not isinstance(state, dict) or "alarm" not in state:
            continue
        windows = state.get("consecutive")
        if state["alarm"]:
            message = f"drift in {scope} for {windows} window(s) in a row"
            out.append(Condition(f"{family}:{scope}", family, Status.FIRING, message, scope))
        else:
            out.append(Condition(f"{family}:{scope}", family, Status.OK, f"no drift alarm in {scope}", scope))
    return out or [Condition(family, family, Status.OK, "no drift window evaluated yet")]


def latency_condition(inputs: AlertInputs) -> Condition:
    name, slo = "latency_slo", inputs.latency_slo_ms
    samples = inputs.latencies_ms
    if samples is None:
        return Condition(name, name, Status.UNKNOWN, "latency samples unreadable (Redis)")
    if len(samples) < LATENCY_MIN_SAMPLES:
        return Condition(name, name, Status.UNKNOWN, f"{len(samples)} recent latency samples, too few for a p99")
    p99 = float(np.percentile(samples, 99))
    if p99 > slo:
        return Condition(name, name, Status.FIRING, f"latency p99 {p99:.0f} ms over the {slo:.0f} ms SLO")
    return Condition(name, name, Status.OK, f"latency p99 {p99:.0f} ms within the {slo:.0f} ms SLO")


def _camera_down(camera: dict[str, Any], now: float) -> tuple[bool, str]:
    state = str(camera.get("state", "")).lower()
    since = camera.get("state_since")
    held = now - float(since) if isinstance(since, int | float) else None
    if state == "failed":
        return True, "failed (needs an operator)"
    if state in ("stalled", "backoff"):
        if held is None:
            return False, f"{state} (for how long unknown)"
        if held > CAMERA_DOWN_AFTER_S:
            return True, f"{state} for {held:.0f} s"
        return False, f"{state} for {held:.0f} s"
    return False, state or "state unknown"


def camera_conditions(inputs: AlertInputs) -> list[Condition]:
    family = "camera_down"
    if inputs.cameras is None:
        return [Condition(family, family, Status.UNKNOWN, "cameras unreadable (API unreachable)")]
    out = []
    for camera in inputs.cameras:
        camera_id = redact(str(camera.get("id", "?")))
        down, how = _camera_down(camera, inputs.now)
        status = Status.FIRING if down else Status.OK
        out.append(Condition(f"{family}:{camera_id}", family, status, f"camera {camera_id}: {how}", camera_id))
    return out or [Condition(family, family, Status.OK, "no camera configured")]


def dead_letter_condition(inputs: AlertInputs) -> Condition:
    name = "dead_letter_growth"
    history = inputs.dead_letter
    if history is None:
        return Condition(name, name, Status.UNKNOWN, "dead-letter stream unreadable (Redis)")
    recent = [(t, n) for t, n in history if t >= inputs.now - DEAD_LETTER_WINDOW_S]
    if len(history) < 2 or not recent:
        return Condition(name, name, Status.UNKNOWN, "watching the dead-letter stream (one reading so far)")
    baseline = min(n for _, n in recent)
    latest = history[-1][1]
    minutes = DEAD_LETTER_WINDOW_S / 60
    if latest > baseline:
        message = f"{latest - baseline} review item(s) dead-lettered in the last {minutes:.0f} min ({latest} in all)"
        return Condition(name, name, Status.FIRING, message)
    return Condition(name, name, Status.OK, f"no new dead letters in the last {minutes:.0f} min ({latest} in all)")


def accuracy_condition(inputs: AlertInputs) -> Condition:
    name = "accuracy_drop"
    if inputs.drift_state is None:
        return Condition(name, name, Status.UNKNOWN, "accuracy report unreadable (Redis)")
    report = inputs.drift_state.get(ACCURACY_STATE_FIELD)
    if not isinstance(report, dict):
        return Condition(name, name, Status.UNKNOWN, "no accuracy report yet")
    overall = report.get("overall") or {}
    if overall.get("status") != "ok":
        return Condition(name, name, Status.UNKNOWN, str(report.get("message") or "no accuracy yet"))
    reference = (report.get("reference") or {}).get("map50")
    high = (overall.get("map50") or {}).get("high")
    if reference is None or high is None:
        return Condition(name, name, Status.UNKNOWN, "no reference mAP50 for the champion (or no mAP50 yet)")
    version = report.get("model_version", "the champion")
    text = f"{version}: random-arm mAP50 CI upper bound {high:.3f} vs reference {reference:.3f}"
    if high < reference - ACCURACY_DROP:
        return Condition(name, name, Status.FIRING, f"{text} (more than {ACCURACY_DROP} below)")
    return Condition(name, name, Status.OK, text)


def shadow_condition(inputs: AlertInputs) -> Condition:
    name = "shadow_drops"
    if inputs.shadow is None:
        return Condition(name, name, Status.UNKNOWN, "shadow status unreadable (API unreachable)")
    if not inputs.shadow.get("shadow") or inputs.shadow.get("mirror") is None or inputs.shadow_delta is None:
        return Condition(name, name, Status.OK, "no shadow is running")
    delta = inputs.shadow_delta
    offered = delta.mirrored + delta.dropped
    if offered == 0:
        return Condition(name, name, Status.OK, "no frame offered to the shadow since the last check")
    share = delta.dropped / offered
    text = f"shadow dropped {delta.dropped} of {offered} offered frames ({share:.1%}) since the last check"
    return Condition(name, name, Status.FIRING if share > SHADOW_DROP_SHARE else Status.OK, text)


CHECKS: tuple[Callable[[AlertInputs], Condition | list[Condition]], ...] = (
    drift_conditions,
    latency_condition,
    camera_conditions,
    dead_letter_condition,
    accuracy_condition,
    shadow_condition,
)


def evaluate(inputs: AlertInputs) -> list[Condition]:
    out: list[Condition] = []
    for check in CHECKS:
        found = check(inputs)
        out.extend(found if isinstance(found, list) else [found])
    return out


# -- collecting a snapshot ----------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _flatten(fields: dict[Any, Any]) -> dict[str, str]:
    """Stream fields as text, with a JSON document in a wrapper field (``json``, ...) spread among them."""
    plain = {_text(k): _text(v) for k, v in fields.items()}
    for wrapper in SAMPLE_WRAPPERS:
        try:
            inner = json.loads(plain[wrapper]) if wrapper in plain else None
        except ValueError:
            inner = None
        if isinstance(inner, dict):
            plain.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in inner.items()})
    return plain


def _as_total(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict):
        stages = [value.get(stage) for stage in LATENCY_STAGES]
        if all(isinstance(v, int | float) for v in stages):
            extra = [value.get(stage) for stage in OPTIONAL_STAGES]
            return float(sum(stages) + sum(v for v in extra if isinstance(v, int | float)))  # type: ignore[arg-type]
    return None


def sample_latency(fields: dict[Any, Any]) -> float | None:
    """A drift sample's total latency in ms: a total field, or the sum of a stage mapping (``lat``, or
    ``latency_ms`` as in ``FrameResult.to_dict``). None when it carries neither."""
    plain = _flatten(fields)
    for name in LATENCY_FIELDS:
        try:
            total = _as_total(json.loads(plain[name])) if name in plain else None
        except ValueError:
            total = None
        if total is not None:
            return total
    return None


def read_latencies(store: Any, streams: StreamNames, now: float) -> list[float]:
    """Total latencies of the latest drift samples younger than LATENCY_MAX_AGE_S (entry ids are ms times)."""
    out = []
    for entry_id, fields in store.xrevrange(streams.drift_samples, count=LATENCY_SAMPLES) or []:
        if int(_text(entry_id).split("-")[0]) / 1000 < now - LATENCY_MAX_AGE_S:
            break
        value = sample_latency(fields)
        if value is not None:
            out.append(value)
    return out


def read_drift_state(store: Any, streams: StreamNames) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scope, raw in (store.hgetall(streams.drift_state) or {}).items():
        try:
            out[_text(scope)] = json.loads(_text(raw))
        except ValueError:
            continue
    return out


@dataclass
class InputMemory:
    """What a condition needs from earlier evaluations: the dead-letter length history, the shadow counters."""

    dead_letter: deque[tuple[float, int]] = field(default_factory=deque)
    shadow: ShadowCounters | None = None

    def dead_letter_seen(self, now: float, length: int) -> list[tuple[float, int]]:
        self.dead_letter.append((now, length))
        # keep one reading older than the window: growth right at its start still shows
        while len(self.dead_letter) > 2 and self.dead_letter[1][0] < now - DEAD_LETTER_WINDOW_S:
            self.dead_letter.popleft()
        return list(self.dead_letter)

    def shadow_seen(self, shadow: dict[str, Any]) -> ShadowCounters | None:
        mirror = shadow.get("mirror")
        if not isinstance(mirror, dict):
            self.shadow = None
            return None
        now = ShadowCounters(int(mirror.get("mirrored", 0)), int(mirror.get("dropped", 0)))
        before = self.shadow
        self.shadow = now
        if before is None or now.mirrored < before.mirrored or now.dropped < before.dropped:
            return now  # the first reading, or the Router restarted: everything since it started
        return ShadowCounters(now.mirrored - before.mirrored, now.dropped - before.dropped)


def api_url(settings: Settings) -> str:
    if settings.dashboard.api_url:
        return settings.dashboard.api_url.rstrip("/")
    host = "127.0.0.1" if settings.api.host in ("0.0.0.0", "::", "") else settings.api.host  # noqa: S104
    return f"http://{host}:{settings.api.port}"


def _try(what: str, read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception as exc:  # each source fails alone: its conditions are unknown
        log.debug("alert input %s unavailable: %s", what, redact(str(exc)))
        return None


def collect_inputs(settings: Settings, store: Any, http: Any, memory: InputMemory | None = None) -> AlertInputs:
    """A snapshot of every alert input. ``store``: a redis client; ``http``: an httpx.Client (timeouts set by the
    caller). ``memory`` carries the dead-letter history and shadow counters between calls (keep one per watcher)."""
    memory = memory if memory is not None else InputMemory()
    streams = StreamNames(settings.redis.stream_prefix)
    now = time.time()
    base = api_url(settings)

    def get(path: str) -> Any:
        response = http.get(f"{base}{path}")
        response.raise_for_status()
        return response.json()

    length = _try("dead letters", lambda: int(store.xlen(streams.review_dead_letter)))
    shadow = _try("shadow", lambda: get("/v1/shadow"))
    cameras = _try("cameras", lambda: get("/v1/cameras"))
    return AlertInputs(
        now=now,
        latency_slo_ms=settings.dashboard.latency_slo_ms,
        drift_state=_try("drift state", lambda: read_drift_state(store, streams)),
        latencies_ms=_try("latencies", lambda: read_latencies(store, streams, now)),
        cameras=cameras if isinstance(cameras, list) else None,
        dead_letter=None if length is None else memory.dead_letter_seen(now, length),
        shadow=shadow if isinstance(shadow, dict) else None,
        shadow_delta=memory.shadow_seen(shadow) if isinstance(shadow, dict) else None,
    )


# -- state ------------------------------------------------------------------------------------------------------


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
                out[_text(name)] = json.loads(_text(value))
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


def evaluate_alerts(
    settings: Settings, store: Any, http: Any, memory: InputMemory, book: AlertBook | None = None
) -> dict[str, list[str]]:
    """One round: collect, evaluate, record (what the drift monitor's periodic hook calls)."""
    book = book or AlertBook(store, StreamNames(settings.redis.stream_prefix))
    return book.apply(evaluate(collect_inputs(settings, store, http, memory)))


class AlertWatcher:
    """What the drift monitor's periodic hook runs: one round per call, with its own HTTP client and the memory
    (dead-letter history, shadow counters) that rounds share."""

    def __init__(self, settings: Settings, store: Any, timeout_s: float = 3.0) -> None:
        import httpx

        self._settings, self._store = settings, store
        self._http = httpx.Client(timeout=timeout_s)
        self.memory = InputMemory()
        self.book = AlertBook(store, StreamNames(settings.redis.stream_prefix))
        self.last: dict[str, list[str]] | None = None

    def run_once(self) -> dict[str, list[str]]:
        """One round; while Redis is away nothing can be recorded, so the round is skipped (and logged)."""
        try:
            self.last = evaluate_alerts(self._settings, self._store, self._http, self.memory, self.book)
        except (redis.RedisError, OSError) as exc:
            log.warning("alert round skipped, Redis unavailable: %s", exc)
            return {"raised": [], "resolved": [], "firing": []}
        return self.last

    def close(self) -> None:
        self._http.close()
