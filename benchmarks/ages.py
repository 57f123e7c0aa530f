"""Glass-to-result ages, measured the same way for every consumer: the frame number read from the picture (the
frame clock) gives when the simulated camera sent the frame; the result's time less that is its age.

A result is **fresh** when its age is at most ``FRESH_S``: what a live application can still act on. Fresh results
per second reward keeping up with the cameras, and nothing rewards answering late.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FRESH_S = 0.150


def age_report(ages_s: Sequence[float], seconds: float, unclocked: int = 0) -> dict[str, Any]:
    """Fresh results/s, all results/s and the age percentiles (ms) of ``ages_s`` measured over ``seconds``;
    ``unclocked`` counts results whose frame carried no readable clock (they count as not fresh)."""
    ages = np.asarray(ages_s, dtype=np.float64)
    fresh = int(np.count_nonzero(ages <= FRESH_S))
    report: dict[str, Any] = {
        "results": int(ages.size) + unclocked,
        "results_fps": (ages.size + unclocked) / seconds if seconds > 0 else 0.0,
        "fresh_fps": fresh / seconds if seconds > 0 else 0.0,
        "fresh_share": fresh / (ages.size + unclocked) if ages.size + unclocked else 0.0,
        "unclocked": unclocked,
    }
    if ages.size:
        report.update(
            age_ms_p50=float(np.percentile(ages, 50) * 1e3),
            age_ms_p99=float(np.percentile(ages, 99) * 1e3),
            age_ms_max=float(ages.max() * 1e3),
        )
    return report


SUSTAINED_FRESH_FPS = 5.0  # a camera is kept up with when it gets this many fresh results/s ...
SUSTAINED_P99_S = FRESH_S  # ... and 99% of its results are at most this old


def camera_ages_report(ages_by_camera: dict[str, list[float]], cameras: int, seconds: float) -> dict[str, Any]:
    """:func:`age_report` over every camera's results, plus the worst camera's fresh results/s and age p99, and
    whether every one of ``cameras`` was kept up with (``SUSTAINED_*``); a camera without a result is the worst."""
    every = [age for ages in ages_by_camera.values() for age in ages]
    report = age_report(every, seconds)
    fresh = [sum(1 for a in ages if a <= FRESH_S) / seconds for ages in ages_by_camera.values()]
    p99s = [float(np.percentile(ages, 99)) for ages in ages_by_camera.values() if ages]
    missing = cameras - sum(1 for ages in ages_by_camera.values() if ages)
    worst_fresh = 0.0 if missing > 0 or not fresh else min(fresh)
    worst_p99_ms = None if missing > 0 or not p99s else max(p99s) * 1e3
    report.update(
        cameras=cameras,
        worst_camera_fresh_fps=worst_fresh,
        worst_camera_age_ms_p99=worst_p99_ms,
        sustained=worst_p99_ms is not None
        and worst_fresh >= SUSTAINED_FRESH_FPS
        and worst_p99_ms <= SUSTAINED_P99_S * 1e3,
    )
    return report


def cameras_sustained(sweep: dict[int, dict[str, Any]]) -> int:
    """The largest camera count every camera of which was kept up with (0: not even one)."""
    return max((count for count, row in sweep.items() if row.get("sustained")), default=0)
