"""Active-learning samplers: which frames are worth a human's time, each choice with its reason and score.

Every sampler scores a frame in [0, 1] (or abstains with None); implementations register themselves under
their ``key`` and ``create_sampler`` names the valid keys when asked for an unknown one. Uncertainty alone
over-selects near-duplicate video frames, so novelty and a random control arm (which keeps accuracy estimates
unbiased) are part of the mix, and de-duplication happens before anything is queued.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from visionloop.core.contracts import FrameResult
from visionloop.core.errors import ConfigError
from visionloop.core.imaging import frame_embedding
from visionloop.labeling.diversity import ClassMass, SelectionMemory, Vector, class_mass, frame_vector

Aggregate = Literal["max", "mean", "sum", "soft_count"]
SOFT_COUNT_SCALE = 1.5  # soft_count: boxes' doubts that add up to this many give 1 - 1/e
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Selection:
    """Why a frame goes to labelers: the sampler that chose it and its score."""

    sampler: str
    score: float
    reason: str


def aggregate(values: Sequence[float], how: Aggregate) -> float:
    if not values:
        return 0.0
    if how == "max":
        return float(max(values))
    if how == "mean":
        return float(sum(values) / len(values))
    if how == "soft_count":  # several doubtful objects outrank one: the frame teaches more per label
        return float(1.0 - math.exp(-sum(values) / SOFT_COUNT_SCALE))
    return float(min(1.0, sum(values)))


class Sampler(ABC):
    key: ClassVar[str]
    _registry: ClassVar[dict[str, type[Sampler]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "key", None):
            Sampler._registry[cls.key] = cls

    @abstractmethod
    def score(self, result: FrameResult, image: Image | None = None) -> float | None:
        """How much labelling this frame would teach the model, in [0, 1]; None: no opinion."""

    def observe_selected(self, result: FrameResult, image: Image | None) -> None:  # noqa: B027 (optional hook)
        """Told when a frame was actually queued (novelty remembers it); most samplers need not care."""

    @classmethod
    def available(cls) -> list[str]:
        return sorted(cls._registry)


def create_sampler(key: str, **options: Any) -> Sampler:
    try:
        cls = Sampler._registry[key]
    except KeyError:
        raise ConfigError(f"unknown sampler '{key}'; choose one of: {', '.join(Sampler.available())}") from None
    return cls(**options)


class _PerBoxSampler(Sampler):
    def __init__(self, aggregate_by: Aggregate = "max") -> None:
        self.aggregate_by = aggregate_by

    @abstractmethod
    def box_scores(self, result: FrameResult) -> list[float]: ...

    def score(self, result: FrameResult, image: Image | None = None) -> float | None:
        if len(result.detections) == 0:
            return None
        return aggregate(self.box_scores(result), self.aggregate_by)


def least_confidence(result: FrameResult) -> list[float]:
    return [1.0 - float(c) for c in result.detections.confidence]


class LeastConfidenceSampler(_PerBoxSampler):
    """1 - the top class probability of each box."""

    key = "least_confidence"

    def box_scores(self, result: FrameResult) -> list[float]:
        return least_confidence(result)


class MarginSampler(_PerBoxSampler):
    """1 - (best - second best class score): the model hesitates between two classes."""

    key = "margin"

    def box_scores(self, result: FrameResult) -> list[float]:
        scores = result.detections.class_scores
        if scores is None or scores.shape[1] < 2:
            return least_confidence(result)
        top = np.sort(scores, axis=1)[:, ::-1]
        return [float(1.0 - (a - b)) for a, b in zip(top[:, 0], top[:, 1], strict=True)]


class EntropySampler(_PerBoxSampler):
    """Normalised entropy of each box's class distribution."""

    key = "entropy"

    def box_scores(self, result: FrameResult) -> list[float]:
        scores = result.detections.class_scores
        if scores is None or scores.shape[1] < 2:  # without class scores, fall back to least confidence
            return least_confidence(result)
        p = np.clip(scores, 1e-9, None)
        p = p / p.sum(axis=1, keepdims=True)
        entropy = -(p * np.log(p)).sum(axis=1) / math.log(p.shape[1])
        return [float(e) for e in entropy]


class ConfidenceBandSampler(_PerBoxSampler):
    """Boxes whose confidence sits near the operating threshold: the decisions that flip most easily."""

    key = "confidence_band"

    def __init__(
        self,
        threshold: float = 0.25,
        width: float = 0.15,
        candidate_floor: float = 0.05,
        aggregate_by: Aggregate = "max",
    ) -> None:
        super().__init__(aggregate_by)
        self.threshold, self.width, self.candidate_floor = threshold, width, candidate_floor

    def box_scores(self, result: FrameResult) -> list[float]:
        conf = result.detections.confidence
        return [max(0.0, 1.0 - abs(float(c) - self.threshold) / self.width) for c in conf if c >= self.candidate_floor]

    def score(self, result: FrameResult, image: Image | None = None) -> float | None:
        scores = self.box_scores(result)
        return aggregate(scores, self.aggregate_by) if scores else None


class NoveltySampler(Sampler):
    """Distance of the frame to the frames recently selected: new scenes teach more than repeats."""

    key = "novelty"

    def __init__(self, memory: int = 256, scale: float = 0.5) -> None:
        self._memory: deque[npt.NDArray[np.float32]] = deque(maxlen=memory)
        self.scale = scale

    def _vector(self, result: FrameResult, image: Image | None) -> npt.NDArray[np.float32] | None:
        if result.detections.embedding is not None:
            vector = result.detections.embedding
            return (vector / max(float(np.linalg.norm(vector)), 1e-6)).astype(np.float32)
        return frame_embedding(image) if image is not None else None

    def score(self, result: FrameResult, image: Image | None = None) -> float | None:
        vector = self._vector(result, image)
        if vector is None:
            return None
        if not self._memory:
            return 1.0
        distance = float(np.min(np.linalg.norm(np.stack(self._memory) - vector, axis=1)))
        return min(1.0, distance / self.scale)

    def observe_selected(self, result: FrameResult, image: Image | None) -> None:
        vector = self._vector(result, image)
        if vector is not None:
            self._memory.append(vector)


class FlickerSampler(Sampler):
    """The camera's tracker saw the detector flicker here: tracks born and lost between neighbouring frames, or
    switching class (core.tracking). A frame the model cannot see steadily is worth a label even when each box,
    alone, looks confident (Temporal Coherence AL, ICCV-W 2019). No opinion on untracked results."""

    key = "flicker"

    def score(self, result: FrameResult, image: Image | None = None) -> float | None:
        return None if result.flicker is None else min(1.0, float(result.flicker))


class RandomSampler(Sampler):
    """The control arm: a fixed share of frames chosen at random, whatever the model thinks."""

    key = "random"

    def __init__(self, rate: float = 0.02, seed: int | None = None) -> None:
        if not 0 <= rate <= 1:
            raise ConfigError(f"random sampler rate must lie in [0, 1], got {rate}")
        self.rate = rate
        self._rng = random.Random(seed)

    def score(self, result: FrameResult, image: Image | None = None) -> float | None:
        return 1.0 if self._rng.random() < self.rate else 0.0


class CompositeSampler:
    """Weighted mix of samplers plus the random control arm, decided first so it stays unbiased.

    The mix (the frame's uncertainty) is multiplied by ``diversity(distance to the frames already selected)
    ** diversity`` and ``class rarity ** class_balance``, both read from a bounded :class:`SelectionMemory`. Frames
    streaming past are judged one at a time (:meth:`select`); a pool is ranked by :meth:`pick`, which applies the
    same formula greedily (uncertainty-weighted k-center with class balance). The service and the benchmark use it.
    """

    def __init__(
        self,
        weights: dict[str, float],
        threshold: float,
        random_rate: float,
        options: dict[str, Any],
        seed: int | None = None,
        diversity: float = 0.0,
        class_balance: float = 0.0,
        memory: SelectionMemory | None = None,
    ) -> None:
        if not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
            raise ConfigError("composite sampler weights must be non-negative with a positive sum")
        if diversity < 0 or class_balance < 0:
            raise ConfigError("diversity and class_balance must be >= 0")
        self.samplers = {key: create_sampler(key, **options.get(key, {})) for key in weights}
        total = sum(weights.values())
        self.weights = {key: w / total for key, w in weights.items()}
        self.threshold = threshold
        self.control = RandomSampler(random_rate, seed)
        self.diversity, self.class_balance = diversity, class_balance
        self.memory = memory or SelectionMemory()

    def uncertainty(self, result: FrameResult, image: Image | None = None) -> tuple[float, dict[str, float]] | None:
        """The weighted mix of the samplers that have an opinion, and each one's score; None: none has."""
        parts: dict[str, float] = {}
        for key, sampler in self.samplers.items():
            value = sampler.score(result, image)
            if value is not None:
                parts[key] = value
        if not parts:
            return None
        weight = sum(self.weights[k] for k in parts)
        return sum(self.weights[k] * v for k, v in parts.items()) / weight, parts

    def gain(self, uncertainty: float, distance: float, mass: ClassMass) -> float:
        """What selecting the frame is worth now, given what the memory holds."""
        value = uncertainty
        if self.diversity:
            value *= self.memory.diversity(distance) ** self.diversity
        if self.class_balance:
            value *= self.memory.rarity(mass) ** self.class_balance
        return value

    def _distance(self, result: FrameResult, image: Image | None) -> float:
        vector = frame_vector(result, image) if self.diversity else None
        return float("inf") if vector is None else float(self.memory.distances(vector[None])[0])

    def select(self, result: FrameResult, image: Image | None = None) -> Selection | None:
        if self.control.score(result) == 1.0:
            return Selection("random", 1.0, f"random control arm ({self.control.rate:.1%} of frames)")
        mixed = self.uncertainty(result, image)
        if mixed is None:
            return None
        base, parts = mixed
        score = self.gain(base, self._distance(result, image), class_mass(result))
        if score < self.threshold:
            return None
        top = max(parts, key=lambda k: self.weights[k] * parts[k])
        detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(parts.items()))
        return Selection(top, score, f"composite {score:.2f} >= {self.threshold:.2f} ({detail}; mix {base:.2f})")

    def observe_selected(self, result: FrameResult, image: Image | None) -> None:
        self._remember(result, image, frame_vector(result, image), class_mass(result))

    def _remember(self, result: FrameResult, image: Image | None, vector: Vector | None, mass: ClassMass) -> None:
        for sampler in self.samplers.values():
            sampler.observe_selected(result, image)
        self.memory.remember(vector, mass)

    def pick(self, candidates: Sequence[tuple[FrameResult, Image | None]], k: int) -> list[int]:
        """Indices of the ``k`` candidates of a pool to label, best first, each remembered as it is picked.

        Greedy: every pick is the candidate whose gain is highest given the picks before it, so a batch spreads
        over scenes and classes instead of taking k copies of the same doubt. Frames no sampler has an opinion on
        (no detections) come last, farthest first.
        """
        mixes = [self.uncertainty(result, image) for result, image in candidates]
        bases = np.array([0.0 if m is None else m[0] for m in mixes])
        masses = [class_mass(result) for result, _ in candidates]
        vectors = [frame_vector(result, image) for result, image in candidates]
        dim = next((len(v) for v in vectors if v is not None), 1)
        matrix = np.stack([np.zeros(dim, np.float32) if v is None else v for v in vectors])
        distances = self.memory.distances(matrix)
        alive = list(range(len(candidates)))
        chosen: list[int] = []
        while alive and len(chosen) < k:
            gains = [self.gain(bases[i], float(distances[i]), masses[i]) + 1e-9 * min(distances[i], 9.0) for i in alive]
            best = alive.pop(int(np.argmax(gains)))
            chosen.append(best)
            self._remember(*candidates[best], vectors[best], masses[best])
            distances = np.minimum(distances, np.linalg.norm(matrix - matrix[best], axis=1))
        return chosen
