"""CPU priority of a process's threads: the work that can wait yields the cores to the work that cannot.

On Linux a nice value belongs to a thread, and a new thread inherits its creator's; so every thread that exists is
reniced, and those created later (by any of them) follow.
"""

from __future__ import annotations

import os

MAX_NICE = 19


def lower_priority(nice: int) -> int:
    """Raise every thread of this process to at least ``nice`` (0: leave them); returns the threads changed.

    Only ever lowers priority, which needs no privilege; a thread that vanished meanwhile is skipped."""
    if nice <= 0:
        return 0
    target = min(nice, MAX_NICE)
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no procfs (macOS): the process's nice value is what there is
        os.setpriority(os.PRIO_PROCESS, 0, max(target, os.getpriority(os.PRIO_PROCESS, 0)))
        return 1
    changed = 0
    for tid in threads:
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < target:
                os.setpriority(os.PRIO_PROCESS, tid, target)
                changed += 1
        except OSError:
            continue
    return changed
