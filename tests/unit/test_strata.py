"""Strata of camera x time window: the best frames of a window leave when it ends, bounded memory."""

from __future__ import annotations

import pytest

from visionloop.labeling.strata import StratumHold


def test_a_window_releases_its_best_when_the_camera_moves_on() -> None:
    hold: StratumHold[str] = StratumHold(window_s=10.0, keep=2)
    for ts, score, name in [(0.0, 0.2, "a0"), (1.0, 0.9, "a1"), (2.0, 0.5, "a2"), (3.0, 0.1, "a3")]:
        assert hold.hold("a", ts, score, name) == []
    assert len(hold) == 2
    assert not hold.would_keep("a", 4.0, 0.4) and hold.would_keep("a", 4.0, 0.6)
    assert hold.release("a", 9.9) == []
    assert hold.release("a", 10.0) == ["a1", "a2"]  # best first
    assert len(hold) == 0


def test_a_quiet_camera_is_released_a_window_later_and_cameras_are_bounded() -> None:
    hold: StratumHold[str] = StratumHold(window_s=10.0, keep=1, max_cameras=2)
    hold.hold("quiet", 1.0, 0.5, "q")
    assert hold.hold("busy", 15.0, 0.5, "b1") == []  # quiet's window ended, but only just
    assert hold.hold("busy", 25.0, 0.5, "b2") == ["q", "b1"]
    hold.hold("c", 25.0, 0.5, "c")
    assert hold.hold("d", 26.0, 0.5, "d") == ["b2"]  # a third camera pushes the oldest stratum out
    assert sorted(hold.drain()) == ["c", "d"]
    with pytest.raises(ValueError):
        StratumHold(window_s=0.0)


def test_the_share_of_random_windows_is_what_was_asked() -> None:
    import math

    from visionloop.labeling.strata import Strata

    strata: Strata[str] = Strata(window_s=1.0, keep=1, random_share=0.25, seed=7)
    flips = [strata.is_random(f"cam{c}", float(t)) for c in range(4) for t in range(1000)]
    share = sum(flips) / len(flips)
    bound = 4 * math.sqrt(0.25 * 0.75 / len(flips))  # four standard errors
    assert abs(share - 0.25) < bound
    assert strata.is_random("cam0", 5.2) == strata.is_random("cam0", 5.7)  # decided once per window
    with pytest.raises(ValueError):
        Strata(window_s=1.0, keep=1, random_share=1.5)
