"""The reliability figures the hardening tests measure, gathered in benchmarks/results/reliability.json.

Each test records its own section (requests fuzzed, 5xx seen, frames lost on a replica kill...); sections from
other tests and earlier runs are kept, so one `make test` plus `make bench-pipeline BENCH_PIPELINE_ARGS=--soak`
fill the whole file. Every section carries the time it was measured.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

RELIABILITY_FILE = Path(__file__).resolve().parent / "results" / "reliability.json"


def record_reliability(section: str, figures: dict[str, Any], path: Path = RELIABILITY_FILE) -> None:
    """Merge ``figures`` into ``section`` of the reliability file (atomically, safe across processes), and print
    them so the test's output shows what it measured."""
    print(f"reliability[{section}]: {json.dumps(figures, sort_keys=True)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        except json.JSONDecodeError:
            current = {}
        current[section] = {**current.get(section, {}), **figures, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
