"""Windows per scope, their reference, and the persistence alarm: the drift monitor's logic without any I/O.

Every sample goes to two scopes, its camera and ``_all``. A scope fills windows of ``drift.window_size`` samples; the
first full window after the champion changed (the samples' model version) becomes its reference, and each later
window is compared with it (:func:`learning.drift_stats.compare_windows`); ``_all`` takes a new reference when the
cameras in a window differ from the reference's (a camera added or removed changes the pooled mix, which is not
drift). ``drift.persistence`` drifted windows in a row raise the scope's alarm and as many clean ones clear it: one
noisy window is not an incident. Memory stays bounded: one reference and one filling window per scope.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from visionloop.core.settings import DriftSettings
from visionloop.monitoring.drift_sampler import DriftSample
from visionloop.monitoring.drift_stats import DriftResult, FrameSummary, WindowSummary, compare_windows

ALL_SCOPE = "_all"
RETIRED_GRACE_S = 60.0  # late answers of the version just replaced are dropped for this long (not a new reset)


@dataclass
class ScopeState:
    """One scope's reference, the window being filled, and the alarm's run counts."""

    model_version: str | None = None
    retired: tuple[str, float] | None = None  # (version, when replaced)
    reference: WindowSummary | None = None
    reference_info: dict[str, Any] = field(default_factory=dict)
    filling: list[FrameSummary] = field(default_factory=list)
    filling_cameras: set[str] = field(default_factory=set)
    reference_cameras: frozenset[str] = frozenset()
    first_ts: float | None = None
    alarm: bool = False
    in_drift: int = 0  # drifted windows in a row
    clean: int = 0  # clean windows in a row
    windows: int = 0
    last: dict[str, Any] | None = None

    def reset(self, version: str | None, reason: str) -> None:
        if self.model_version and version != self.model_version:
            self.retired = (self.model_version, time.time())
        self.model_version, self.reference, self.filling, self.first_ts = version, None, [], None
        self.filling_cameras = set()
        self.reference_info = {"state": "waiting", "reason": reason, "model_version": version}
        self.in_drift = self.clean = 0

    def view(self) -> dict[str, Any]:
        return {
            "alarm": self.alarm,
            "consecutive": self.in_drift,
            "clean": self.clean,
            "model_version": self.model_version,
            "reference": self.reference_info,
            "filling": len(self.filling),
            "windows_evaluated": self.windows,
            "last_window": self.last,
        }


@dataclass(frozen=True)
class Outcome:
    """What one completed window did: set a reference (``result`` None) or was compared with it."""

    scope: str
    entry: dict[str, Any]  # the drift stream's JSON
    view: dict[str, Any]  # the state hash's JSON
    result: DriftResult | None = None
    alarm_changed: bool = False


class DriftWindows:
    def __init__(self, drift: DriftSettings) -> None:
        self.drift = drift
        self.scopes: dict[str, ScopeState] = {}

    def add(self, sample: DriftSample) -> list[Outcome]:
        """Fold one sample into its camera's scope and ``_all``; the windows it completed."""
        outcomes = []
        for scope in (sample.camera_id, ALL_SCOPE):
            state = self.scopes.setdefault(scope, ScopeState())
            if not self._follow_version(state, sample.model_version):
                continue
            state.first_ts = state.first_ts if state.first_ts is not None else sample.ts
            state.filling.append(sample.summary)
            state.filling_cameras.add(sample.camera_id)
            if len(state.filling) < self.drift.window_size:
                continue
            frames, first_ts, state.filling, state.first_ts = state.filling, state.first_ts, [], None
            cameras, state.filling_cameras = frozenset(state.filling_cameras), set()
            if state.reference is None:
                outcomes.append(self._set_reference(scope, state, frames, "first window", first_ts, cameras))
            elif scope == ALL_SCOPE and cameras != state.reference_cameras:
                # Every camera pooled: a camera added or gone changes the mix, which is not drift. A new reference.
                reason = f"cameras changed: {', '.join(sorted(cameras))}"
                outcomes.append(self._set_reference(scope, state, frames, reason, first_ts, cameras))
            else:
                outcomes.append(self._evaluate(scope, state, WindowSummary.of(frames), first_ts, sample.ts))
        return outcomes

    def reset_reference(self, scope: str | None = None) -> list[str]:
        """Forget the reference of ``scope`` (every scope when None): the next full window becomes it."""
        names = [scope] if scope else list(self.scopes)
        for name in names:
            state = self.scopes.setdefault(name, ScopeState())
            state.reset(state.model_version, "reset by request")
        return names

    def set_reference(self, scope: str, samples: list[DriftSample], source: str) -> Outcome:
        """Use ``samples`` as the reference of ``scope``; the window being filled starts over."""
        state = self.scopes.setdefault(scope, ScopeState())
        state.reset(samples[-1].model_version, source)
        cameras = frozenset(s.camera_id for s in samples)
        return self._set_reference(scope, state, [s.summary for s in samples], source, samples[0].ts, cameras)

    @staticmethod
    def _follow_version(state: ScopeState, version: str) -> bool:
        """Reset the scope when the champion changed; False for a late answer of the version just replaced."""
        if version == state.model_version:
            return True
        retired = state.retired
        if retired and retired[0] == version and time.time() - retired[1] < RETIRED_GRACE_S:
            return False
        state.reset(version, "champion changed" if state.model_version else "first samples")
        return True

    def _set_reference(
        self,
        scope: str,
        state: ScopeState,
        frames: list[FrameSummary],
        source: str,
        first_ts: float,
        cameras: frozenset[str],
    ) -> Outcome:
        state.reference, state.reference_cameras = WindowSummary.of(frames), cameras
        state.reference_info = {
            "state": "set",
            "source": source,
            "cameras": sorted(cameras),
            "model_version": state.model_version,
            "frames": len(frames),
            "from_ts": first_ts,
            "set_at": time.time(),
        }
        return Outcome(scope, {"kind": "reference", **state.reference_info}, state.view())

    def _evaluate(
        self, scope: str, state: ScopeState, window: WindowSummary, first_ts: float, last_ts: float
    ) -> Outcome:
        assert state.reference is not None
        started = time.perf_counter()
        result = compare_windows(
            state.reference,
            window,
            alpha=self.drift.alpha,
            psi_threshold=self.drift.psi_threshold,
            permutations=self.drift.permutations,
            seed=state.windows,
            min_appearance_shift=self.drift.min_appearance_shift,
            alarm_tests=self.drift.alarm_tests,
        )
        state.windows += 1
        changed = self._track_alarm(state, result.drifted)
        state.last = {
            "kind": "window",
            "index": state.windows,
            "from_ts": first_ts,
            "to_ts": last_ts,
            "frames": window.frames,
            "model_version": state.model_version,
            "seconds": round(time.perf_counter() - started, 4),
            **result.to_dict(),
            "alarm": state.alarm,
            "consecutive": state.in_drift,
        }
        return Outcome(scope, state.last, state.view(), result, changed)

    def _track_alarm(self, state: ScopeState, drifted: bool) -> bool:
        """Count the run of drifted (or clean) windows; True when the alarm changed."""
        state.in_drift, state.clean = (state.in_drift + 1, 0) if drifted else (0, state.clean + 1)
        persistence = self.drift.persistence
        if not state.alarm and state.in_drift >= persistence:
            state.alarm = True
            return True
        if state.alarm and state.clean >= persistence:
            state.alarm = False
            return True
        return False
