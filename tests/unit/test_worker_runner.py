"""The one runner of the background workers: its thread outlives any error, records it, backs off, recovers, stops."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from tests.conftest import wait_for
from visionloop.core.worker_runner import WorkerRunner

log = logging.getLogger("tests.worker_runner")


class Rounds:
    """A round that raises the queued errors one per call, then succeeds; it records when each call came."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[float] = []

    def __call__(self) -> None:
        self.calls.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)


@pytest.fixture
def runners() -> Iterator[list[WorkerRunner]]:
    made: list[WorkerRunner] = []
    yield made
    for runner in made:
        runner.stop(5)


def runner_for(
    made: list[WorkerRunner],
    round_: Callable[[], object],
    *,
    idle_s: float = 0.01,  # a round that returns at once would spin without it
    setup: Callable[[], object] | None = None,
    keep_error: bool = False,
) -> WorkerRunner:
    runner = WorkerRunner(
        "test-worker", round_, log=log, idle_s=idle_s, setup=setup, keep_error=keep_error, backoff_s=0.05,
        max_backoff_s=0.4,
    )  # fmt: skip
    made.append(runner)
    return runner


def test_an_unexpected_error_is_logged_with_its_traceback_and_the_thread_goes_on(
    runners: list[WorkerRunner], caplog: pytest.LogCaptureFixture
) -> None:
    rounds = Rounds(KeyError("camera_id"))
    runner = runner_for(runners, rounds)
    with caplog.at_level(logging.WARNING, logger=log.name):
        runner.start()
        wait_for(lambda: len(rounds.calls), lambda n: n >= 3)
    assert runner.running and runner.errors == 1
    assert runner.last_error is None  # cleared by the good rounds after it
    assert runner.last_error_at is not None
    failed = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failed) == 1 and failed[0].exc_info is not None and failed[0].exc_info[0] is KeyError
    assert "test-worker round failed unexpectedly" in failed[0].getMessage()


class LabelStudioDown(Exception):
    """What a worker names as transient (the labeling worker: Label Studio restarting)."""


@pytest.mark.parametrize(
    ("error", "transient", "level", "traceback"),
    [
        (KeyError("x"), (), logging.ERROR, True),
        (ValueError("bad"), (), logging.ERROR, True),
        (LabelStudioDown("502"), (), logging.ERROR, True),
        (redis.ConnectionError("refused"), (), logging.WARNING, False),
        (OSError("disk full"), (), logging.WARNING, False),
        (TimeoutError("read"), (), logging.WARNING, False),  # an OSError
        (LabelStudioDown("502"), (LabelStudioDown,), logging.WARNING, False),
        (KeyError("x"), (LabelStudioDown,), logging.ERROR, True),
    ],
)
def test_expected_outages_are_warnings_and_anything_else_an_error_with_traceback(
    error: Exception,
    transient: tuple[type[Exception], ...],
    level: int,
    traceback: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner = WorkerRunner("test-worker", Rounds(error), log=log, transient=transient)
    with caplog.at_level(logging.WARNING, logger=log.name):
        assert runner.run_round() is False
    (record,) = caplog.records
    assert record.levelno == level and (record.exc_info is not None) == traceback
    assert runner.last_error == f"{type(error).__name__}: {error}" and runner.errors == 1


def test_the_backoff_doubles_up_to_its_cap_and_a_good_round_resets_it() -> None:
    runner = WorkerRunner("test-worker", Rounds(*[RuntimeError("x")] * 6), log=log, backoff_s=1.0, max_backoff_s=5.0)
    waits = []
    for _ in range(6):
        assert not runner.run_round()
        waits.append(runner.next_backoff_s())
    assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert runner.run_round() and runner.next_backoff_s() == 0.0
    assert runner.status() | {"last_error_at": None} == {
        "running": False,
        "rounds": 7,
        "errors": 6,
        "last_error": None,
        "last_error_at": None,
        "backoff_s": 0.0,
    }


def test_the_thread_waits_the_backoff_between_failed_rounds(runners: list[WorkerRunner]) -> None:
    rounds = Rounds(*[RuntimeError("down")] * 4)
    runner = runner_for(runners, rounds)
    runner.start()
    wait_for(lambda: len(rounds.calls), lambda n: n >= 6)
    gaps = [b - a for a, b in zip(rounds.calls, rounds.calls[1:], strict=False)]
    # 0.05, 0.1, 0.2 and 0.4 (capped) after the four failures; then the good rounds, 0.01 s apart.
    for gap, backoff in zip(gaps, [0.05, 0.1, 0.2, 0.4], strict=False):
        assert gap >= backoff * 0.9
    assert gaps[4] < 0.3


def test_keep_error_leaves_the_workers_own_error_after_a_good_round() -> None:
    runner = WorkerRunner("test-worker", Rounds(), log=log, keep_error=True)
    runner.record_error("v3: the cycle failed")
    assert runner.run_round()
    assert runner.last_error == "v3: the cycle failed" and runner.last_error_at is not None
    runner.record_error(None)
    assert runner.last_error is None and runner.last_error_at is not None  # when the last one was


def test_idle_wait_between_good_rounds(runners: list[WorkerRunner]) -> None:
    rounds = Rounds()
    runner = runner_for(runners, rounds, idle_s=0.3)
    runner.start()
    wait_for(lambda: len(rounds.calls), lambda n: n >= 2, timeout_s=5)
    assert rounds.calls[1] - rounds.calls[0] >= 0.25


def test_setup_runs_once_on_the_thread_and_its_failure_does_not_stop_the_rounds(runners: list[WorkerRunner]) -> None:
    threads: list[str] = []

    def setup() -> None:
        threads.append(threading.current_thread().name)
        raise RuntimeError("no warm-up today")

    rounds = Rounds()
    runner = runner_for(runners, rounds, setup=setup, keep_error=True)
    runner.start()
    wait_for(lambda: len(rounds.calls), lambda n: n >= 3)
    assert threads == ["test-worker"]
    assert runner.last_error == "RuntimeError: no warm-up today" and runner.errors == 1 and runner.running


def test_stop_is_prompt_even_during_a_long_backoff_or_wait(runners: list[WorkerRunner]) -> None:
    long_backoff = WorkerRunner("test-worker", Rounds(RuntimeError("x")), log=log, backoff_s=60, max_backoff_s=60)
    runners.append(long_backoff)
    waiting: list[WorkerRunner] = []
    in_round = WorkerRunner("test-worker", lambda: waiting[0].wait(60), log=log)
    waiting.append(in_round)
    runners.append(in_round)
    for runner in (long_backoff, in_round):
        runner.start()
    wait_for(lambda: long_backoff.errors, lambda n: n == 1)
    wait_for(lambda: in_round.rounds, lambda n: n == 1)
    for runner in (long_backoff, in_round):
        started = time.monotonic()
        runner.stop(5)
        assert time.monotonic() - started < 1.0 and not runner.running and runner.stopping


def test_stop_before_start_and_start_twice_are_harmless(runners: list[WorkerRunner]) -> None:
    runner = runner_for(runners, Rounds(), idle_s=0.05)
    runner.stop(1)
    assert not runner.started
    runner.start()
    runner.start()
    assert [t.name for t in threading.enumerate()].count("test-worker") == 1
