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
