"""Drift statistics of one window of sampled frames against a reference window: pure functions, scipy only.

Tests: KS and PSI of the confidences, chi-square of the class mix, KS of detections per frame and of box size
(sqrt of relative area), MMD of frame appearance. Each gives a p-value under "same distribution"; a window drifts
when a Bonferroni-adjusted p-value is below ``alpha`` (so a window without drift is flagged with probability at most
``alpha`` whatever the number of tests) or when the PSI passes its threshold. The appearance test also needs a
least shift of the mean look (see MIN_APPEARANCE_SHIFT). A test with nothing to compare (no detections in a window)
is skipped: never drift, and not counted in the Bonferroni factor.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

FloatArray = npt.NDArray[np.float64]
PSI_EPSILON = 1e-4  # share given to an empty bin, so PSI stays finite
PSI_MAX_BINS = 10
MIN_CLASS_EXPECTED = 5.0  # classes expected fewer times than this are pooled (chi-square's small-count rule)
# Least distance between the two windows' mean appearance vectors (unit-length vectors, noise-corrected) for the MMD
# to count as drift. Frames of one static camera are so alike that the test finds objects having moved between two
# windows "significant" (p ~ 0). Measured on the world (windows of 20, one scene per camera): 0.075-0.11 between
# windows of one domain-A scene, 0.42-0.66 to another A scene, 0.46-0.79 to a domain-B scene.
MIN_APPEARANCE_SHIFT = 0.2


@dataclass(frozen=True)
class FrameSummary:
    """What the statistics need of one frame: its detections (confidence, class, sqrt of relative box area) and
    an appearance vector."""

    confidences: Sequence[float]
    class_ids: Sequence[int]
    box_sizes: Sequence[float]
    appearance: Sequence[float]


@dataclass(frozen=True)
class WindowSummary:
    """A window of frames, pooled: detections of every frame together, one count and one appearance row per frame."""

    confidences: FloatArray
    class_ids: npt.NDArray[np.int64]
    box_sizes: FloatArray
    counts: FloatArray
    appearance: FloatArray

    @classmethod
    def of(cls, frames: Sequence[FrameSummary]) -> WindowSummary:
        vectors = [np.asarray(f.appearance, np.float64) for f in frames if len(f.appearance)]
        return cls(
            confidences=np.asarray([c for f in frames for c in f.confidences], np.float64),
            class_ids=np.asarray([c for f in frames for c in f.class_ids], np.int64),
            box_sizes=np.asarray([s for f in frames for s in f.box_sizes], np.float64),
            counts=np.asarray([len(f.confidences) for f in frames], np.float64),
            appearance=np.vstack(vectors) if vectors else np.zeros((0, 0)),
        )

    @property
    def frames(self) -> int:
        return int(self.counts.size)


@dataclass(frozen=True)
class StatResult:
    statistic: float | None = None
    p_value: float | None = None
    skipped: str | None = None  # why it could not be computed
    effect: float | None = None  # a size of the difference, where a floor applies (appearance: mean shift)


@dataclass(frozen=True)
class DriftResult:
    tests: dict[str, StatResult]
    adjusted_p: float | None  # Bonferroni: smallest p-value x number of computed tests, capped at 1
    psi: float | None
    drifted: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _skipped(reason: str) -> StatResult:
    return StatResult(skipped=reason)


def ks_test(reference: FloatArray, current: FloatArray, what: str) -> StatResult:
    """Two-sample Kolmogorov-Smirnov; conservative on discrete data (ties), so it never inflates false alarms."""
    if reference.size == 0 or current.size == 0:
        return _skipped(f"no {what} in the {'reference' if reference.size == 0 else 'current'} window")
    result = stats.ks_2samp(reference, current)
    return StatResult(float(result.statistic), float(result.pvalue))


def psi(reference: FloatArray, current: FloatArray, threshold: float) -> StatResult:
    """Population stability index over quantile bins of the reference.

    PSI is biased upward on small samples (about (bins - 1) x (1/n + 1/m) without any drift), so the number of
    bins is chosen to keep that bias under a quarter of ``threshold``: small windows get coarse bins.
    """
    if reference.size == 0 or current.size == 0:
        return _skipped("no confidences in a window")
    bias_per_bin = 1 / reference.size + 1 / current.size
    bins = min(PSI_MAX_BINS, 1 + math.floor(threshold / 4 / bias_per_bin))
    if bins < 2:
        return _skipped("too few detections for a PSI below its own sampling bias")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1)
    cur_share = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1)
    r = np.maximum(ref_share / reference.size, PSI_EPSILON)
    c = np.maximum(cur_share / current.size, PSI_EPSILON)
    return StatResult(float(np.sum((c - r) * np.log(c / r))))


def chi_square_classes(reference: npt.NDArray[np.int64], current: npt.NDArray[np.int64]) -> StatResult:
    """Chi-square of the 2 x classes contingency table; classes expected fewer than 5 times are pooled into one
    column, and a table left with one column means the mixes cannot differ (p = 1)."""
    if reference.size == 0 or current.size == 0:
        return _skipped("no detections in a window")
    classes = np.union1d(reference, current)
    table = np.array([[np.sum(reference == c) for c in classes], [np.sum(current == c) for c in classes]], float)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    rare = expected.min(axis=0) < MIN_CLASS_EXPECTED
    if rare.any():
        table = np.column_stack([table[:, ~rare], table[:, rare].sum(axis=1)])
        table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return StatResult(0.0, 1.0)
    statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return StatResult(float(statistic), float(p_value))


def _mean_shift(reference: FloatArray, current: FloatArray) -> float:
    """Distance between the windows' mean vectors, less what sampling noise alone adds to it on average (so the
    floor means the same for any window size): sqrt(max(0, |m1 - m2|^2 - tr(S1)/n1 - tr(S2)/n2))."""
    squared = float(np.sum((reference.mean(axis=0) - current.mean(axis=0)) ** 2))
    noise = sum(float(x.var(axis=0, ddof=1).sum()) / x.shape[0] for x in (reference, current))
    return float(max(squared - noise, 0.0) ** 0.5)


def mmd_test(reference: FloatArray, current: FloatArray, permutations: int, seed: int = 0) -> StatResult:
    """Maximum mean discrepancy with an RBF kernel (median-heuristic bandwidth of the pooled data), with a
    permutation null.

    The p-value is the upper tail of a gamma fitted to the permuted statistics' mean and variance (the classic
    approximation of the MMD null, Gretton et al. 2009): a plain permutation p-value cannot fall below
    1 / (permutations + 1), which after Bonferroni could never reach a small ``alpha``.
    """
    if reference.shape[0] < 2 or current.shape[0] < 2:
        return _skipped("fewer than 2 appearance vectors in a window")
    if reference.shape[1] != current.shape[1]:
        return _skipped("appearance vectors of different lengths")
    pooled = np.vstack([reference, current])
    squared = np.sum(pooled**2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0.0)
    upper = distances[np.triu_indices_from(distances, k=1)]
    bandwidth = float(np.median(upper[upper > 0])) if np.any(upper > 0) else 1.0
    kernel = np.exp(-distances / bandwidth)  # exp(-d^2 / (2 sigma^2)) with sigma^2 = median(d^2) / 2
    n, total = reference.shape[0], pooled.shape[0]
    rng = np.random.default_rng(seed)
    labels = np.zeros((total, permutations + 1), bool)
    labels[:n, 0] = True
    chosen = rng.random((permutations, total)).argsort(axis=1)[:, :n]  # each row: one permutation's first n
    labels[chosen, np.arange(1, permutations + 1)[:, None]] = True
    weights = np.where(labels, 1.0 / n, -1.0 / (total - n))  # MMD^2 (biased) = w' K w
    values = np.einsum("ip,ip->p", weights, kernel @ weights)
    observed, null = float(values[0]), values[1:]
    shift = _mean_shift(reference, current)
    mean, variance = float(null.mean()), float(null.var())
    if variance <= 0 or mean <= 0:
        p_value = float((1 + np.sum(null >= observed)) / (permutations + 1))
    else:
        p_value = float(stats.gamma.sf(observed, mean**2 / variance, scale=variance / mean))
    return StatResult(observed, p_value, effect=shift)


def compare_windows(
    reference: WindowSummary,
    current: WindowSummary,
    *,
    alpha: float,
    psi_threshold: float,
    permutations: int,
    seed: int = 0,
    min_appearance_shift: float = MIN_APPEARANCE_SHIFT,
    alarm_tests: Collection[str] | None = None,
) -> DriftResult:
    """Every test of ``current`` against ``reference``, and whether the window drifts: a test of ``alarm_tests``
    (default: all) counts when its p-value, Bonferroni-adjusted over those tests, is below ``alpha`` (the appearance
    test only with a mean shift of at least ``min_appearance_shift``), PSI when above ``psi_threshold``. The floor
    can only remove alarms, so the family-wise false-alarm bound holds; the other tests are computed and shown."""
    tests = {
        "confidence_ks": ks_test(reference.confidences, current.confidences, "confidences"),
        "class_chi2": chi_square_classes(reference.class_ids, current.class_ids),
        "count_ks": ks_test(reference.counts, current.counts, "frames"),
        "box_size_ks": ks_test(reference.box_sizes, current.box_sizes, "boxes"),
        "appearance_mmd": mmd_test(reference.appearance, current.appearance, permutations, seed),
    }
    psi_result = psi(reference.confidences, current.confidences, psi_threshold)
    tests["confidence_psi"] = psi_result
    counted = set(tests) if alarm_tests is None else set(alarm_tests)
    p_values = {name: t.p_value for name, t in tests.items() if t.p_value is not None and name in counted}
    adjusted = min(1.0, min(p_values.values()) * len(p_values)) if p_values else None
    floors = {"appearance_mmd": min_appearance_shift}
    reasons = [
        name
        for name, p in p_values.items()
        if p * len(p_values) < alpha and (tests[name].effect or 0.0) >= floors.get(name, 0.0)
    ]
    if "confidence_psi" in counted and psi_result.statistic is not None and psi_result.statistic > psi_threshold:
        reasons.append("confidence_psi")
    return DriftResult(tests, adjusted, psi_result.statistic, bool(reasons), reasons)
