"""Lowering a process's priority reaches every thread: those that ran before and those started after."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, threading
    from visionloop.core.priority import lower_priority

    def nice_of_new_thread():
        seen = []
        t = threading.Thread(target=lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))
        t.start(); t.join()
        return seen[0]

    ready, stop, seen_before = threading.Event(), threading.Event(), []
    def early():
        ready.set(); stop.wait()
        seen_before.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    thread = threading.Thread(target=early); thread.start(); ready.wait()
    changed = lower_priority(7)
    stop.set(); thread.join()
    again = lower_priority(3)  # never raises priority back
    print(changed, seen_before[0], os.getpriority(os.PRIO_PROCESS, 0), nice_of_new_thread(), again,
          os.getpriority(os.PRIO_PROCESS, 0))
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
def test_every_thread_is_lowered_and_never_raised_back() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True)
    changed, early, main, new, again, main_after = (int(v) for v in out.stdout.split())
    assert changed >= 2  # the main thread and the one already running
    assert early == main == new == 7
    assert again == 0 and main_after == 7
