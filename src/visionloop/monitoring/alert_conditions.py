"""The alert conditions of ``dashboards/alerts.yml`` as pure functions of an :class:`AlertInputs` snapshot.

Each condition is firing, ok or ``unknown`` (its source could not be read: never firing). ``family`` names the rule;
per-scope conditions (a camera, a drift scope) share it. Messages name camera ids, never URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from visionloop.core.redaction import redact
from visionloop.core.streams import ACCURACY_STATE_FIELD

CAMERA_DOWN_AFTER_S = 60.0  # STALLED or BACKOFF longer than this is a camera down (FAILED at once)
DEAD_LETTER_WINDOW_S = 600.0
ACCURACY_DROP = 0.1  # the CI's upper bound this far below the champion's reference mAP50 is a drop
SHADOW_DROP_SHARE = 0.05
LATENCY_MIN_SAMPLES = 20  # fewer: a p99 is just the maximum of a handful


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
