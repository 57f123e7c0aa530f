"""Where a Ray actor's Python memory goes: tracemalloc started inside the running actor, a snapshot diff later.

Started after the warm-up, so the diff holds what was allocated since and is still alive: what grows. The
functions run in the actor through ``__ray_call__`` (they travel by value: the actor's process has no
``benchmarks`` package on its path).
"""

from __future__ import annotations

import sys
from typing import Any

TRACE_FRAMES = 12


def start_tracing(instance: Any) -> int:
    """Start tracemalloc in this process; returns the traced bytes at the start (a baseline snapshot is kept)."""
    import gc
    import tracemalloc

    if not tracemalloc.is_tracing():
        tracemalloc.start(TRACE_FRAMES)
    gc.collect()
    instance.__dict__["_memory_trace_baseline"] = tracemalloc.take_snapshot()
    return tracemalloc.get_traced_memory()[0]


def top_growth(instance: Any, limit: int = 12) -> dict[str, Any]:
    """The allocation sites that grew most since :func:`start_tracing`, with their tracebacks (innermost last)."""
    import gc
    import tracemalloc

    gc.collect()
    baseline = instance.__dict__.get("_memory_trace_baseline")
    if baseline is None or not tracemalloc.is_tracing():
        return {"error": "tracing was not started"}
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.compare_to(baseline, "traceback")
    growth = [
        {"kb": round(stat.size_diff / 1024, 1), "blocks": stat.count_diff, "where": stat.traceback.format()[-8:]}
        for stat in stats[:limit]
    ]
    traced, peak = tracemalloc.get_traced_memory()
    total_kb = round(sum(stat.size_diff for stat in stats) / 1024, 1)
    return {"traced_kb": round(traced / 1024, 1), "peak_kb": round(peak / 1024, 1), "net_kb": total_kb, "top": growth}


def by_value() -> None:
    """Ship this module's functions by value (cloudpickle), not by a reference the actor could not import."""
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
