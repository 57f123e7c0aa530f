"""Diversity and class balance: the memory of selected frames and the greedy pool ranking built on it."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.core.contracts import Detections, FrameResult
from visionloop.labeling.diversity import MAX_FACTOR, SelectionMemory, class_mass
from visionloop.labeling.samplers import CompositeSampler


def _result(conf: list[float], classes: list[int] | None = None, embedding: list[float] | None = None) -> FrameResult:
    n = len(conf)
    detections = Detections(
        np.tile(np.array([[0, 0, 10, 10]], np.float32), (n, 1)),
        np.array(conf, np.float32),
        np.array(classes if classes is not None else [0] * n, np.int32),
        embedding=None if embedding is None else np.array(embedding, np.float32),
    )
    return FrameResult("cam", 0, 0.0, "v1", detections)


def _composite(diversity: float = 0.0, class_balance: float = 0.0, size: int = 256) -> CompositeSampler:
    return CompositeSampler(
        {"least_confidence": 1.0},
        threshold=0.0,
        random_rate=0.0,
        options={"least_confidence": {"aggregate_by": "soft_count"}},
        diversity=diversity,
        class_balance=class_balance,
        memory=SelectionMemory(size, scale=0.5),
    )


def test_memory_is_bounded_and_forgets_the_oldest_classes() -> None:
    memory = SelectionMemory(size=3)
    for class_id in (0, 1, 1, 1):
        memory.remember(np.ones(2, np.float32), {class_id: 1.0})
    assert len(memory) == 3
    # class 0 left with the oldest selection: it is as rare as a class never seen
    assert memory.rarity({0: 1.0}) == pytest.approx(min(MAX_FACTOR, 4.0))
    assert memory.rarity({1: 1.0}) == pytest.approx(1.0)


def test_rarity_favours_classes_the_labelers_have_seen_least() -> None:
    memory = SelectionMemory()
    for _ in range(5):
        memory.remember(None, class_mass(_result([0.9, 0.9], [0, 0])))
    memory.remember(None, class_mass(_result([0.9], [1])))
    assert memory.rarity(class_mass(_result([0.9], [1]))) > 1.0 > memory.rarity(class_mass(_result([0.9], [0])))
    assert memory.rarity({}) == 1.0  # no boxes: no opinion


def test_diversity_falls_to_zero_for_a_repeat() -> None:
    memory = SelectionMemory(scale=0.5)
    here = np.array([1.0, 0.0], np.float32)
    assert np.isinf(memory.distances(here[None])[0])
    memory.remember(here, {})
    assert memory.diversity(float(memory.distances(here[None])[0])) == 0.0
    assert memory.diversity(float(memory.distances(np.array([[0.0, 1.0]], np.float32))[0])) == 1.0


def test_pick_spreads_a_batch_over_scenes_instead_of_repeating_one_doubt() -> None:
    # two scenes: a cluster of equally doubtful repeats of scene x, and one slightly less doubtful frame of scene y
    repeats = [(_result([0.5, 0.5], embedding=[1.0, 0.0]), None) for _ in range(4)]
    other = (_result([0.55, 0.55], embedding=[0.0, 1.0]), None)
    pool = [*repeats, other]
    assert 4 not in _composite(diversity=0.0).pick(pool, 2)  # uncertainty alone takes two repeats
    assert _composite(diversity=1.0).pick(pool, 2) == [0, 4]  # k-center takes the other scene second


def test_pick_balances_classes_and_puts_frames_without_detections_last() -> None:
    pool = [
        (_result([0.5, 0.5], [0, 0], embedding=[1.0, 0.0]), None),
        (_result([0.5, 0.5], [0, 0], embedding=[0.0, 1.0]), None),
        (_result([0.6, 0.6], [1, 1], embedding=[0.7, 0.7]), None),
        (_result([], embedding=[-1.0, 0.0]), None),
    ]
    order = _composite(class_balance=1.0).pick(pool, 4)
    assert order[:2] == [0, 2]  # after a class-0 frame, the class-1 frame outranks the second class-0 frame
    assert order[-1] == 3


def test_streamed_frames_and_pool_picks_share_one_memory() -> None:
    composite = _composite(diversity=1.0)
    frame = _result([0.5, 0.5], embedding=[1.0, 0.0])
    first = composite.select(frame)
    assert first is not None and first.score > 0
    composite.observe_selected(frame, None)
    again = composite.select(frame)
    assert again is not None and again.score == 0.0  # the same scene again teaches nothing new
    assert composite.pick([(frame, None), (_result([0.5, 0.5], embedding=[0.0, 1.0]), None)], 1) == [1]


def test_a_fixed_cameras_frames_differ_by_where_the_objects_are() -> None:
    from visionloop.labeling.diversity import frame_vector

    image = np.full((90, 160, 3), 80, np.uint8)  # the same background: only the boxes move
    left = FrameResult(
        "cam", 0, 0.0, "v1", Detections(np.array([[5, 5, 25, 25]], np.float32), np.array([0.6]), np.array([0]))
    )
    right = FrameResult(
        "cam", 1, 0.0, "v1", Detections(np.array([[130, 60, 150, 80]], np.float32), np.array([0.6]), np.array([0]))
    )
    a, b, again = frame_vector(left, image), frame_vector(right, image), frame_vector(left, image)
    assert a is not None and b is not None and again is not None
    assert float(np.linalg.norm(a - again)) == 0.0
    assert float(np.linalg.norm(a - b)) > 0.5  # far enough to count as new at the default scale
