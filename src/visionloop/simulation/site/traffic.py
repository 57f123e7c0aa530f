"""Objects past one camera: Poisson arrivals whose rate follows busy, normal and quiet spells, each object entering
at a door, walking to a point, sometimes stopping there a while, and leaving by another door.

Everything is drawn per spell from its own seed, and an object's place is a function of time, so the objects in view
at any moment come from the few spells that can still have someone in view: no frame needs the frames before it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from visionloop.simulation.world.domain import Domain, Traffic

SPELL_TAG, ARRIVAL_TAG = 11, 13
MAX_IN_VIEW = 64  # a camera never shows more objects at once (a very busy spell queues them at the door)


@dataclass(frozen=True)
class Door:
    """Where objects enter and leave: a point just outside one edge of the picture (never its bottom, the clock's)."""

    x: float
    y: float


@dataclass(frozen=True)
class Track:
    """One object's life in view: its look, and where it is over time (linear between waypoints)."""

    id: int
    class_id: int
    size: float  # pixels, before perspective
    aspect: float
    angle: float
    spin: float  # degrees per second
    colour: tuple[int, int, int]
    times: tuple[float, ...]  # seconds since the site's first frame, one per waypoint, non-decreasing
    points: tuple[tuple[float, float], ...]

    @property
    def enters(self) -> float:
        return self.times[0]

    @property
    def leaves(self) -> float:
        return self.times[-1]

    @property
    def stops(self) -> bool:
        """Whether it stands still somewhere on its way (two waypoints at one place)."""
        return any(a == b for a, b in zip(self.points, self.points[1:], strict=False))

    def place(self, t: float) -> tuple[float, float] | None:
        """Centre at time ``t``, or None before it enters or after it left."""
        if not self.enters <= t <= self.leaves:
            return None
        for (t0, p0), (t1, p1) in zip(
            zip(self.times, self.points, strict=True), zip(self.times[1:], self.points[1:], strict=True), strict=True
        ):
            if t <= t1:
                f = 0.0 if t1 == t0 else (t - t0) / (t1 - t0)
                return p0[0] + f * (p1[0] - p0[0]), p0[1] + f * (p1[1] - p0[1])
        return self.points[-1]

    def moving(self, t: float) -> bool:
        """Whether it is on its way at ``t`` (not standing)."""
        for (t0, p0), (t1, p1) in zip(
            zip(self.times, self.points, strict=True), zip(self.times[1:], self.points[1:], strict=True), strict=True
        ):
            if t0 <= t <= t1:
                return p0 != p1
        return False


def spell_factor(seed: int, viewpoint: int, spell: int, traffic: Traffic) -> float:
    """The arrival rate multiplier of one spell: busy, normal (1) or quiet."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, viewpoint, spell, SPELL_TAG]))
    draw = rng.random()
    if draw < traffic.busy_share:
        return traffic.busy_factor
    if draw < traffic.busy_share + traffic.quiet_share:
        return traffic.quiet_factor
    return 1.0


def max_life_s(traffic: Traffic, width: int, height: int) -> float:
    """The longest an object can stay in view: two crossings of the picture at the slowest speed, plus a stop."""
    diagonal = math.hypot(width, height) * 1.2
    return 2 * diagonal / (traffic.speed[0] * width) + traffic.stop_s[1] + 1.0


@dataclass(frozen=True)
class ViewGeometry:
    """What traffic needs of a camera's viewpoint: the picture's usable size and its doors."""

    width: int
    height: int  # above the clock's strip
    doors: tuple[Door, ...]

    @property
    def span(self) -> int:
        """What a domain's object scale is a fraction of: the longer side, the one a detector's square input spans
        (a still is square), so a site's objects look to the detector as large as its domain's stills show them."""
        return max(self.width, self.height)


def _colour(rng: np.random.Generator, domain: Domain) -> tuple[int, int, int]:
    import cv2

    hsv = np.array(
        [[[rng.integers(0, 180), 255 * rng.uniform(*domain.saturation), rng.uniform(90, 255)]]], dtype=np.float32
    )
    bgr = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def _track(
    rng: np.random.Generator, ident: int, enters: float, domain: Domain, view: ViewGeometry, class_id: int
) -> Track:
    traffic = domain.traffic
    size = view.span * float(rng.uniform(*domain.scale))
    entry, exit_ = rng.choice(len(view.doors), size=2, replace=len(view.doors) < 2)
    margin = size * 0.6
    stop = (
        float(rng.uniform(margin, view.width - margin)),
        float(rng.uniform(margin, max(margin + 1, view.height - margin))),
    )
    start = (view.doors[entry].x, view.doors[entry].y)
    end = (view.doors[exit_].x, view.doors[exit_].y)
    speed = float(rng.uniform(*traffic.speed)) * view.width
    first = math.dist(start, stop) / speed
    second = math.dist(stop, end) / speed
    pause = float(rng.uniform(*traffic.stop_s)) if rng.random() < traffic.stop_chance else 0.0
    times = [enters, enters + first]
    points = [start, stop]
    if pause:
        times.append(times[-1] + pause)
        points.append(stop)
    times.append(times[-1] + second)
    points.append(end)
    return Track(
        id=ident,
        class_id=class_id,
        size=size,
        aspect=float(rng.uniform(0.85, 1.15)),
        angle=float(rng.uniform(0, 360)),
        spin=float(rng.uniform(*traffic.spin)),
        colour=_colour(rng, domain),
        times=tuple(times),
        points=tuple(points),
    )


def spell_tracks(
    seed: int, viewpoint: int, spell: int, spell_s: float, domain: Domain, view: ViewGeometry, classes: int
) -> tuple[Track, ...]:
    """The objects that arrive during spell ``spell`` (``spell_s`` long; ``domain`` is the one the camera shows
    when the spell starts)."""
    traffic = domain.traffic
    rate = traffic.arrivals_per_minute / 60 * spell_factor(seed, viewpoint, spell, traffic)
    rng = np.random.default_rng(np.random.SeedSequence([seed, viewpoint, spell, ARRIVAL_TAG]))
    count = int(rng.poisson(rate * spell_s))
    starts = np.sort(rng.uniform(spell * spell_s, (spell + 1) * spell_s, count))
    weights = np.asarray(domain.class_weights[:classes], dtype=np.float64)
    weights = weights / weights.sum()
    tracks = []
    for k, enters in enumerate(starts):
        class_id = int(rng.choice(classes, p=weights))
        tracks.append(_track(rng, spell * 100_000 + k, float(enters), domain, view, class_id))
    return tuple(tracks)


class DomainAt:
    """The domain a camera shows at a time: its own, then each shift's from when arrivals follow it."""

    def __init__(self, base: Domain, changes: tuple[tuple[float, Domain], ...] = ()) -> None:
        self.base = base
        self.changes = tuple(sorted(changes, key=lambda c: c[0]))

    def __call__(self, t: float) -> Domain:
        current = self.base
        for at, domain in self.changes:
            if t >= at:
                current = domain
        return current

    def domains(self) -> list[Domain]:
        return [self.base, *(domain for _, domain in self.changes)]


class CameraTraffic:
    """The objects past one camera, drawn spell by spell on demand and kept for reuse (a bounded cache)."""

    CACHED_SPELLS = 512

    def __init__(self, seed: int, viewpoint: int, domain_at: DomainAt, view: ViewGeometry, classes: int) -> None:
        self.seed, self.viewpoint, self.domain_at, self.view, self.classes = seed, viewpoint, domain_at, view, classes
        self._spells: OrderedDict[int, tuple[Track, ...]] = OrderedDict()

    def spell(self, index: int) -> tuple[Track, ...]:
        """The objects arriving in spell ``index`` (the domain shown when it starts decides their kind)."""
        if index in self._spells:
            self._spells.move_to_end(index)
            return self._spells[index]
        spell_s = self.domain_at.base.traffic.spell_s
        domain = self.domain_at(index * spell_s)
        tracks = spell_tracks(self.seed, self.viewpoint, index, spell_s, domain, self.view, self.classes)
        self._spells[index] = tracks
        if len(self._spells) > self.CACHED_SPELLS:
            self._spells.popitem(last=False)
        return tracks

    def spells_until(self, t: float) -> range:
        """The spells whose objects can still be in view at ``t``."""
        traffic = self.domain_at.base.traffic
        reach = max(max_life_s(d.traffic, self.view.width, self.view.height) for d in self.domain_at.domains())
        return range(max(0, math.floor((t - reach) / traffic.spell_s)), math.floor(t / traffic.spell_s) + 1)

    def in_view(self, t: float) -> list[Track]:
        """Every object in view at ``t``, oldest first (drawn first, so newer ones pass in front)."""
        found = [x for spell in self.spells_until(t) for x in self.spell(spell) if x.enters <= t <= x.leaves]
        return found[:MAX_IN_VIEW]
