"""The active-learning benchmark's arithmetic: label saving both ways, CIs over seeds."""

from __future__ import annotations

import pytest

from benchmarks.al_stats import cost_saving, label_saving, labels_to_reach, mean_and_ci, saving_ci

LABELS = [0.0, 25.0, 50.0, 100.0]


def test_labels_to_reach_interpolates_between_steps() -> None:
    assert labels_to_reach(LABELS, [0.2, 0.3, 0.4, 0.5], 0.35) == pytest.approx(37.5)
    assert labels_to_reach(LABELS, [0.2, 0.3, 0.4, 0.5], 0.6) is None


@pytest.mark.parametrize(
    ("sampler", "random", "expected"),
    [
        ([0.2, 0.3, 0.5, 0.6], [0.2, 0.3, 0.4, 0.5], 0.5),  # reaches random's final 0.5 at 50 of 100 labels
        ([0.2, 0.3, 0.4, 0.5], [0.2, 0.3, 0.4, 0.5], 0.0),  # the same curve saves nothing
        ([0.2, 0.3, 0.4, 0.5], [0.2, 0.3, 0.5, 0.6], -0.5),  # random reaches the sampler's final at 50: it costs
    ],
)
def test_label_saving_is_symmetric(sampler: list[float], random: list[float], expected: float) -> None:
    assert label_saving(LABELS, sampler, random) == pytest.approx(expected)


def test_mean_and_ci_cover_the_seeds() -> None:
    mean, low, high = mean_and_ci([[0.1, 0.3], [0.2, 0.5], [0.3, 0.4]])
    assert mean == pytest.approx([0.2, 0.4])
    assert low[0] < 0.2 < high[0] and high[1] - low[1] == pytest.approx(high[0] - low[0])
    assert mean_and_ci([[0.1, 0.3]]) == ([0.1, 0.3], [0.1, 0.3], [0.1, 0.3])  # one seed: no interval


def test_saving_ci_brackets_the_point_estimate_and_is_reproducible() -> None:
    sampler = [[0.2, 0.35, 0.5, 0.6], [0.2, 0.3, 0.45, 0.55], [0.2, 0.32, 0.48, 0.52]]
    random = [[0.2, 0.3, 0.4, 0.5], [0.2, 0.28, 0.42, 0.5], [0.2, 0.3, 0.38, 0.47]]
    point = label_saving(
        LABELS, [sum(c) / 3 for c in zip(*sampler, strict=True)], [sum(c) / 3 for c in zip(*random, strict=True)]
    )
    low, high = saving_ci(LABELS, sampler, random, resamples=500)
    assert low <= point <= high and low > 0
    assert saving_ci(LABELS, sampler, random, resamples=500) == (low, high)


def test_cost_saving_reads_each_arm_on_its_own_cost_axis() -> None:
    # per image the sampler saves half; but it bought twice the boxes per image, so per box it saves nothing
    sampler, random = [0.2, 0.3, 0.5, 0.6], [0.2, 0.3, 0.4, 0.5]
    assert cost_saving(LABELS, sampler, LABELS, random) == pytest.approx(0.5)
    assert cost_saving([0.0, 50.0, 100.0, 200.0], sampler, LABELS, random) == pytest.approx(0.0)
