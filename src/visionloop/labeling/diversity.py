"""What the labelers already have: a bounded memory of the frames selected so far, for diversity and class balance.

Uncertainty alone keeps picking the same kind of frame (the same dark corner, the same class the model confuses),
so the composite sampler multiplies a frame's uncertainty by two factors read from this memory:

- diversity: the frame's distance to the nearest frame already selected (k-center greedy when a pool is ranked
  one pick at a time, novelty when frames stream past);
- class balance: how rare the frame's predicted classes are among the frames already selected.

The memory is bounded (``size`` selections), so a long-running service forgets old picks and never grows.
"""

from __future__ import annotations

from collections import defaultdict, deque

import numpy as np
import numpy.typing as npt

from visionloop.core.contracts import FrameResult
from visionloop.core.imaging import frame_embedding

Image = npt.NDArray[np.uint8]
Vector = npt.NDArray[np.float32]
ClassMass = dict[int, float]

MIN_FACTOR, MAX_FACTOR = 0.25, 4.0  # one frame's class-balance factor never dominates its uncertainty


LAYOUT_GRID = 4  # the layout part: confidence-weighted box centres on a 4x4 grid


def layout(result: FrameResult, height: int, width: int) -> Vector:
    """Where the model sees objects, as a unit vector over a coarse grid (zeros: it sees none)."""
    grid = np.zeros((LAYOUT_GRID, LAYOUT_GRID), np.float32)
    for (x1, y1, x2, y2), conf in zip(result.detections.xyxy, result.detections.confidence, strict=True):
        col = min(LAYOUT_GRID - 1, max(0, int((x1 + x2) / 2 / max(width, 1) * LAYOUT_GRID)))
        row = min(LAYOUT_GRID - 1, max(0, int((y1 + y2) / 2 / max(height, 1) * LAYOUT_GRID)))
        grid[row, col] += float(conf)
    flat = grid.reshape(-1)
    return flat / max(float(np.linalg.norm(flat)), 1e-6)


def frame_vector(result: FrameResult, image: Image | None) -> Vector | None:
    """Unit vector describing what a frame shows: the detector's own embedding when the backend gives one, else a
    cheap appearance embedding beside the layout of the boxes found. A fixed camera's frames all look alike; what
    tells them apart is where the objects are."""
    if result.detections.embedding is not None:
        vector = result.detections.embedding
        return (vector / max(float(np.linalg.norm(vector)), 1e-6)).astype(np.float32)
    if image is None:
        return None
    height, width = image.shape[:2]
    combined = np.concatenate([frame_embedding(image), layout(result, height, width)])
    return (combined / max(float(np.linalg.norm(combined)), 1e-6)).astype(np.float32)


def class_mass(result: FrameResult) -> ClassMass:
    """Predicted classes of a frame, each box weighted by its confidence."""
    mass: ClassMass = defaultdict(float)
    for class_id, conf in zip(result.detections.class_id, result.detections.confidence, strict=True):
        mass[int(class_id)] += float(conf)
    return dict(mass)


class SelectionMemory:
    """Embeddings and predicted-class mass of the last ``size`` selected frames."""

    def __init__(self, size: int = 256, scale: float = 0.5) -> None:
        self.scale = scale
        self._vectors: deque[Vector] = deque(maxlen=size)
        self._classes: deque[ClassMass] = deque(maxlen=size)
        self._totals: defaultdict[int, float] = defaultdict(float)

    def __len__(self) -> int:
        return len(self._classes)

    def remember(self, vector: Vector | None, mass: ClassMass) -> None:
        if len(self._classes) == self._classes.maxlen:  # the oldest selection leaves the class totals too
            for class_id, weight in self._classes[0].items():
                self._totals[class_id] -= weight
        self._classes.append(mass)
        for class_id, weight in mass.items():
            self._totals[class_id] += weight
        if vector is not None:
            if self._vectors and len(self._vectors[0]) != len(vector):  # another embedding (a new backend)
                self._vectors.clear()
            self._vectors.append(vector)

    def distances(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Distance of each row of ``vectors`` to its nearest remembered frame (inf when nothing is remembered)."""
        if not self._vectors:
            return np.full(len(vectors), np.inf, np.float32)
        memory = np.stack(self._vectors)
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: one matrix product, no (n, m, d) array for a large pool
        squared = (vectors**2).sum(axis=1)[:, None] + (memory**2).sum(axis=1)[None, :] - 2.0 * vectors @ memory.T
        return np.asarray(np.sqrt(np.clip(squared.min(axis=1), 0.0, None)), dtype=np.float32)

    def diversity(self, distance: float) -> float:
        """1 for a frame unlike anything selected, falling linearly to 0 for a repeat."""
        return 1.0 if not np.isfinite(distance) else min(1.0, distance / self.scale)

    def rarity(self, mass: ClassMass) -> float:
        """> 1 when the frame's classes are rarer than average among the selected frames, < 1 when commoner."""
        total = sum(mass.values())
        if total <= 0:
            return 1.0
        seen = [v for v in self._totals.values() if v > 1e-9]
        mean = sum(seen) / len(seen) if seen else 0.0
        weighted = sum(m * (mean + 1.0) / (max(self._totals.get(c, 0.0), 0.0) + 1.0) for c, m in mass.items())
        return float(np.clip(weighted / total, MIN_FACTOR, MAX_FACTOR))
