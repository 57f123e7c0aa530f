"""Fresh results before many results: the cameras of a process send fewer frames while results come back late.

A live camera's result is worth something only while the scene still looks like the frame: a result that comes back
late was work taken from a frame that could have been fresh. When the machine is short of CPU (more cameras than it
can infer), sending every camera's every frame makes each one wait in the queues and each decode fall behind, so
every result arrives late. The governor watches how long the process's frames take from decode to result (its p90
over each window) and, like TCP's congestion control, cuts every camera's rate multiplicatively while that exceeds
the budget and gives it back additively once it is well under. The frames it holds back are counted as skipped;
each camera keeps at least ``min_scale`` of its target rate, so none goes dark.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

DECREASE = 0.85  # the scale kept after a window over budget
INCREASE = 0.1  # the scale given back after a window well under budget
UNDER = 0.7  # "well under": the p90 below this share of the budget
MIN_SAMPLES = 3  # a window with fewer results says nothing


class FreshnessGovernor:
    """The share of their target frame rate that a process's cameras send now (1.0: all of it)."""

    def __init__(
        self,
        budget_ms: float,
        window_s: float = 1.0,
        min_scale: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget_ms = budget_ms
        self.window_s = window_s
        self.min_scale = min_scale
        self._clock = clock
        self._scale = 1.0
        self._window: list[float] = []
        self._window_start: float | None = None
        self._lock = threading.Lock()
        self.cuts = 0  # windows over budget (each cut the rate)

    @property
    def enabled(self) -> bool:
        return self.budget_ms > 0

    @property
    def scale(self) -> float:
        return self._scale

    def observe(self, latency_ms: float) -> None:
        """A result came back ``latency_ms`` after its frame was decoded."""
        if not self.enabled:
            return
        now = self._clock()
        with self._lock:
            if self._window_start is None:
                self._window_start = now
            self._window.append(latency_ms)
            if now - self._window_start < self.window_s:
                return
            if len(self._window) >= MIN_SAMPLES:
                self._adjust(float(np.percentile(self._window, 90)))
            self._window.clear()
            self._window_start = now

    def _adjust(self, p90_ms: float) -> None:
        if p90_ms > self.budget_ms:
            self._scale = max(self.min_scale, self._scale * DECREASE)
            self.cuts += 1
        elif p90_ms < UNDER * self.budget_ms:
            self._scale = min(1.0, self._scale + INCREASE)

    def fps(self, target_fps: float) -> float:
        """The rate a camera asking for ``target_fps`` sends at now."""
        return target_fps * self._scale
