"""RSS and CPU per process of the service's tree, so memory growth (and CPU) is pinned on one process, not on
"the service".

Ray renames its workers as they run (``ray::ServeReplica:visionloop:Router.handle_request``, ``ray::IDLE``), so a
process keeps the first name that says what it is; the growth is reported per process and summed per role.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psutil

IDLE_TITLES = ("ray::IDLE",)


def anon_rss_mb(proc: psutil.Process) -> float | None:
    """The process's private anonymous memory (heap, stacks): what a leak grows. RSS also counts shared pages:
    Ray's object store is shared memory that every process writing frames into it maps, so a camera worker's RSS
    rises as it touches more of the store (bounded by the store's size) without anything leaking."""
    try:
        with open(f"/proc/{proc.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_label(proc: psutil.Process) -> str:
    """A short, stable name: the Ray actor or deployment, else the executable's name."""
    try:
        cmdline = proc.cmdline()
    except psutil.Error:
        return "gone"
    title = cmdline[0] if cmdline else proc.name()
    if title.startswith("ray::"):
        title = title.split(".", 1)[0].split(" ", 1)[0]
        for prefix in ("ray::ServeReplica:visionloop:", "ray::ServeReplica:", "ray::"):
            if title.startswith(prefix):
                return title[len(prefix) :] or "ray-worker"
    name = proc.name()
    if not name.startswith("python"):
        return name
    for i, arg in enumerate(cmdline[1:], start=1):  # a python process is known by its script or module
        if arg == "-m" and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.endswith(".py"):
            return arg.rsplit("/", 1)[-1]
    return name


@dataclass
class RssTracker:
    """Samples the RSS of a process and all its descendants; ``report`` compares each process to itself."""

    root: psutil.Process = field(default_factory=psutil.Process)
    labels: dict[int, str] = field(default_factory=dict)
    samples: list[dict[int, float]] = field(default_factory=list)
    anon: list[dict[int, float]] = field(default_factory=list)
    cpu: list[dict[int, float]] = field(default_factory=list)
    handles: list[dict[int, tuple[int, int]]] = field(default_factory=list)  # (threads, open file descriptors)
    times: list[float] = field(default_factory=list)

    def sample(self) -> float:
        """Record one sample; returns the whole tree's RSS in MB."""
        current: dict[int, float] = {}
        anon: dict[int, float] = {}
        cpu: dict[int, float] = {}
        handles: dict[int, tuple[int, int]] = {}
        for proc in [self.root, *self.root.children(recursive=True)]:
            try:
                rss = proc.memory_info().rss / 2**20
                times = proc.cpu_times()
                handles[proc.pid] = (proc.num_threads(), proc.num_fds())
            except psutil.Error:
                continue
            cpu[proc.pid] = times.user + times.system
            private = anon_rss_mb(proc)
            if private is not None:
                anon[proc.pid] = private
            label = self.labels.get(proc.pid)
            if label is None or label in ("IDLE", "ray-worker"):
                self.labels[proc.pid] = process_label(proc)
            current[proc.pid] = rss
        self.samples.append(current)
        self.anon.append(anon)
        self.cpu.append(cpu)
        self.handles.append(handles)
        self.times.append(time.monotonic())
        return sum(current.values())

    def _anon_growth(self, pid: int, skip: int) -> dict[str, float | None]:
        start, end = self.anon[skip].get(pid), self.anon[-1].get(pid)
        if start is None or end is None:
            return {"anon_mb_start": None, "anon_mb_end": None, "anon_growth_pct": None}
        growth = round(100 * (end - start) / start, 2) if start else None
        return {"anon_mb_start": round(start, 1), "anon_mb_end": round(end, 1), "anon_growth_pct": growth}

    def _handle_growth(self, pid: int, skip: int) -> dict[str, int | None]:
        start, end = self.handles[skip].get(pid), self.handles[-1].get(pid)
        if start is None or end is None:
            return {"threads_start": None, "threads_end": None, "fds_start": None, "fds_end": None}
        return {"threads_start": start[0], "threads_end": end[0], "fds_start": start[1], "fds_end": end[1]}

    def report(self, skip: int = 1) -> dict[str, Any]:
        """Growth per process from sample ``skip`` (after warm-up) to the last; processes present in both."""
        if len(self.samples) <= skip:
            return {"processes": [], "roles": {}}
        first, last = self.samples[skip], self.samples[-1]
        rows = []
        for pid in sorted(set(first) & set(last)):
            start, end = first[pid], last[pid]
            seconds = self.times[-1] - self.times[skip]
            busy = self.cpu[-1].get(pid, 0.0) - self.cpu[skip].get(pid, 0.0)
            rows.append(
                {
                    "pid": pid,
                    "process": self.labels.get(pid, "?"),
                    "cpu_cores": round(busy / seconds, 3) if seconds > 0 else None,
                    "rss_mb_start": round(start, 1),
                    "rss_mb_end": round(end, 1),
                    "growth_mb": round(end - start, 1),
                    "growth_pct": round(100 * (end - start) / start, 2) if start else None,
                    **self._anon_growth(pid, skip),
                    **self._handle_growth(pid, skip),
                }
            )
        roles: dict[str, dict[str, float]] = defaultdict(
            lambda: {"rss_mb_start": 0.0, "rss_mb_end": 0.0, "anon_mb_start": 0.0, "anon_mb_end": 0.0, "cpu_cores": 0.0,
                     "processes": 0}
        )  # fmt: skip
        for row in rows:
            role = roles[str(row["process"])]
            role["rss_mb_start"] += float(row["rss_mb_start"])
            role["rss_mb_end"] += float(row["rss_mb_end"])
            role["cpu_cores"] += float(row["cpu_cores"] or 0.0)
            role["anon_mb_start"] += float(row["anon_mb_start"] or 0.0)
            role["anon_mb_end"] += float(row["anon_mb_end"] or 0.0)
            role["processes"] += 1
        for role in roles.values():
            role["growth_pct"] = round(100 * (role["rss_mb_end"] / role["rss_mb_start"] - 1), 2)
            if role["anon_mb_start"]:
                role["anon_growth_pct"] = round(100 * (role["anon_mb_end"] / role["anon_mb_start"] - 1), 2)
        rows.sort(key=lambda r: -float(r["growth_mb"]))
        return {"processes": rows, "roles": dict(roles)}


def wait_until_idle(threshold_cores: float = 0.5, window_s: float = 5.0, max_s: float = 240.0) -> float:
    """Wait until this process tree uses less than ``threshold_cores`` over ``window_s`` (start-up work such as
    JIT warm-ups is over), at most ``max_s``; returns the cores used in the last window."""
    deadline = time.monotonic() + max_s
    tracker = RssTracker()
    while True:
        tracker.sample()
        time.sleep(window_s)
        tracker.sample()
        used = sum(tracker.cpu[-1].get(pid, 0.0) - cpu for pid, cpu in tracker.cpu[-2].items()) / window_s
        if used < threshold_cores or time.monotonic() >= deadline:
            return used
