"""The child-process supervisor with real children: readiness, early exits, whole-group stops, pause and resume."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for
from visionloop.core.processes import ChildProcess, ProcessStartError

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads process states from /proc")

PY = sys.executable


def _state(pid: int) -> str | None:
    """The /proc state letter (R, S, T, Z...), or None once the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _gone(pid: int) -> bool:
    return _state(pid) in (None, "Z")  # a killed orphan is a zombie until init reaps it


def _script(code: str) -> list[str]:
    return [PY, "-c", textwrap.dedent(code)]


def test_waits_until_the_probe_says_ready(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    child = ChildProcess(
        _script(
            f"import time, pathlib; time.sleep(0.3); pathlib.Path({str(flag)!r}).touch(); "
            "print('up', flush=True); time.sleep(60)"
        ),
        tmp_path / "child.log",
    )
    with child:
        started = time.monotonic()
        child.wait_ready(flag.exists, timeout_s=10)
        assert time.monotonic() - started >= 0.2 and child.poll() is None
        assert wait_for(child.output) == "up\n"
    assert child.pid is None and child.poll() == -signal.SIGTERM


def test_a_child_that_exits_early_is_a_clear_error_naming_its_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "child.log"
    log.parent.mkdir()
    log.write_text("an older run\n")
    child = ChildProcess(_script("import sys; print('bad config', file=sys.stderr); sys.exit(3)"), log).start()
    with pytest.raises(ProcessStartError) as caught:
        child.wait_ready(lambda: False, timeout_s=10)
    assert caught.value.returncode == 3 and caught.value.log == log
    assert str(log) in str(caught.value) and "exited with code 3" in str(caught.value)
    assert caught.value.output == "bad config\n"  # this run's output only; the log keeps the older run too
    assert log.read_text() == "an older run\nbad config\n"
    assert child.pid is None


def test_a_child_never_ready_is_stopped_after_the_timeout(tmp_path: Path) -> None:
    child = ChildProcess(["sleep", "60"], tmp_path / "sleep.log").start()
    pid = child.pid
    assert pid is not None
    with pytest.raises(ProcessStartError, match=r"not ready within 0\.3 s; see .*sleep\.log") as caught:
        child.wait_ready(lambda: False, timeout_s=0.3)
    assert caught.value.returncode is None
    assert child.pid is None and _gone(pid)


def test_stop_ends_the_whole_group_even_a_grandchild_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ignoring', flush=True); "
        "time.sleep(60)"
    )
    child = ChildProcess(
        _script(f"""
        import subprocess, sys, time
        print("grandchild", subprocess.Popen([sys.executable, "-c", {stubborn!r}]).pid, flush=True)
        time.sleep(60)
        """),
        tmp_path / "child.log",
    ).start()
    child.wait_ready(lambda: "ignoring" in child.output() and "grandchild" in child.output(), timeout_s=10)
    grandchild = int(child.output().split("grandchild ")[1].split()[0])
    assert _state(grandchild) is not None
    assert child.stop(timeout_s=5) == -signal.SIGTERM
    assert wait_for(lambda: _gone(grandchild), timeout_s=5)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_time(tmp_path: Path) -> None:
    child = ChildProcess(
        _script(
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('x', flush=True); time.sleep(60)"
        ),
        tmp_path / "child.log",
    ).start()
    child.wait_ready(lambda: "x" in child.output(), timeout_s=10)
    started = time.monotonic()
    assert child.stop(timeout_s=0.5) == -signal.SIGKILL
    assert 0.4 < time.monotonic() - started < 5


def test_stop_and_kill_are_idempotent(tmp_path: Path) -> None:
    child = ChildProcess(["sleep", "60"], tmp_path / "sleep.log")
    assert child.stop() is None and child.kill() is None  # never started
    with child:
        pid = child.pid
        assert pid is not None
        with pytest.raises(RuntimeError, match="already running"):
            child.start()
        assert child.kill() == -signal.SIGKILL
    assert child.stop() == -signal.SIGKILL and child.kill() == -signal.SIGKILL and child.pid is None
    child.pause()  # no process: nothing to signal
    child.resume()
    assert _gone(pid)
    with child:  # it can be started again
        assert child.pid not in (None, pid)


def test_pause_freezes_the_group_and_resume_thaws_it(tmp_path: Path) -> None:
    log = tmp_path / "ticks.log"
    child = ChildProcess(_script("import time\nwhile True:\n    print('tick', flush=True)\n    time.sleep(0.02)"), log)
    with child:
        pid = child.pid
        assert pid is not None
        wait_for(lambda: log.stat().st_size, timeout_s=10)
        child.pause()
        wait_for(lambda: _state(pid) == "T", timeout_s=5)
        frozen = log.stat().st_size
        time.sleep(0.3)
        assert log.stat().st_size == frozen
        child.resume()
        wait_for(lambda: log.stat().st_size > frozen, timeout_s=5)
        child.pause()
        wait_for(lambda: _state(pid) == "T", timeout_s=5)
    assert child.poll() == -signal.SIGTERM  # a paused child still stops on SIGTERM (SIGCONT goes first)


def test_a_child_dies_with_its_parent_when_asked(tmp_path: Path) -> None:
    parent = subprocess.run(
        _script(f"""
            import os, signal
            from pathlib import Path
            from visionloop.core.processes import ChildProcess
            child = ChildProcess(["sleep", "60"], Path({str(tmp_path / "sleep.log")!r}), die_with_parent=True).start()
            print(child.pid, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)  # no stop(): only the kernel can end the child now
            """),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],
    )
    assert parent.returncode == -signal.SIGKILL, parent.stderr
    assert wait_for(lambda: _gone(int(parent.stdout)), timeout_s=5)
