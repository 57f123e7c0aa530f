"""A model call that never returns makes the Detector replica unhealthy, so Serve replaces it."""

from __future__ import annotations

import time

import pytest

from visionloop.serving.detector import Detector, StuckBatchWatch


def test_a_call_past_the_limit_is_a_problem_and_a_finished_one_is_not() -> None:
    watch = StuckBatchWatch(limit_s=5.0)
    assert watch.problem() is None
    first = watch.start()
    watch.start()
    assert watch.problem() is None  # running, but not for long
    later = time.monotonic() + 6.0
    problem = watch.problem(now=later)
    assert problem is not None and "6 s" in problem and "stuck_batch_s" in problem
    watch.finish(first)
    watch.finish(first)  # finishing twice is harmless
    assert watch.problem(now=later) is not None  # the other call still hangs
    watch._running.clear()
    assert watch.problem(now=later) is None


def test_the_replica_health_probe_raises_while_a_call_hangs() -> None:
    replica = Detector.func_or_class.__new__(Detector.func_or_class)  # the probe only reads the watch
    replica._stuck = StuckBatchWatch(limit_s=0.05)
    replica.check_health()  # nothing running: healthy
    replica._stuck.start()
    time.sleep(0.1)
    with pytest.raises(RuntimeError, match="backend hung"):
        replica.check_health()
