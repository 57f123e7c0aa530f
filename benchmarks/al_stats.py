"""Curve arithmetic of the active-learning benchmark: means with CIs over seeds, and label saving with its CI.

A curve is the gold mAP50 at each label budget (0 = the starting model). ``label_saving`` compares the two arms'
mean curves: 1 - (labels the sampler needs to reach random's final mAP50) / (labels random spent), reading the
sampler's curve by linear interpolation. When the sampler never gets there the saving is negative and read the
other way round: (labels random needs to reach the sampler's final mAP50) / (labels random spent) - 1. So 0.5
means half the labels, 0 means no better than random, and the number exists for every pair of curves, which a
bootstrap over seeds needs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

Curve = Sequence[float]


def labels_to_reach(labels: Sequence[float], curve: Curve, target: float) -> float | None:
    """Labels at which the (linearly interpolated) curve first reaches ``target``; None if it never does."""
    for i, value in enumerate(curve):
        if value >= target:
            if i == 0:
                return float(labels[0])
            l0, l1, m0, m1 = labels[i - 1], labels[i], curve[i - 1], curve[i]
            return float(l1 if m1 == m0 else l0 + (target - m0) * (l1 - l0) / (m1 - m0))
    return None


def label_saving(labels: Sequence[float], sampler: Curve, random: Curve) -> float:
    """Share of random's labels the sampler saves to reach random's final accuracy (negative: it costs more)."""
    return cost_saving(labels, sampler, labels, random)


def cost_saving(sampler_cost: Sequence[float], sampler: Curve, random_cost: Sequence[float], random: Curve) -> float:
    """:func:`label_saving` when each arm has its own cost axis (boxes drawn rather than images labelled)."""
    budget = float(random_cost[-1])
    needed = labels_to_reach(sampler_cost, sampler, random[-1])
    if needed is not None:
        return 1.0 - needed / budget
    behind = labels_to_reach(random_cost, random, sampler[-1])
    return (0.0 if behind is None else behind / budget) - 1.0


def mean_and_ci(rows: Sequence[Curve], confidence: float = 0.95) -> tuple[list[float], list[float], list[float]]:
    """Per budget: mean over seeds and a Student-t confidence interval (a single seed gives no interval)."""
    data = np.asarray(rows, dtype=float)
    mean = data.mean(axis=0)
    if len(data) < 2:
        return mean.tolist(), mean.tolist(), mean.tolist()
    half = stats.t.ppf(0.5 + confidence / 2, len(data) - 1) * data.std(axis=0, ddof=1) / np.sqrt(len(data))
    return mean.tolist(), (mean - half).tolist(), (mean + half).tolist()


def saving_ci(
    labels: Sequence[float],
    sampler_rows: Sequence[Curve],
    random_rows: Sequence[Curve],
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``label_saving`` on mean curves, resampling seeds (each seed keeps its pair)."""
    sampler, random = np.asarray(sampler_rows, dtype=float), np.asarray(random_rows, dtype=float)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        pick = rng.integers(0, len(sampler), len(sampler))
        draws.append(label_saving(labels, sampler[pick].mean(axis=0), random[pick].mean(axis=0)))
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)
