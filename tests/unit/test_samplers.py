from __future__ import annotations

import math
from contextlib import ExitStack as DoesNotRaise
from typing import Any

import numpy as np
import pytest

from visionloop.core.contracts import Detections, FrameResult
from visionloop.core.errors import ConfigError
from visionloop.labeling.samplers import (
    CompositeSampler,
    ConfidenceBandSampler,
    EntropySampler,
    LeastConfidenceSampler,
    MarginSampler,
    NoveltySampler,
    RandomSampler,
    aggregate,
    create_sampler,
)
from visionloop.simulation.clips import render_clip


def _result(conf: list[float], scores: list[list[float]] | None = None) -> FrameResult:
    n = len(conf)
    detections = Detections(
        np.tile(np.array([[0, 0, 10, 10]], np.float32), (n, 1)),
        np.array(conf, np.float32),
        np.zeros(n, np.int32),
        class_scores=None if scores is None else np.array(scores, np.float32),
    )
    return FrameResult("cam", 0, 0.0, "v1", detections)


@pytest.mark.parametrize(
    ("values", "how", "expected"),
    [
        ([0.2, 0.6], "max", 0.6),
        ([0.2, 0.6], "mean", 0.4),
        ([0.7, 0.6], "sum", 1.0),
        ([0.75, 0.75], "soft_count", 1 - math.exp(-1.0)),
    ],
)
def test_aggregation_rules(values: list[float], how: Any, expected: float) -> None:
    assert aggregate(values, how) == pytest.approx(expected)


def test_uncertainty_samplers_rank_doubt_higher() -> None:
    sure = _result([0.95], [[0.95, 0.03, 0.02]])
    torn = _result([0.5], [[0.5, 0.45, 0.05]])
    for sampler in (LeastConfidenceSampler(), MarginSampler(), EntropySampler()):
        assert sampler.score(torn) > sampler.score(sure), sampler.key  # type: ignore[operator]
    assert MarginSampler().score(torn) == pytest.approx(0.95)
    assert EntropySampler().score(_result([0.34], [[1 / 3, 1 / 3, 1 / 3]])) == pytest.approx(1.0, abs=1e-3)
    assert LeastConfidenceSampler().score(_result([])) is None  # no boxes: no opinion


def test_confidence_band_peaks_at_the_threshold() -> None:
    band = ConfidenceBandSampler(threshold=0.25, width=0.1)
    assert band.score(_result([0.25])) == pytest.approx(1.0)
    assert band.score(_result([0.30])) == pytest.approx(0.5)
    assert band.score(_result([0.9])) == 0.0
    assert band.score(_result([0.01])) is None  # below the candidate floor: no opinion


def test_soft_count_ranks_several_doubtful_objects_above_one() -> None:
    one, three = _result([0.5]), _result([0.5, 0.5, 0.5])
    for how in ("soft_count", "max"):
        sampler = LeastConfidenceSampler(aggregate_by=how)  # type: ignore[arg-type]
        if how == "soft_count":
            assert sampler.score(three) > sampler.score(one)  # type: ignore[operator]
        else:
            assert sampler.score(three) == sampler.score(one)


def test_novelty_prefers_unseen_scenes() -> None:
    a, b = (
        render_clip(frames=1, width=160, height=90, seed=1)[0],
        render_clip(frames=1, width=160, height=90, seed=2, domain="C")[0],
    )
    novelty = NoveltySampler(scale=0.5)
    result = _result([0.5])
    assert novelty.score(result, a) == 1.0
    novelty.observe_selected(result, a)
    assert novelty.score(result, a) == pytest.approx(0.0, abs=1e-6)
    assert novelty.score(result, b) > 0.3  # type: ignore[operator]


def test_random_arm_rate_is_kept() -> None:
    sampler = RandomSampler(rate=0.1, seed=3)
    picks = sum(sampler.score(_result([0.9])) == 1.0 for _ in range(5000))
    assert 400 < picks < 600


@pytest.mark.parametrize(
    ("key", "expectation"),
    [("margin", DoesNotRaise()), ("entropy", DoesNotRaise()), ("vibes", pytest.raises(ConfigError, match="margin"))],
)
def test_registry_names_valid_keys(key: str, expectation: Any) -> None:
    with expectation:
        assert create_sampler(key).key == key


def test_composite_mixes_by_weight_and_gives_reasons() -> None:
    composite = CompositeSampler({"margin": 1.0, "least_confidence": 1.0}, threshold=0.5, random_rate=0.0, options={})
    chosen = composite.select(_result([0.4], [[0.4, 0.35, 0.25]]))
    assert chosen is not None and chosen.score > 0.5 and "margin" in chosen.reason
    assert composite.select(_result([0.97], [[0.97, 0.02, 0.01]])) is None
    always_random = CompositeSampler({"margin": 1.0}, threshold=0.99, random_rate=1.0, options={})
    assert always_random.select(_result([0.99])).sampler == "random"  # type: ignore[union-attr]
