"""A ``Domain``: the knobs of the world (lighting, blur, noise, object scale, class mix, background), so a shift
between training data and what cameras later see can be injected on purpose."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from visionloop.core.errors import ConfigError

BackgroundKind = Literal["texture", "gradient", "noise", "photo", "mixed"]


class Knobs(BaseModel):
    """Base of the domain's optional groups: unknown keys are errors, values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> Knobs:
        for name, value in self:
            if isinstance(value, tuple) and len(value) == 2 and value[0] > value[1]:
                raise ValueError(f"{name}: low ({value[0]}) must not exceed high ({value[1]})")
        return self


class Traffic(Knobs):
    """How objects come and go past one camera of a simulated site (a still image ignores it).

    Arrivals are a Poisson process whose rate changes with spells: busy, normal and quiet stretches of
    ``spell_s`` seconds each, drawn at random in the given shares."""

    arrivals_per_minute: float = Field(
        default=8.0,
        ge=0,
        le=600,
        description="Mean objects entering one camera's view per minute, all classes "
        "together (class_weights split it), in a normal spell.",
    )
    busy_factor: float = Field(default=2.5, ge=1, description="Arrival rate multiplier in a busy spell.")
    quiet_factor: float = Field(default=0.0, ge=0, le=1, description="Arrival rate multiplier in a quiet spell.")
    busy_share: float = Field(default=0.25, ge=0, le=1, description="Share of spells that are busy.")
    quiet_share: float = Field(default=0.3, ge=0, le=1, description="Share of spells that are quiet.")
    spell_s: float = Field(default=30.0, gt=0, description="Length of one spell, seconds.")
    speed: tuple[float, float] = Field(
        default=(0.05, 0.14), description="Range of an object's speed, in frame widths per second."
    )
    stop_chance: float = Field(default=0.35, ge=0, le=1, description="Chance an object stops once on its way.")
    stop_s: tuple[float, float] = Field(default=(3.0, 20.0), description="Range of how long a stop lasts, seconds.")
    spin: tuple[float, float] = Field(default=(-8.0, 8.0), description="Range of an object's turning, degrees/s.")

    @model_validator(mode="after")
    def _shares_fit(self) -> Traffic:
        if self.busy_share + self.quiet_share > 1:
            raise ValueError("busy_share + quiet_share must not exceed 1")
        if self.speed[0] <= 0:
            raise ValueError("speed must be positive")
        return self


class DayCycle(Knobs):
    """Light over a simulated day: brightness swings across the domain's own range, colour warms at dusk."""

    period_s: float = Field(default=900.0, gt=0, description="Length of one simulated day, seconds.")
    warmth: float = Field(default=0.08, ge=0, le=0.5, description="Strongest red/blue tint at the darkest hour.")


class Weather(Knobs):
    """Passing weather: each kind of event arrives at random (a Poisson process) and lasts a while."""

    fog_per_hour: float = Field(default=1.0, ge=0, description="Fog banks per hour (contrast falls, grey rises).")
    rain_per_hour: float = Field(default=1.0, ge=0, description="Showers per hour (streaks, a little blur).")
    burst_per_hour: float = Field(default=2.0, ge=0, description="Sensor noise bursts per hour.")
    duration_s: tuple[float, float] = Field(default=(15.0, 60.0), description="Range of an event's length, seconds.")
    strength: tuple[float, float] = Field(default=(0.3, 0.8), description="Range of an event's strength (0-1).")


class Domain(BaseModel):
    """How one world looks. Every knob has a description; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Domain name, e.g. A (training) or B (shifted).")
    brightness: tuple[float, float] = Field(default=(0.85, 1.15), description="Range of the brightness multiplier.")
    contrast: tuple[float, float] = Field(default=(0.8, 1.2), description="Range of the contrast multiplier.")
    blur_sigma: tuple[float, float] = Field(default=(0.0, 0.8), description="Range of Gaussian blur sigma, pixels.")
    noise_std: tuple[float, float] = Field(default=(2.0, 8.0), description="Range of Gaussian pixel noise std.")
    scale: tuple[float, float] = Field(
        default=(0.07, 0.22),
        description="Object size range as a fraction of the image's shorter side (of a site camera's longer side, "
        "the side a detector's square input spans).",
    )
    objects: tuple[int, int] = Field(default=(1, 6), description="Range of labelled objects per image.")
    distractors: tuple[int, int] = Field(default=(2, 8), description="Range of unlabelled distractor shapes.")
    class_weights: list[float] = Field(
        default_factory=lambda: [1.0, 1.0, 1.0, 1.0, 1.0], description="Relative frequency of each class."
    )
    background: BackgroundKind = Field(default="mixed", description="Background kind ('mixed' draws any).")
    saturation: tuple[float, float] = Field(default=(0.5, 1.0), description="Range of object colour saturation.")
    occlusion: float = Field(default=0.3, ge=0, le=1, description="Chance an object is placed over another.")
    hue_shift: float = Field(default=0.0, ge=-90, le=90, description="Global hue rotation (OpenCV hue units).")
    # What only a simulated site's cameras use; every knob has a default, so a domains file that never names them
    # gives a sensible camera of its domain.
    traffic: Traffic = Field(default_factory=Traffic, description="Objects arriving, passing, stopping, leaving.")
    day: DayCycle = Field(default_factory=DayCycle, description="Light over a simulated day.")
    weather: Weather = Field(default_factory=Weather, description="Fog, rain and noise bursts.")

    @model_validator(mode="after")
    def _ranges_are_ordered(self) -> Domain:
        for name in ("brightness", "contrast", "blur_sigma", "noise_std", "scale", "objects", "distractors"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name}: low ({low}) must not exceed high ({high})")
        if not self.class_weights or min(self.class_weights) < 0 or sum(self.class_weights) <= 0:
            raise ValueError("class_weights must be non-negative with a positive sum")
        return self


def load_domains(path: Path) -> dict[str, Domain]:
    """Domains by name from a YAML file mapping name -> knobs."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read domains from '{path}': {exc}") from exc
    domains = {}
    for name, knobs in raw.items():
        try:
            domains[name] = Domain(name=name, **(knobs or {}))
        except ValueError as exc:
            raise ConfigError(f"domain '{name}' in '{path}': {exc}") from exc
    return domains
