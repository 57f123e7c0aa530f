"""The drift monitor: sampled frames -> windows per camera and overall -> statistics against a reference -> alarm.

The face runs :class:`DriftMonitor` as a Ray actor. Its thread reads the drift-samples stream through a consumer
group and acknowledges each batch once it is folded into the windows (:mod:`learning.drift_windows`: references,
statistics, the persistence alarm). Results go to the drift stream (one entry per window or reference), the state
hash (the dashboard's view per scope), the events stream (alarm raised / cleared) and Ray gauges. An alarm outlives
a reference reset (a new champion): it clears only after ``drift.persistence`` clean windows.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import redis

from visionloop.core.errors import VisionloopError
from visionloop.core.events import EventLog
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames, ensure_group
from visionloop.core.worker_runner import WorkerRunner
from visionloop.monitoring.accuracy import AccuracyMonitor
from visionloop.monitoring.alert_rules import AlertWatcher
from visionloop.monitoring.drift_sampler import DriftSample
from visionloop.monitoring.drift_stats import DriftResult
from visionloop.monitoring.drift_windows import DriftWindows, Outcome

log = logging.getLogger(__name__)

CONSUMER = "drift-monitor"
ALARM_EVENT = "drift_alarm"
CLEARED_EVENT = "drift_cleared"
PERIODIC_S = 10.0
READ_COUNT = 500

Entries = list[tuple[bytes, dict[bytes, bytes]]]


class _Gauges:
    """Ray gauges made inside the actor (as serving/metrics.py); none when Ray's metrics cannot be made here."""

    def __init__(self) -> None:
        try:
            from ray.util import metrics

            self.alarm: Any = metrics.Gauge("visionloop_drift_alarm", "1 while drift persists.", tag_keys=("scope",))
            self.in_drift: Any = metrics.Gauge(
                "visionloop_drift_windows_in_drift", "Drifted windows in a row.", tag_keys=("scope",)
            )
            self.p_value: Any = metrics.Gauge(
                "visionloop_drift_p_value", "p-value of each drift test, last window.", tag_keys=("scope", "test")
            )
        except Exception as exc:  # no Ray here (a test, a one-off run): the stream and the hash still tell
            log.info("drift gauges unavailable: %s", exc)
            self.alarm = self.in_drift = self.p_value = None

    def record(self, scope: str, view: dict[str, Any], result: DriftResult) -> None:
        if self.alarm is None:
            return
        self.alarm.set(float(view["alarm"]), tags={"scope": scope})
        self.in_drift.set(float(view["consecutive"]), tags={"scope": scope})
        for name, test in result.tests.items():
            if test.p_value is not None:
                self.p_value.set(test.p_value, tags={"scope": scope, "test": name})
        if result.adjusted_p is not None:
            self.p_value.set(result.adjusted_p, tags={"scope": scope, "test": "adjusted"})


class DriftMonitor:
    """Windows, statistics and alarms for every scope; a plain class the face runs as a Ray actor
    (``max_concurrency`` > 1, so ``status`` answers while the thread works)."""

    def __init__(
        self,
        settings: Settings,
        redis_url: str,
        *,
        consumer: str = CONSUMER,
        periodic_tasks: Sequence[Callable[[], object]] = (),
        watch_accuracy_and_alerts: bool = False,
    ) -> None:
        """``watch_accuracy_and_alerts``: also run the random-arm accuracy and the alert rules every ~10 s (the
        service does; they need the API and the labels, which a unit test of the windows does not)."""
        self._settings, self._drift = settings, settings.drift
        self._streams = StreamNames(settings.redis.stream_prefix)
        timeout = settings.redis.socket_timeout_s
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout)
        self._reader = redis.Redis.from_url(redis_url, socket_timeout=self._drift.poll_interval_s + timeout)
        self._events = EventLog(redis_url, self._streams, settings.var.events_pending)
        self._consumer = consumer
        self._gauges = _Gauges()
        self._windows = DriftWindows(settings.drift)
        self._lock = threading.Lock()  # the thread and a direct call (tests, evaluate_now) never overlap
        # Unacknowledged entries of a failed round are read again by the next one.
        self._runner = WorkerRunner("drift-monitor", self._round, log=log)
        self._next_periodic = 0.0
        # Jobs run every ~10 s by the thread (accuracy on the random arm, alert rules): the face appends them.
        self._periodic_tasks: list[Callable[[], object]] = list(periodic_tasks)
        self.samples_read = 0
        self._alerts: AlertWatcher | None = None
        if watch_accuracy_and_alerts:
            accuracy = AccuracyMonitor(settings)
            self._alerts = AlertWatcher(settings, self._redis)
            # Accuracy first: the alert rules read the report it stores.
            self._periodic_tasks += [lambda: accuracy.update(self._redis), self._alerts.run_once]

    @property
    def last_error(self) -> str | None:
        return self._runner.last_error

    @last_error.setter
    def last_error(self, message: str | None) -> None:
        self._runner.record_error(message)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        self._ensure_group()
        self._runner.start()
        return {"group": self._streams.drift_group, "consumer": self._consumer}

    def stop(self) -> None:
        self._runner.stop(10)
        if self._alerts is not None:
            self._alerts.close()
        self._redis.close()
        self._reader.close()

    def status(self) -> dict[str, Any]:
        with self._lock:
            scopes = {name: state.view() for name, state in self._windows.scopes.items()}
        return {
            "running": self._runner.running,
            "samples_read": self.samples_read,
            "last_error": self.last_error,
            "scopes": scopes,
            **self._runner.status(),  # rounds, errors, last_error_at, backoff_s
        }

    def add_periodic(self, task: Callable[[], object]) -> None:
        self._periodic_tasks.append(task)

    def periodic(self) -> None:
        """Run the periodic tasks; one failing does not keep the others from running."""
        for task in list(self._periodic_tasks):
            try:
                task()
            except Exception:
                log.exception("drift monitor periodic task %r failed", task)

    # -- references -----------------------------------------------------------------------------------------------

    def reset_reference(self, scope: str | None = None) -> list[str]:
        """Forget the reference of ``scope`` (every scope when None): the next full window becomes it."""
        with self._lock:
            return self._windows.reset_reference(scope)

    def set_reference(self, scope: str, samples: Iterable[dict[str, Any]], source: str = "explicit") -> int:
        """Use these samples (drift-samples stream fields, e.g. the champion's answers on its gold frames) as the
        reference of ``scope``; the window being filled starts over."""
        parsed = [DriftSample.from_fields(fields) for fields in samples]
        if not parsed:
            raise VisionloopError("a reference needs at least one sample")
        with self._lock:
            self._publish(self._windows.set_reference(scope, parsed, source))
        return len(parsed)

    # -- the samples stream ---------------------------------------------------------------------------------------

    def _ensure_group(self) -> None:
        ensure_group(self._redis, self._streams.drift_samples, self._streams.drift_group)

    def _round(self) -> None:
        """One read of the stream, then the periodic tasks when they are due (after a failed read too)."""
        try:
            self.poll(block_ms=int(self._drift.poll_interval_s * 1000))
        finally:
            if time.monotonic() >= self._next_periodic:
                self._next_periodic = time.monotonic() + PERIODIC_S
                self.periodic()

    def poll(self, block_ms: int | None = None) -> int:
        """Fold pending entries (left by a crash) and then new ones into the windows; acknowledge them. Returns how
        many entries were handled."""
        handled = self._handle(self._read("0", None))
        if not handled:
            handled = self._handle(self._read(">", block_ms))
        return handled

    def evaluate_now(self) -> int:
        """Read everything waiting on the stream now (tests and the CLI; the thread does this on its own)."""
        total = 0
        while count := self.poll(None):
            total += count
        return total

    def _read(self, start: str, block_ms: int | None) -> Entries:
        batch: Any = self._reader.xreadgroup(
            self._streams.drift_group,
            self._consumer,
            {self._streams.drift_samples: start},
            count=READ_COUNT,
            block=block_ms,
        )
        return [entry for _, entries in batch or [] for entry in entries]

    def _handle(self, entries: Entries) -> int:
        if not entries:
            return 0
        with self._lock:
            for _, fields in entries:
                if not fields:  # deleted by the stream's trimming while pending
                    continue
                try:
                    sample = DriftSample.from_fields(fields)
                except (KeyError, ValueError) as exc:
                    log.warning("malformed drift sample skipped: %s", exc)
                    continue
                self.samples_read += 1
                for outcome in self._windows.add(sample):
                    self._publish(outcome)
        self._redis.xack(self._streams.drift_samples, self._streams.drift_group, *[i for i, _ in entries])
        return len(entries)

    def _publish(self, outcome: Outcome) -> None:
        """One completed window (or reference) out to the stream, the hash, the gauges and, when the alarm changed,
        the events stream."""
        scope, result = outcome.scope, outcome.result
        self._write(scope, outcome.entry, outcome.view)
        if result is None:
            return
        self._gauges.record(scope, outcome.view, result)
        if outcome.alarm_changed:
            self._events.publish(
                ALARM_EVENT if outcome.view["alarm"] else CLEARED_EVENT,
                scope=scope,
                model_version=outcome.view["model_version"],
                windows=self._drift.persistence,
                adjusted_p=result.adjusted_p,
                reasons=result.reasons,
            )

    def _write(self, scope: str, entry: dict[str, Any], view_data: dict[str, Any]) -> None:
        """Add the entry to the drift stream and the scope's view to the state hash. A failure is logged, not raised:
        the windows go on, and the next window rewrites the view."""
        body = json.dumps(entry, separators=(",", ":"), default=float)
        view = json.dumps(view_data, separators=(",", ":"), default=float)
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                pipe.xadd(
                    self._streams.drift,
                    {"scope": scope, "ts": f"{time.time():.3f}", "json": body},
                    maxlen=self._drift.results_maxlen,
                    approximate=True,
                )
                pipe.hset(self._streams.drift_state, scope, view)
                pipe.execute()
        except (redis.RedisError, OSError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("drift result of %s not written: %s", scope, self.last_error)
