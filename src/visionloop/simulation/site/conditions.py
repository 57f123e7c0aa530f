"""What the light and the weather are doing at one moment at a site, and how far a camera's shift has gone.

The day moves brightness across the domain's own range (so a site of domain A stays inside what A's gold set shows)
and warms the colour towards dusk; weather events (fog, rain, sensor noise bursts) come as Poisson processes per
hour, site-wide, each easing in and out; a scheduled shift blends one domain's look into another's over its ramp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from visionloop.simulation.site.spec import Shift
from visionloop.simulation.world.domain import Domain, Weather

WEATHER_TAG, PHASE_TAG = 41, 43
WEATHER_BLOCK_S = 600.0
EASE_S = 3.0  # weather eases in and out over this long
KINDS = ("fog", "rain", "burst")


@dataclass(frozen=True)
class Stage:
    """Where a camera is in its shifts at one moment: from one domain towards another, ``progress`` of the way."""

    start: Domain
    end: Domain
    progress: float  # 0: all start, 1: all end


def stage_at(base: Domain, shifts: list[Shift], domains: dict[str, Domain], t: float) -> Stage:
    current, stage = base, Stage(base, base, 0.0)
    for shift in shifts:
        if t < shift.at_s:
            break
        target = domains[shift.domain]
        progress = 1.0 if shift.ramp_s == 0 else min(1.0, (t - shift.at_s) / shift.ramp_s)
        stage = Stage(current, target, progress)
        current = target if progress >= 1.0 else current
    return stage


def arrivals_switch_at(shift: Shift) -> float:
    """When new objects start to be the shifted domain's kind: halfway through the ramp."""
    return shift.at_s + shift.ramp_s / 2


def daylight(seed: int, period_s: float, t: float) -> float:
    """0 at the darkest hour, 1 at noon; the site's own phase, shared by its cameras."""
    phase = float(np.random.default_rng(np.random.SeedSequence([seed, PHASE_TAG])).random())
    return 0.5 + 0.5 * math.cos(2 * math.pi * (t / period_s + phase))


def _events(seed: int, weather: Weather, kind: str, block: int) -> list[tuple[float, float, float]]:
    """(start, end, strength) of one kind's events in one block of WEATHER_BLOCK_S seconds."""
    rate = {"fog": weather.fog_per_hour, "rain": weather.rain_per_hour, "burst": weather.burst_per_hour}[kind]
    rng = np.random.default_rng(np.random.SeedSequence([seed, WEATHER_TAG, KINDS.index(kind), block]))
    count = int(rng.poisson(rate * WEATHER_BLOCK_S / 3600))
    events = []
    for _ in range(count):
        start = block * WEATHER_BLOCK_S + float(rng.uniform(0, WEATHER_BLOCK_S))
        events.append((start, start + float(rng.uniform(*weather.duration_s)), float(rng.uniform(*weather.strength))))
    return events


def weather_at(seed: int, weather: Weather, t: float) -> dict[str, float]:
    """How strong each kind of weather is at ``t`` (0: none)."""
    out = {}
    block = math.floor(t / WEATHER_BLOCK_S)
    longest = weather.duration_s[1]
    for kind in KINDS:
        level = 0.0
        for b in range(max(0, math.floor((t - longest) / WEATHER_BLOCK_S)), block + 1):
            for start, end, strength in _events(seed, weather, kind, b):
                if start <= t <= end:
                    ease = min(1.0, (t - start) / EASE_S, (end - t) / EASE_S)
                    level = max(level, strength * ease)
        out[kind] = level
    return out


def mix(a: float, b: float, progress: float) -> float:
    return a + (b - a) * progress
