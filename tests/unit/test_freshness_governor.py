"""The freshness governor: late results cut every camera's rate, fresh ones give it back, a floor keeps each camera
sending, and a budget of 0 leaves the rate alone."""

from __future__ import annotations

import pytest

from visionloop.streaming.governor import DECREASE, INCREASE, FreshnessGovernor


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def window(governor: FreshnessGovernor, clock: Clock, latency_ms: float, results: int = 8) -> None:
    """One window of ``results`` results, each ``latency_ms`` late, closed by one more (steps exact in binary)."""
    for _ in range(results):
        governor.observe(latency_ms)
        clock.now += governor.window_s / results
    governor.observe(latency_ms)


def test_late_results_cut_the_rate_and_fresh_ones_give_it_back() -> None:
    clock = Clock()
    governor = FreshnessGovernor(60.0, clock=clock)
    window(governor, clock, 30.0)
    assert governor.scale == 1.0  # within budget: the full rate
    window(governor, clock, 150.0)
    assert governor.scale == pytest.approx(DECREASE)
    assert governor.fps(15.0) == pytest.approx(15.0 * DECREASE)
    window(governor, clock, 50.0)  # under budget but not well under: hold
    assert governor.scale == pytest.approx(DECREASE)
    window(governor, clock, 20.0)
    assert governor.scale == pytest.approx(DECREASE + INCREASE)
    assert governor.cuts == 1


def test_the_rate_never_falls_below_the_floor() -> None:
    clock = Clock()
    governor = FreshnessGovernor(60.0, min_scale=0.25, clock=clock)
    for _ in range(30):
        window(governor, clock, 500.0)
    assert governor.scale == 0.25


def test_the_p90_decides_not_one_late_result() -> None:
    clock = Clock()
    governor = FreshnessGovernor(60.0, clock=clock)
    for _ in range(15):
        governor.observe(20.0)
        clock.now += 0.0625
    governor.observe(900.0)  # one straggler in seventeen
    clock.now += 0.05
    governor.observe(20.0)
    assert governor.scale == 1.0


def test_a_budget_of_zero_never_changes_the_rate() -> None:
    clock = Clock()
    governor = FreshnessGovernor(0.0, clock=clock)
    window(governor, clock, 10_000.0)
    assert not governor.enabled and governor.scale == 1.0
