"""Labels spread over cameras and time: per camera, only the most doubtful frames of each time window go on.

A camera sends the same scene for seconds on end; an uncertainty score alone then spends the budget on a burst of
near-identical frames of one camera in one bad minute. Labels spread over strata (camera x window) and ranked by
doubt only *within* a stratum beat both pure uncertainty and random on video (arXiv 2212.04211; DESIGN.md, "make
the loop pay"). Frames are judged as they stream past, so a stratum's best are known when its window ends: the
first frame of that camera from a later window (or any camera's frame a whole window after it ended) releases them.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Stratum(Generic[T]):
    window: int
    held: list[tuple[float, int, T]] = field(default_factory=list)


class StratumHold(Generic[T]):
    """The best ``keep`` candidates of each camera's current window of ``window_s`` seconds (bounded: at most
    ``keep`` per camera, and ``max_cameras`` cameras)."""

    def __init__(self, window_s: float, keep: int = 1, max_cameras: int = 1000) -> None:
        if window_s <= 0 or keep <= 0:
            raise ValueError("a stratum needs a positive window and keeps at least one frame")
        self.window_s, self.keep, self.max_cameras = window_s, keep, max_cameras
        self._strata: dict[str, _Stratum[T]] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return sum(len(s.held) for s in self._strata.values())

    def _window(self, ts: float) -> int:
        return int(ts // self.window_s)

    def release(self, camera_id: str, ts: float) -> list[T]:
        """The candidates of every window over at ``ts``: this camera's earlier windows, and other cameras' windows
        that ended a whole window ago (a camera that went quiet), best first within each."""
        now = self._window(ts)
        out: list[T] = []
        for camera, stratum in list(self._strata.items()):
            if stratum.window < now and (camera == camera_id or stratum.window < now - 1):
                out += [item for _, _, item in sorted(stratum.held, key=lambda h: (-h[0], h[1]))]
                del self._strata[camera]
        return out

    def would_keep(self, camera_id: str, ts: float, score: float) -> bool:
        """Whether a candidate of this score would enter its stratum now (ask before making an expensive one)."""
        stratum = self._strata.get(camera_id)
        if stratum is None or stratum.window != self._window(ts) or len(stratum.held) < self.keep:
            return True
        return score > min(h[0] for h in stratum.held)

    def hold(self, camera_id: str, ts: float, score: float, item: T) -> list[T]:
        """Offer a candidate to its stratum; returns what leaves for good (windows now over, and crowding: the
        oldest stratum when too many cameras are held). A candidate its stratum has no room for is dropped."""
        out = self.release(camera_id, ts)
        stratum = self._strata.get(camera_id)
        if stratum is None:
            if len(self._strata) >= self.max_cameras:
                oldest = min(self._strata, key=lambda c: self._strata[c].window)
                out += [item for _, _, item in self._strata.pop(oldest).held]
            stratum = self._strata[camera_id] = _Stratum(self._window(ts))
        stratum.held.append((score, next(self._order), item))
        stratum.held.sort(key=lambda h: (-h[0], h[1]))
        del stratum.held[self.keep :]
        return out

    def drain(self) -> list[T]:
        """Everything held (a stopping selector)."""
        out = [item for stratum in self._strata.values() for _, _, item in stratum.held]
        self._strata.clear()
        return out


class Strata(Generic[T]):
    """Strata with their own random control arm: each camera window is, by a coin flipped when it begins (so
    independent of the model), a *random* window with probability ``random_share``, which sends one frame drawn
    uniformly from it (reservoir sampling: the largest of uniform keys), or a *doubt* window, which sends its
    ``keep`` most doubtful frames. The random arm is then a fixed share of the labels, spread over cameras and
    time like the rest, instead of a share of every frame that outnumbers the picked ones."""

    def __init__(
        self, window_s: float, keep: int, random_share: float, seed: int | None = None, max_cameras: int = 1000
    ) -> None:
        if not 0 <= random_share <= 1:
            raise ValueError(f"random_share must lie in [0, 1], got {random_share}")
        self.window_s, self.random_share, self.max_cameras = window_s, random_share, max_cameras
        self.doubt: StratumHold[T] = StratumHold(window_s, keep, max_cameras)
        self.random: StratumHold[T] = StratumHold(window_s, 1, max_cameras)
        self._kind: dict[str, tuple[int, bool]] = {}
        self._rng = random.Random(seed)

    def __len__(self) -> int:
        return len(self.doubt) + len(self.random)

    def is_random(self, camera_id: str, ts: float) -> bool:
        """Whether the window of ``ts`` of this camera is a random one (decided once, when it begins)."""
        window = int(ts // self.window_s)
        known = self._kind.get(camera_id)
        if known is None or known[0] != window:
            if len(self._kind) >= self.max_cameras and camera_id not in self._kind:
                self._kind.clear()
            known = self._kind[camera_id] = (window, self._rng.random() < self.random_share)
        return known[1]

    def draw(self) -> float:
        """A reservoir key for a frame of a random window."""
        return self._rng.random()

    def release(self, camera_id: str, ts: float) -> list[T]:
        return self.doubt.release(camera_id, ts) + self.random.release(camera_id, ts)

    def drain(self) -> list[T]:
        return self.doubt.drain() + self.random.drain()
