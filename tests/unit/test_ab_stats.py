"""The paired A/B statistics and decision on constructed ground truth and predictions (no images, no model)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import ValidationError

from visionloop.core.settings import ABSettings
from visionloop.learning.ab_decision import Decision, Guards, decide, frames_to_settle, run_ab
from visionloop.learning.ab_stats import (
    BootstrapResult,
    FrameMatches,
    map50,
    match_frame,
    mcnemar,
    mcnemar_sample_size,
    paired_bootstrap,
)

Truth = tuple[np.ndarray, np.ndarray]
Prediction = tuple[np.ndarray, np.ndarray, np.ndarray]
CLASSES = 3
FAST_GOLD = Guards(10.0, 11.0, 0.80, 0.81)  # guards that hold


pytestmark = pytest.mark.usefixtures("offline_ultralytics")


def world(frames: int, seed: int) -> list[Truth]:
    """Frames of 1-4 boxes on a 4x4 grid of cells (so boxes never overlap), classes 0..CLASSES-1."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        n = int(rng.integers(1, 5))
        cells = rng.choice(16, size=n, replace=False)
        corner = np.stack([cells % 4 * 80 + 10, cells // 4 * 80 + 10], axis=1).astype(float)
        size = rng.uniform(30, 60, size=(n, 2))
        out.append((np.concatenate([corner, corner + size], axis=1), rng.integers(0, CLASSES, n)))
    return out


def detector(truths: list[Truth], hit_rate: float, seed: int) -> list[Prediction]:
    """A detector that finds a box with ``hit_rate`` (confidently, slightly off) and adds low-confidence noise."""
    rng = np.random.default_rng(seed)
    out = []
    for xyxy, cls in truths:
        boxes, conf, labels = [], [], []
        for box, c in zip(xyxy, cls, strict=True):
            if rng.random() < hit_rate:
                boxes.append(box + rng.normal(0, 1.5, 4))
                conf.append(rng.uniform(0.5, 0.99))
                labels.append(int(c))
            elif rng.random() < 0.5:  # a confident false alarm in an empty spot instead
                boxes.append(np.array([330.0, 330.0, 360.0, 360.0]))
                conf.append(rng.uniform(0.3, 0.9))
                labels.append(int(c))
        if rng.random() < 0.3:
            boxes.append(np.array([400.0, 10.0, 430.0, 40.0]))
            conf.append(rng.uniform(0.01, 0.4))
            labels.append(int(rng.integers(0, CLASSES)))
        out.append((np.array(boxes).reshape(-1, 4), np.array(conf), np.array(labels, np.int64)))
    return out


def matched(truths: list[Truth], preds: list[Prediction]) -> list[FrameMatches]:
    return [match_frame(t[0], t[1], p[0], p[1], p[2]) for t, p in zip(truths, preds, strict=True)]


@pytest.fixture(scope="module")
def arms() -> dict[str, list[FrameMatches]]:
    """Champion (hit rate 0.6), a twin of the same skill, and a clearly better challenger (0.95) on 250 frames."""
    truths = world(250, seed=1)
    return {
        "champion": matched(truths, detector(truths, 0.6, seed=2)),
        "twin": matched(truths, detector(truths, 0.6, seed=3)),
        "better": matched(truths, detector(truths, 0.95, seed=4)),
    }


def settings(**overrides: float) -> ABSettings:
    return ABSettings.model_validate(overrides)


@pytest.mark.parametrize(
    ("other", "frames"),
    [
        ("champion", 40),
        ("champion", 250),
        # A twin of the same skill is a different model: on few frames its luck can show as a real difference
        # (seeded here, 1 promotion in 40 twin pairs at 40 frames, as a 97.5% lower bound should), so it is
        # checked at the default min_frames.
        ("twin", 250),
    ],
)
def test_a_model_no_better_is_never_promoted(arms: dict[str, list[FrameMatches]], other: str, frames: int) -> None:
    champ, chall = arms["champion"][:frames], arms[other][:frames]
    verdict = run_ab(champ, chall, FAST_GOLD, settings(min_frames=30), operating_threshold=0.25)
    boot = verdict.bootstrap
    assert verdict.decision is not Decision.PROMOTE
    assert boot.ci_low <= 0 <= boot.ci_high
    if other == "champion":  # the same predictions: paired resamples give exactly 0 every time
        assert boot.difference == boot.ci_low == boot.ci_high == 0.0
        assert verdict.mcnemar.b == verdict.mcnemar.c == 0 and verdict.mcnemar.p_value == 1.0


def test_a_clearly_better_challenger_with_enough_frames_is_promoted(arms: dict[str, list[FrameMatches]]) -> None:
    verdict = run_ab(arms["champion"], arms["better"], FAST_GOLD, settings(), operating_threshold=0.25)
    assert verdict.decision is Decision.PROMOTE, verdict.reason
    assert verdict.bootstrap.n_frames == 250 >= ABSettings().min_frames
    assert verdict.bootstrap.ci_low > 0.1
    assert verdict.mcnemar.c > verdict.mcnemar.b and verdict.mcnemar.p_value < 0.001
    assert verdict.frames_needed is None


def test_the_same_challenger_with_too_few_frames_continues_with_an_estimate(
    arms: dict[str, list[FrameMatches]],
) -> None:
    verdict = run_ab(arms["champion"][:30], arms["better"][:30], FAST_GOLD, settings(), operating_threshold=0.25)
    assert verdict.decision is Decision.CONTINUE, verdict.reason
    assert verdict.bootstrap.ci_low > 0  # it would have been promoted but for min_frames
    assert verdict.frames_needed is not None and verdict.frames_needed >= ABSettings().min_frames - 30 > 0
    assert "estimated" in verdict.reason


def test_a_clearly_worse_challenger_is_rejected(arms: dict[str, list[FrameMatches]]) -> None:
    verdict = run_ab(arms["better"], arms["champion"], FAST_GOLD, settings(), operating_threshold=0.25)
    assert verdict.decision is Decision.REJECT, verdict.reason
    assert verdict.bootstrap.ci_high < 0
    assert verdict.latency_ok and verdict.gold_ok


@pytest.mark.parametrize(
    ("guards", "decision", "latency_ok", "gold_ok"),
    [
        (Guards(10.0, 15.0, 0.80, 0.78), Decision.PROMOTE, True, True),  # both exactly at their limits
        (Guards(10.0, 15.1, 0.80, 0.80), Decision.REJECT, False, True),  # too slow
        (Guards(10.0, 9.0, 0.80, 0.779), Decision.REJECT, True, False),  # forgets the gold set
        (Guards(10.0, 30.0, 0.80, 0.50), Decision.REJECT, False, False),
    ],
)
def test_guards_reject_even_a_more_accurate_challenger(
    arms: dict[str, list[FrameMatches]], guards: Guards, decision: Decision, latency_ok: bool, gold_ok: bool
) -> None:
    verdict = run_ab(arms["champion"], arms["better"], guards, settings(), operating_threshold=0.25)
    assert verdict.decision is decision, verdict.reason
    assert (verdict.latency_ok, verdict.gold_ok) == (latency_ok, gold_ok)
    assert verdict.bootstrap.ci_low > 0.1  # accuracy alone would promote
    assert ("guard failed" in verdict.reason) == (decision is Decision.REJECT)


BOX = np.array([[10.0, 10.0, 50.0, 50.0]])


@pytest.mark.parametrize(
    ("pred_xyxy", "conf", "cls", "correct"),
    [
        (BOX, [0.9], [0], True),
        (np.zeros((0, 4)), [], [], False),  # missed
        (BOX, [0.1], [0], False),  # found, but below the operating threshold
        (BOX, [0.9], [1], False),  # wrong class
        (BOX + np.array([0, 0, 40, 40]), [0.9], [0], False),  # IoU 0.25
        (np.concatenate([BOX, BOX + 100]), [0.9, 0.5], [0, 0], False),  # a false alarm above the threshold
        (np.concatenate([BOX, BOX + 100]), [0.9, 0.1], [0, 0], True),  # ... and one below it does not count
        (np.concatenate([BOX, BOX + 1]), [0.3, 0.9], [0, 0], False),  # a duplicate above it does
    ],
)
def test_frame_outcome_at_the_operating_threshold(
    pred_xyxy: np.ndarray, conf: list[float], cls: list[int], correct: bool
) -> None:
    frame = match_frame(BOX, [0], pred_xyxy, conf, cls)
    assert frame.correct_at(0.25) is correct
    assert list(frame.confidence) == sorted(conf, reverse=True)


def _frames(outcomes: list[bool]) -> list[FrameMatches]:
    return [
        match_frame(BOX, [0], BOX if ok else np.zeros((0, 4)), [0.9] if ok else [], [0] if ok else [])
        for ok in outcomes
    ]


@pytest.mark.parametrize(
    ("b", "c", "concordant", "p_value"),
    [
        (2, 8, 5, 2 * (1 + 10 + 45) / 2**10),  # 2 * P(X <= 2), X ~ Bin(10, 1/2)
        (0, 6, 0, 2 / 2**6),
        (7, 1, 20, 2 * (1 + 8) / 2**8),
        (5, 5, 3, 1.0),
        (0, 0, 4, 1.0),
    ],
)
def test_mcnemar_is_the_exact_binomial_test_on_discordant_frames(
    b: int, c: int, concordant: int, p_value: float
) -> None:
    champion = _frames([True] * b + [False] * c + [True] * concordant)
    challenger = _frames([False] * b + [True] * c + [True] * concordant)
    result = mcnemar(champion, challenger, threshold=0.25)
    assert (result.b, result.c, result.n_frames) == (b, c, b + c + concordant)
    assert result.p_value == pytest.approx(p_value, rel=1e-12)


def test_bootstrap_is_deterministic_for_a_seed_and_paired(arms: dict[str, list[FrameMatches]]) -> None:
    champ, chall = arms["champion"][:80], arms["twin"][:80]
    first = paired_bootstrap(champ, chall, resamples=1000, seed=7)
    assert paired_bootstrap(champ, chall, resamples=1000, seed=7) == first
    assert paired_bootstrap(champ, chall, resamples=1000, seed=8) != first
    swapped = paired_bootstrap(chall, champ, resamples=1000, seed=7)  # same indices, so every difference flips
    assert swapped.difference == pytest.approx(-first.difference, abs=1e-12)
    assert swapped.ci_low == pytest.approx(-first.ci_high, abs=1e-12)
    assert swapped.ci_high == pytest.approx(-first.ci_low, abs=1e-12)
    assert first.ci_low < first.difference < first.ci_high


def test_map50_of_a_subset_comes_from_the_cached_matches(arms: dict[str, list[FrameMatches]]) -> None:
    """Our cached path equals Ultralytics' DetMetrics as learning.evaluation runs it, and indices pick frames."""
    from visionloop.core.contracts import Detections
    from visionloop.learning.evaluation import GroundTruth, ultralytics_metrics

    truths = world(40, seed=11)
    preds = detector(truths, 0.7, seed=12)
    frames = matched(truths, preds)
    reference, _ = ultralytics_metrics(
        [GroundTruth(str(i), 480, 480, t[0], t[1]) for i, t in enumerate(truths)],
        [Detections(p[0].astype(np.float32), p[1].astype(np.float32), p[2].astype(np.int32)) for p in preds],
        [str(c) for c in range(CLASSES)],
        operating_threshold=0.25,
    )
    assert map50(frames) == pytest.approx(float(reference.box.map50), abs=1e-9)
    picks = [3, 3, 17, 0, 39]
    assert map50(frames, picks) == pytest.approx(map50([frames[i] for i in picks]), abs=1e-12)
    assert map50(frames, picks) != pytest.approx(map50(frames), abs=1e-6)


def _boot(difference: float, low: float, high: float, n: int = 100) -> BootstrapResult:
    return BootstrapResult(difference, low, high, 0.5, 0.5 + difference, n, 2000, 0.95, 0)


@pytest.mark.parametrize(
    ("boot", "min_gain", "total"),
    [
        (_boot(0.02, -0.01, 0.05), 0.0, 225),  # half-width 0.03 must shrink to 0.02: 100 * 1.5^2
        (_boot(0.02, -0.01, 0.05), 0.01, 900),  # ... to 0.01 to clear min_gain
        (_boot(-0.01, -0.03, 0.01), 0.0, 400),  # rejection side: 100 * 2^2
        (_boot(0.005, -0.02, 0.03), 0.01, None),  # between 0 and min_gain: never settles at this difference
        (_boot(0.0, 0.0, 0.0), 0.0, None),
    ],
)
def test_frames_to_settle_scales_the_ci_like_one_over_sqrt_n(
    boot: BootstrapResult, min_gain: float, total: int | None
) -> None:
    assert frames_to_settle(boot, min_gain) == total


@pytest.mark.parametrize(
    ("boot", "n_ok", "decision", "needed"),
    [
        (_boot(0.02, 0.005, 0.035, 300), True, Decision.PROMOTE, None),
        (_boot(0.02, -0.01, 0.05, 300), True, Decision.CONTINUE, 375),
        (_boot(0.02, 0.0, 0.04, 300), True, Decision.CONTINUE, 1),  # lower bound must exceed min_gain, not touch it
        (_boot(-0.02, -0.035, -0.005, 300), True, Decision.REJECT, None),
        (_boot(-0.01, -0.03, 0.01, 300), True, Decision.CONTINUE, 900),  # worse on average, but the CI holds 0
        (_boot(-0.02, -0.035, -0.005, 50), False, Decision.CONTINUE, 150),  # too few frames to reject yet
    ],
)
def test_decision_table(boot: BootstrapResult, n_ok: bool, decision: Decision, needed: int | None) -> None:
    stats = mcnemar([], [], 0.25)
    verdict = decide(boot, stats, FAST_GOLD, settings())
    assert (boot.n_frames >= ABSettings().min_frames) is n_ok
    assert (verdict.decision, verdict.frames_needed) == (decision, needed), verdict.reason
    record = json.loads(json.dumps(verdict.to_dict()))
    assert record["decision"] == decision.value
    assert record["bootstrap"]["ci_low"] == boot.ci_low and record["settings"]["min_frames"] == 200
    assert record["frames_needed_is_estimate"] is (needed is not None)


def test_min_frames_default_follows_its_power_calculation() -> None:
    assert mcnemar_sample_size(discordant=0.25, difference=0.10) == 194
    assert math.ceil(194 / 10) * 10 <= ABSettings().min_frames
    assert mcnemar_sample_size(discordant=0.25, difference=0.05) > 194  # a smaller effect needs more frames


@pytest.mark.parametrize(
    "bad",
    [{"bootstrap_resamples": 999}, {"confidence": 1.0}, {"min_frames": 0}, {"max_gold_regression": -0.1}, {"x": 1}],
)
def test_ab_settings_refuse_bad_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        ABSettings.model_validate(bad)


def test_unpaired_inputs_are_refused(arms: dict[str, list[FrameMatches]]) -> None:
    with pytest.raises(ValueError, match="unpaired"):
        paired_bootstrap(arms["champion"][:10], arms["better"][:11])
    with pytest.raises(ValueError, match="different ground truth"):
        mcnemar(arms["champion"][:10], arms["better"][1:11], 0.25)


def test_a_stratified_bootstrap_weighs_each_set_the_same() -> None:
    """Many frames where the models tie and a few where the challenger is far better: pooled by frames the gain
    shrinks with the tie set's size, by sets it is half the small set's gain whatever the big set's size."""
    import numpy as np

    from visionloop.learning.ab_stats import FrameMatches

    def frame(right: bool) -> FrameMatches:
        return FrameMatches(np.array([right]), np.array([0.9]), np.array([0]), np.array([0]))

    tie = [frame(True)] * 200
    champion = [frame(False)] * 20 + tie
    challenger = [frame(True)] * 20 + tie
    by_sets = paired_bootstrap(champion, challenger, 1000, 0.95, 0, strata=[20, 200])
    assert by_sets.difference == pytest.approx(0.5, abs=0.01)  # AP of a perfect set is 0.995 (101-point)
    assert by_sets.ci_low == pytest.approx(by_sets.difference) and by_sets.n_frames == 220
    by_frames = paired_bootstrap(champion, challenger, 1000, 0.95, 0)
    assert 0 < by_frames.difference < 0.2
    assert paired_bootstrap(champion, challenger, 1000, 0.95, 0, strata=[220]).difference == by_frames.difference
    with pytest.raises(ValueError, match="strata"):
        paired_bootstrap(champion, challenger, 1000, 0.95, 0, strata=[20, 100])
