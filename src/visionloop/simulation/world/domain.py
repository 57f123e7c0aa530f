"""A ``Domain``: the knobs of the world (lighting, blur, noise, object scale, class mix, background), so a shift
between training data and what cameras later see can be injected on purpose."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from visionloop.core.errors import ConfigError

BackgroundKind = Literal["texture", "gradient", "noise", "photo", "mixed"]


class Domain(BaseModel):
    """How one world looks. Every knob has a description; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Domain name, e.g. A (training) or B (shifted).")
    brightness: tuple[float, float] = Field(default=(0.85, 1.15), description="Range of the brightness multiplier.")
    contrast: tuple[float, float] = Field(default=(0.8, 1.2), description="Range of the contrast multiplier.")
    blur_sigma: tuple[float, float] = Field(default=(0.0, 0.8), description="Range of Gaussian blur sigma, pixels.")
    noise_std: tuple[float, float] = Field(default=(2.0, 8.0), description="Range of Gaussian pixel noise std.")
    scale: tuple[float, float] = Field(
        default=(0.07, 0.22), description="Object size range as a fraction of the image's shorter side."
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
