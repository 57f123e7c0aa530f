"""Each drift statistic on synthetic arrays: same distribution -> no drift, shifted -> drift, nothing -> skipped."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.monitoring.drift_stats import (
    MIN_APPEARANCE_SHIFT,
    FrameSummary,
    WindowSummary,
    chi_square_classes,
    compare_windows,
    ks_test,
    mmd_test,
    psi,
)

ALPHA, PSI_THRESHOLD, PERMUTATIONS = 0.01, 0.25, 200


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def window(
    seed: int, frames: int = 60, conf_shift: float = 0.0, app_shift: float = 0.0, empty: bool = False
) -> WindowSummary:
    """Frames with Poisson(3) detections (beta confidences, 5 classes, box sizes) and 208-d appearance vectors."""
    r = rng(seed)
    out = []
    for _ in range(frames):
        k = 0 if empty else int(r.poisson(3))
        appearance = r.normal(0, 0.005, 208) + app_shift
        out.append(
            FrameSummary(
                list(np.clip(r.beta(5, 2, k) - conf_shift, 0, 1)),
                list(r.integers(0, 5, k)),
                list(r.uniform(0.05, 0.25, k)),
                list(appearance),
            )
        )
    return WindowSummary.of(out)


def test_ks_same_and_shifted() -> None:
    a, b = rng(1).normal(size=200), rng(2).normal(size=200)
    assert ks_test(a, b, "x").p_value > 0.05
    shifted = ks_test(a, b + 0.6, "x")
    assert shifted.p_value < 1e-4 and shifted.statistic > 0.2
    assert ks_test(a, np.array([]), "boxes").skipped == "no boxes in the current window"


def test_psi_values() -> None:
    a, b = rng(1).beta(5, 2, 5000), rng(2).beta(5, 2, 5000)
    assert 0 <= psi(a, b, PSI_THRESHOLD).statistic < 0.01
    assert psi(a, np.clip(b - 0.25, 0, 1), PSI_THRESHOLD).statistic > 0.5
    # A known value: half the current mass moved from the upper to the lower half of a 2-bin split.
    two = psi(np.array([0.1] * 500 + [0.9] * 500), np.array([0.1] * 750 + [0.9] * 250), 1.0)
    assert two.statistic == pytest.approx(0.25 * np.log(0.75 / 0.5) + 0.25 * np.log(0.5 / 0.25), rel=1e-6)
    assert psi(a, np.array([]), PSI_THRESHOLD).skipped
    assert psi(a[:3], b[:3], PSI_THRESHOLD).skipped  # too few for a PSI below its own sampling bias


def test_psi_small_windows_do_not_flag_by_bias() -> None:
    """With 10 fixed bins, two samples of 60 from one distribution would average PSI ~ 0.3 > 0.25."""
    values = [psi(rng(i).beta(5, 2, 60), rng(1000 + i).beta(5, 2, 60), PSI_THRESHOLD).statistic for i in range(200)]
    assert np.mean(np.array(values) > PSI_THRESHOLD) <= 0.02


def test_chi_square_class_mix() -> None:
    same = chi_square_classes(rng(1).integers(0, 4, 300), rng(2).integers(0, 4, 300))
    assert same.p_value > 0.05
    other = chi_square_classes(rng(1).integers(0, 4, 300), rng(2).choice(4, 300, p=[0.55, 0.15, 0.15, 0.15]))
    assert other.p_value < 1e-6
    # a class seen once in one window only is pooled with the other rare ones, not a crash or a drift
    rare = chi_square_classes(np.array([0] * 50 + [1] * 50), np.array([0] * 50 + [1] * 49 + [7]))
    assert rare.p_value > 0.5
    assert chi_square_classes(np.array([2] * 10), np.array([2] * 30)).p_value == 1.0  # one class: cannot differ
    assert chi_square_classes(np.array([], np.int64), np.array([1, 2])).skipped


def test_mmd_same_shifted_and_calibrated() -> None:
    same = mmd_test(rng(1).normal(size=(60, 208)), rng(2).normal(size=(60, 208)), PERMUTATIONS, seed=0)
    assert same.p_value > 0.05
    shifted = mmd_test(rng(1).normal(size=(60, 208)), rng(2).normal(0.3, 1, size=(60, 208)), PERMUTATIONS)
    assert shifted.p_value < 1e-6  # below 1 / (permutations + 1): the gamma tail, not the permutation count
    nulls = np.array(
        [
            mmd_test(rng(i).normal(size=(20, 16)), rng(500 + i).normal(size=(20, 16)), PERMUTATIONS, i).p_value
            for i in range(200)
        ]
    )
    assert np.mean(nulls < 0.05) <= 0.1  # calibrated near its level (measured 0.06 at 400 runs)
    assert mmd_test(np.zeros((1, 8)), np.zeros((5, 8)), PERMUTATIONS).skipped


def test_windows_alike_do_not_drift() -> None:
    result = compare_windows(window(1), window(2), alpha=ALPHA, psi_threshold=PSI_THRESHOLD, permutations=PERMUTATIONS)
    assert not result.drifted and result.reasons == []
    computed = [t for t in result.tests.values() if t.p_value is not None]
    assert result.adjusted_p == pytest.approx(min(1.0, min(t.p_value for t in computed) * len(computed)))


def test_shifted_windows_drift_for_their_reasons() -> None:
    confidences = compare_windows(
        window(1), window(2, conf_shift=0.2), alpha=ALPHA, psi_threshold=PSI_THRESHOLD, permutations=PERMUTATIONS
    )
    assert confidences.drifted and {"confidence_ks", "confidence_psi"} <= set(confidences.reasons)
    assert "appearance_mmd" not in confidences.reasons
    looks = compare_windows(
        window(1), window(2, app_shift=0.05), alpha=ALPHA, psi_threshold=PSI_THRESHOLD, permutations=PERMUTATIONS
    )
    assert looks.reasons == ["appearance_mmd"]
    assert looks.tests["appearance_mmd"].effect > MIN_APPEARANCE_SHIFT


def test_small_appearance_shift_is_significant_but_not_drift() -> None:
    """Frames of one static camera differ a little and consistently (objects moved): the floor keeps that out."""
    result = compare_windows(
        window(1), window(2, app_shift=0.004), alpha=ALPHA, psi_threshold=PSI_THRESHOLD, permutations=PERMUTATIONS
    )
    mmd = result.tests["appearance_mmd"]
    assert mmd.p_value < ALPHA / 6 and mmd.effect < MIN_APPEARANCE_SHIFT
    assert not result.drifted


def test_no_detections_is_skipped_not_drift() -> None:
    result = compare_windows(
        window(1, empty=True),
        window(2, empty=True),
        alpha=ALPHA,
        psi_threshold=PSI_THRESHOLD,
        permutations=PERMUTATIONS,
    )
    for name in ("confidence_ks", "confidence_psi", "class_chi2", "box_size_ks"):
        assert result.tests[name].skipped, name
    assert result.tests["count_ks"].p_value == 1.0  # zero detections in both: no difference in counts
    assert not result.drifted and result.psi is None
    # detections vanishing is itself a change: the counts see it
    gone = compare_windows(
        window(1), window(2, empty=True), alpha=ALPHA, psi_threshold=PSI_THRESHOLD, permutations=PERMUTATIONS
    )
    assert gone.tests["class_chi2"].skipped and gone.reasons == ["count_ks"]
