"""The camera state machine: explicit states, allowed transitions as data, transitions under a lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class CameraState(StrEnum):
    CONNECTING = "connecting"  # opening the stream
    STREAMING = "streaming"  # frames arriving
    STALLED = "stalled"  # connected, but no frame for stall_timeout_s: the watchdog reconnects
    BACKOFF = "backoff"  # waiting before the next attempt after a transient error
    FAILED = "failed"  # a permanent error (401, 404, not a video): retried rarely, needs an operator
    STOPPED = "stopped"  # removed or shut down


ALLOWED: dict[CameraState, frozenset[CameraState]] = {
    CameraState.CONNECTING: frozenset(
        {CameraState.STREAMING, CameraState.BACKOFF, CameraState.FAILED, CameraState.STALLED, CameraState.STOPPED}
    ),
    CameraState.STREAMING: frozenset(
        {CameraState.STALLED, CameraState.BACKOFF, CameraState.FAILED, CameraState.STOPPED}
    ),
    # STALLED -> FAILED: a stalled read that ends in a permanent error (a stream that turned out corrupt).
    CameraState.STALLED: frozenset(
        {CameraState.CONNECTING, CameraState.BACKOFF, CameraState.FAILED, CameraState.STOPPED}
    ),
    CameraState.BACKOFF: frozenset({CameraState.CONNECTING, CameraState.STOPPED}),
    CameraState.FAILED: frozenset({CameraState.CONNECTING, CameraState.STOPPED}),
    CameraState.STOPPED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


@dataclass(frozen=True)
class Transition:
    old: CameraState
    new: CameraState
    reason: str
    at: float


class StateMachine:
    """Holds one camera's state; ``on_change`` hears every transition (for metrics and the events stream)."""

    def __init__(self, on_change: Callable[[Transition], None] | None = None) -> None:
        self._state = CameraState.CONNECTING
        self._since = time.time()
        self._reason = "starting"
        self._lock = threading.Lock()
        self._on_change = on_change

    @property
    def state(self) -> CameraState:
        return self._state

    @property
    def since(self) -> float:
        return self._since

    @property
    def reason(self) -> str:
        """Why the camera is in its state (the last transition's reason)."""
        return self._reason

    def to(self, new: CameraState, reason: str = "") -> bool:
        """Move to ``new``; False if already there. An illegal move is a bug and raises."""
        with self._lock:
            old = self._state
            if new == old:
                return False
            if new not in ALLOWED[old]:
                raise IllegalTransition(f"{old.value} -> {new.value} is not allowed ({reason})")
            self._state, self._since, self._reason = new, time.time(), reason
        if self._on_change:
            self._on_change(Transition(old, new, reason, self._since))
        return True
