"""One runner for every background worker: a worker's round, again and again, on a named daemon thread.

The learning loop, the drift monitor, the explanation worker and the labeling worker each had their own loop with
its own error policy (one let an unexpected error end its thread with nothing said in ``status``). Here is the one
policy: an expected outage (Redis, the OS, and what the worker names as transient) is a warning, anything else is
logged with its traceback; both are recorded (``last_error``, ``last_error_at``), the thread backs off (doubling
from ``backoff_s`` up to ``max_backoff_s``, back to the start after a good round) and goes on. The thread must
outlive a bug: what the round left unacknowledged on its stream is read again next round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

EXPECTED_OUTAGES: tuple[type[Exception], ...] = (redis.RedisError, OSError)


class WorkerRunner:
    """Runs ``round_`` until :meth:`stop`; a round blocks on its own (a stream read) or the runner waits ``idle_s``
    after it. ``keep_error``: a good round leaves ``last_error`` alone (for workers that record failures of their own
    work there, such as a failed cycle or request, which a quiet round must not hide)."""

    def __init__(
        self,
        name: str,
        round_: Callable[[], object],
        *,
        log: logging.Logger,
        transient: tuple[type[Exception], ...] = (),
        setup: Callable[[], object] | None = None,
        idle_s: float = 0.0,
        keep_error: bool = False,
        backoff_s: float = 2.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        """``setup`` runs once on the thread before the first round (niceness, a warm-up); its failure is recorded
        like a round's, and the rounds run anyway."""
        self.name = name
        self._round = round_
        self._log = log
        self._transient = EXPECTED_OUTAGES + transient
        self._setup = setup
        self._idle_s = idle_s
        self._keep_error = keep_error
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0  # in a row: what the backoff grows with
        self.rounds = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Ask the thread to stop and wait for it: a round in progress finishes (or reaches its next stop check)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def wait(self, seconds: float) -> bool:
        """Sleep inside a round, cut short by :meth:`stop`; True when stopping."""
        return self._stop.wait(seconds)

    def record_error(self, message: str | None) -> None:
        """Set (or, with None, clear) ``last_error``; ``last_error_at`` keeps when the last one happened."""
        self.last_error = message
        if message is not None:
            self.last_error_at = time.time()

    def next_backoff_s(self) -> float:
        """The wait after the latest failure: doubling with each failure in a row, capped."""
        if self._failures == 0:
            return 0.0
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** min(self._failures - 1, 30)))

    def status(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "rounds": self.rounds,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "backoff_s": self.next_backoff_s(),
        }

    def run_round(self) -> bool:
        """One round under the error policy; True when it went well."""
        self.rounds += 1
        if not self._attempt(self._round, "round failed", "retrying in {:.1f} s"):
            return False
        self._failures = 0
        if not self._keep_error:
            self.last_error = None
        return True

    def _run(self) -> None:
        if self._setup is not None:
            self._attempt(self._setup, "setup failed", "the rounds run anyway")
            self._failures = 0  # the rounds start with the short backoff
        while not self._stop.is_set():
            if self.run_round():
                if self._idle_s:
                    self._stop.wait(self._idle_s)
            else:
                self._stop.wait(self.next_backoff_s())

    def _attempt(self, step: Callable[[], object], what: str, then: str) -> bool:
        try:
            step()
        except self._transient as exc:
            self._failed(exc)
            self._log.warning("%s %s (%s): %s", self.name, what, then.format(self.next_backoff_s()), self.last_error)
            return False
        except Exception as exc:
            self._failed(exc)
            self._log.exception("%s %s unexpectedly (%s)", self.name, what, then.format(self.next_backoff_s()))
            return False
        return True

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self._failures += 1
        self.record_error(f"{type(exc).__name__}: {exc}")
