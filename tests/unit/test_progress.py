"""Off a terminal, long work is reported as plain lines: at start, on change, on a heartbeat, at the end."""

from __future__ import annotations

import io
import time

from rich.console import Console

from visionloop.core.progress import progress_bar


def test_plain_lines_when_the_output_is_not_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with progress_bar(console, heartbeat_s=0.3) as progress:
        task = progress.add_task("training", total=4, status="")
        time.sleep(1.0)  # no change: heartbeats still say where it is
        progress.update(task, completed=4, status="val mAP50 0.812")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("training: 0/4 (0%), elapsed")
    assert sum(line.startswith("training: 0/4") for line in lines) >= 2  # the first line and a heartbeat
    assert lines[-1].startswith("training: 4/4 (100%)") and lines[-1].endswith("val mAP50 0.812")
    assert "\x1b[" not in out.getvalue()  # no terminal control codes in a log file


def test_a_terminal_gets_the_live_bar_and_no_plain_lines() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with progress_bar(console, heartbeat_s=0.1) as progress:
        task = progress.add_task("training", total=2, status="")
        progress.update(task, completed=2)
    assert "training: 2/2 (100%)" not in out.getvalue()
    assert "2/2" in out.getvalue()


def test_the_eta_counts_down_between_steps_instead_of_growing() -> None:
    from rich.progress import Progress

    from visionloop.core.progress import remaining

    now = [0.0]
    progress = Progress(get_time=lambda: now[0], disable=True)
    task_id = progress.add_task("training", total=10)
    progress.start_task(task_id)
    now[0] = 10.0
    progress.update(task_id, completed=2)  # 5 s a step so far: 8 steps left, 40 s
    task = progress.tasks[0]
    assert remaining(task, elapsed_at_step=10.0) == 40.0
    now[0] = 20.0  # 10 s into the next step
    assert remaining(task, elapsed_at_step=10.0) == 30.0
    assert remaining(task) == 80.0  # the naive average would have grown
