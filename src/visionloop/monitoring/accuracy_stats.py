"""Accuracy statistics over matched frames: mAP50, precision and recall, each with a bootstrap CI over frames.

Boxes of one frame are not independent, so frames are the unit resampled; the seed makes a report reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from visionloop.learning.ab_stats import FrameMatches, map50

CONFIDENCE = 0.95
RESAMPLES = 500  # bootstrap resamples of frames: ~1-5 s at 200 frames (Ultralytics AP), only when the window changed
METRICS = ("map50", "precision", "recall")


def _interval(estimate: float | None, samples: npt.NDArray[np.float64]) -> dict[str, float | None]:
    finite = samples[np.isfinite(samples)]
    if estimate is None or not len(finite):
        return {"estimate": estimate, "low": None, "high": None}
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    # A percentile interval need not contain the estimate (a skewed statistic); widen it to do so.
    return {"estimate": estimate, "low": float(min(low, estimate)), "high": float(max(high, estimate))}


def _ratio(num: npt.NDArray[np.int64], den: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def score_matches(matches: Sequence[FrameMatches], threshold: float, resamples: int, seed: int) -> dict[str, Any]:
    """mAP50, and precision and recall at ``threshold``, each with a percentile bootstrap CI over frames (the same
    resampled frames for all three). Precision without a kept prediction, recall without a box: None."""
    n = len(matches)
    kept = np.array([int((m.confidence >= threshold).sum()) for m in matches], np.int64)
    hits = np.array([int(m.tp[m.confidence >= threshold].sum()) for m in matches], np.int64)
    boxes = np.array([len(m.target_class) for m in matches], np.int64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((0, 0), np.int64)
    maps = np.array([map50(matches, row) for row in draws], np.float64)
    precisions = _ratio(hits[draws].sum(axis=1), kept[draws].sum(axis=1))
    recalls = _ratio(hits[draws].sum(axis=1), boxes[draws].sum(axis=1))
    precision = float(hits.sum() / kept.sum()) if kept.sum() else None
    recall = float(hits.sum() / boxes.sum()) if boxes.sum() else None
    return {
        "frames": n,
        "instances": int(boxes.sum()),
        "predictions_kept": int(kept.sum()),
        "map50": _interval(map50(matches) if boxes.sum() else None, maps),
        "precision": _interval(precision, precisions),
        "recall": _interval(recall, recalls),
    }
