"""The monitor's windows without I/O: references set explicitly or reset on request, and the persistence alarm."""

from __future__ import annotations

import numpy as np

from visionloop.core.settings import DriftSettings
from visionloop.monitoring.drift_sampler import DriftSample
from visionloop.monitoring.drift_windows import ALL_SCOPE, DriftWindows

DRIFT = DriftSettings(window_size=10, persistence=2)


def samples(count: int, level: float, seed: int, camera: str = "cam", version: str = "v1") -> list[DriftSample]:
    """Frames whose look sits around ``level`` (a unit-length appearance vector) with one confident detection."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        vector = np.abs(rng.normal(level, 0.01, 16))
        out.append(
            DriftSample(
                camera, float(i), version, f"f{i}", [0.9], [0], [0.2], list(vector / np.linalg.norm(vector)), {}, 0
            )
        )
    return out


def feed(windows: DriftWindows, batch: list[DriftSample]) -> list[tuple[str, bool | None, bool]]:
    outcomes = [o for s in batch for o in windows.add(s)]
    return [(o.scope, None if o.result is None else o.result.drifted, o.alarm_changed) for o in outcomes]


def test_reference_then_windows_then_alarm_after_persistence() -> None:
    windows = DriftWindows(DRIFT)
    assert feed(windows, samples(10, 0.5, 1)) == [("cam", None, False), (ALL_SCOPE, None, False)]
    assert feed(windows, samples(10, 0.5, 2)) == [("cam", False, False), (ALL_SCOPE, False, False)]
    shifted = np.concatenate([np.full(8, 0.9), np.full(8, 0.1)])
    moved = [DriftSample("cam", 0.0, "v1", "x", [0.9], [0], [0.2], list(shifted / np.linalg.norm(shifted)), {}, 0)] * 10
    assert feed(windows, moved) == [("cam", True, False), (ALL_SCOPE, True, False)]
    assert feed(windows, moved) == [("cam", True, True), (ALL_SCOPE, True, True)]
    assert windows.scopes["cam"].alarm and windows.scopes["cam"].view()["consecutive"] == 2


def test_explicit_and_reset_references() -> None:
    windows = DriftWindows(DRIFT)
    outcome = windows.set_reference("cam", samples(10, 0.5, 1), "gold predictions")
    assert outcome.entry["kind"] == "reference" and outcome.entry["source"] == "gold predictions"
    got = feed(windows, samples(10, 0.5, 2))
    assert ("cam", False, False) in got  # compared with the explicit reference at once
    assert (ALL_SCOPE, None, False) in got  # the overall scope had none yet: this window became it
    assert windows.reset_reference("cam") == ["cam"]
    assert windows.scopes["cam"].reference is None
    assert ("cam", None, False) in feed(windows, samples(10, 0.5, 3))


def test_the_overall_scope_takes_a_new_reference_when_the_cameras_change() -> None:
    windows = DriftWindows(DRIFT)
    assert feed(windows, samples(10, 0.5, 1, camera="a")) == [("a", None, False), (ALL_SCOPE, None, False)]
    # Camera b joins, looking nothing like a: the pooled windows change, but no camera drifted.
    shifted = np.concatenate([np.full(8, 0.9), np.full(8, 0.1)])
    other = [DriftSample("b", 0.0, "v1", "y", [0.9], [0], [0.2], list(shifted / np.linalg.norm(shifted)), {}, 0)]
    mixed = [s for pair in zip(samples(10, 0.5, 2, camera="a"), other * 10, strict=True) for s in pair]
    got = feed(windows, mixed)
    assert (ALL_SCOPE, None, False) in got  # a new reference (cameras a and b), not a drifted window
    assert windows.scopes[ALL_SCOPE].reference_info["cameras"] == ["a", "b"]
    assert "cameras changed" in windows.scopes[ALL_SCOPE].reference_info["source"]
    assert all(drifted is not True for _, drifted, _ in feed(windows, mixed))
