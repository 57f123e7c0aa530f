"""The alert conditions of ``dashboards/alerts.yml``, evaluated in-process: dashboard banners and audit events.

Prometheus evaluates the same conditions on the metrics; these are evaluated on Redis and the API so an operator
without Prometheus still sees them, and every raise and resolve lands on the events stream. This module runs the
rounds: :func:`collect_inputs` gathers an :class:`AlertInputs` snapshot (each source failing alone: a source it cannot
read makes its conditions ``unknown``, never firing; the Redis readings are in :mod:`.alert_inputs`), the pure
conditions of :mod:`.alert_conditions` evaluate it, and :class:`AlertBook` (:mod:`.alert_book`) writes the alerts
hash and publishes ``alert_raised`` / ``alert_resolved`` only when a state changes. The names of those modules are
re-exported here, where callers have always imported them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from visionloop.core.redaction import redact
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.monitoring.alert_book import AlertBook
from visionloop.monitoring.alert_conditions import (
    ACCURACY_DROP,
    CAMERA_DOWN_AFTER_S,
    CHECKS,
    DEAD_LETTER_WINDOW_S,
    LATENCY_MIN_SAMPLES,
    SEVERITY,
    SHADOW_DROP_SHARE,
    AlertInputs,
    Condition,
    Severity,
    ShadowCounters,
    Status,
    accuracy_condition,
    camera_conditions,
    dead_letter_condition,
    drift_conditions,
    evaluate,
    latency_condition,
    shadow_condition,
)
from visionloop.monitoring.alert_inputs import (
    LATENCY_FIELDS,
    LATENCY_MAX_AGE_S,
    LATENCY_SAMPLES,
    LATENCY_STAGES,
    OPTIONAL_STAGES,
    SAMPLE_WRAPPERS,
    read_drift_state,
    read_latencies,
    sample_latency,
)

__all__ = [
    "ACCURACY_DROP",
    "CAMERA_DOWN_AFTER_S",
    "CHECKS",
    "DEAD_LETTER_WINDOW_S",
    "LATENCY_FIELDS",
    "LATENCY_MAX_AGE_S",
    "LATENCY_MIN_SAMPLES",
    "LATENCY_SAMPLES",
    "LATENCY_STAGES",
    "OPTIONAL_STAGES",
    "SAMPLE_WRAPPERS",
    "SEVERITY",
    "SHADOW_DROP_SHARE",
    "AlertBook",
    "AlertInputs",
    "AlertWatcher",
    "Condition",
    "InputMemory",
    "Severity",
    "ShadowCounters",
    "Status",
    "accuracy_condition",
    "api_url",
    "camera_conditions",
    "collect_inputs",
    "dead_letter_condition",
    "drift_conditions",
    "evaluate",
    "evaluate_alerts",
    "latency_condition",
    "read_drift_state",
    "read_latencies",
    "sample_latency",
    "shadow_condition",
]

log = logging.getLogger(__name__)


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
