"""Progress for long work: a live bar on a terminal, plain lines everywhere else (logs, CI, pipes).

A live bar draws nothing when the output is not a terminal, so a 10-minute training would look hung in a log
file. Off a terminal the same tasks are reported as plain lines: when a task starts, when its state changes (at
most every ``min_gap_s``), at least every ``heartbeat_s`` while it runs, and when it finishes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def remaining(task: Task, elapsed_at_step: float | None = None) -> float | None:
    """Seconds left at the average pace so far (steady for coarse steps such as epochs, unlike a windowed rate).

    The pace is taken when the last step completed (``elapsed_at_step``), so the estimate counts down between
    steps instead of growing while a long step runs.
    """
    if not task.total or not task.completed or task.elapsed is None:
        return None
    at_step = task.elapsed if elapsed_at_step is None else elapsed_at_step
    left = at_step / task.completed * (task.total - task.completed) - (task.elapsed - at_step)
    return max(left, 0.0)


def describe(task: Task, elapsed_at_step: float | None = None) -> str:
    """One plain line for a task: 'training: 3/30 (10%), elapsed 1m02s, ETA 8m10s, val mAP50 0.123'."""
    done = f"{task.completed:g}/{task.total:g} ({task.percentage:.0f}%)" if task.total else f"{task.completed:g}"
    line = f"{task.description}: {done}, elapsed {_clock(task.elapsed)}"
    if not task.finished:
        line += f", ETA {_clock(remaining(task, elapsed_at_step))}"
    status = str(task.fields.get("status", "")).strip()
    return f"{line}, {status}" if status else line


@dataclass
class _Reported:
    at: float
    state: tuple[float, str]
    finished: bool
    elapsed_at_step: float | None


class PlainReporter:
    """Prints the tasks of a (non-rendering) ``Progress`` as plain lines from a background thread."""

    def __init__(self, progress: Progress, console: Console, heartbeat_s: float = 15.0, min_gap_s: float = 5.0):
        self.progress = progress
        self.console = console
        self.heartbeat_s = heartbeat_s
        self.min_gap_s = min_gap_s
        self._reported: dict[TaskID, _Reported] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress-lines", daemon=True)

    def __enter__(self) -> PlainReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.report_once()

    def _run(self) -> None:
        while not self._stop.wait(min(0.5, self.heartbeat_s / 3)):
            self.report_once()

    def report_once(self) -> None:
        now = time.monotonic()
        for task in list(self.progress.tasks):
            state = (task.completed, str(task.fields.get("status", "")))
            seen = self._reported.get(task.id)
            due = (
                seen is None
                or (task.finished and not seen.finished)
                or (not task.finished and state != seen.state and now - seen.at >= self.min_gap_s)
                or (not task.finished and now - seen.at >= self.heartbeat_s)
            )
            stepped = seen is None or state[0] != seen.state[0]
            elapsed_at_step = task.elapsed if stepped else seen.elapsed_at_step  # type: ignore[union-attr]
            if due:
                self.console.print(describe(task, elapsed_at_step), markup=False, highlight=False)
                self._reported[task.id] = _Reported(now, state, task.finished, elapsed_at_step)


@contextmanager
def progress_bar(console: Console, heartbeat_s: float = 15.0) -> Iterator[Progress]:
    """A rich ``Progress``: drawn live on a terminal, reported as plain lines otherwise.

    Tasks take a ``status`` field (``progress.add_task(..., status="")``) shown after the bar.
    """
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        disable=not console.is_terminal,
    )
    with progress:
        if console.is_terminal:
            yield progress
        else:
            with PlainReporter(progress, console, heartbeat_s):
                yield progress


@contextmanager
def working(console: Console, what: str) -> Iterator[None]:
    """A spinner with ``what`` on a terminal; off a terminal (where a spinner shows nothing) ``what`` as one line."""
    if console.is_terminal:
        with console.status(what):
            yield
    else:
        console.print(what, markup=False, highlight=False)
        yield
