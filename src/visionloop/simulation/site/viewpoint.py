"""One camera's fixed view of its place: the background, the static clutter, the doors objects use, its sensor.

A viewpoint is drawn from (site seed, viewpoint index, domain), so a camera keeps its place for the whole run and
shows it in the look of whichever domain it is in; unseen cameras are simply other indices.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from visionloop.simulation.site.traffic import Door, ViewGeometry
from visionloop.simulation.world.backgrounds import render_background
from visionloop.simulation.world.domain import Domain
from visionloop.simulation.world.scene import Distractor, sample_distractors

VIEW_TAG, BACKGROUND_TAG, CLUTTER_TAG, SENSOR_TAG = 21, 23, 29, 31
Image = npt.NDArray[np.uint8]


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(list(keys)))


def _name_key(name: str) -> int:
    return zlib.crc32(name.encode())


@dataclass(frozen=True)
class Sensor:
    """What a camera's sensor does to every frame of one domain (brightness follows the day, not the sensor)."""

    contrast: float
    blur_sigma: float
    noise_std: float


def _doors(rng: np.random.Generator, width: int, height: int) -> tuple[Door, ...]:
    """Three doors on the left, right and top edges, just outside the picture so objects slide in."""
    out = 0.18 * max(width, height)
    doors = []
    for edge in rng.permutation(["left", "right", "top", "left", "right"])[:3]:
        if edge == "left":
            doors.append(Door(-out, float(rng.uniform(0.2, 0.8) * height)))
        elif edge == "right":
            doors.append(Door(width + out, float(rng.uniform(0.2, 0.8) * height)))
        else:
            doors.append(Door(float(rng.uniform(0.15, 0.85) * width), -out))
    return tuple(doors)


@dataclass
class Viewpoint:
    """The place one camera looks at; pictures are made on demand and kept per domain."""

    seed: int
    index: int
    width: int
    height: int  # the picture above the clock's strip
    geometry: ViewGeometry = field(init=False)
    _backgrounds: dict[str, Image] = field(default_factory=dict, init=False, repr=False)
    _clutter: dict[str, list[Distractor]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        doors = _doors(_rng(self.seed, self.index, VIEW_TAG), self.width, self.height)
        self.geometry = ViewGeometry(self.width, self.height, doors)

    def background(self, domain: Domain) -> Image:
        if domain.name not in self._backgrounds:
            rng = _rng(self.seed, self.index, _name_key(domain.name), BACKGROUND_TAG)
            self._backgrounds[domain.name] = render_background(rng, domain.background, self.height, self.width)
        return self._backgrounds[domain.name]

    def clutter(self, domain: Domain) -> list[Distractor]:
        """Unlabelled things that stay where they are (poles, signs, parked shapes)."""
        if domain.name not in self._clutter:
            rng = _rng(self.seed, self.index, _name_key(domain.name), CLUTTER_TAG)
            self._clutter[domain.name] = sample_distractors(rng, domain, self.height, self.width, self.geometry.span)
        return self._clutter[domain.name]

    def sensor(self, domain: Domain) -> Sensor:
        rng = _rng(self.seed, self.index, _name_key(domain.name), SENSOR_TAG)
        return Sensor(
            contrast=float(rng.uniform(*domain.contrast)),
            blur_sigma=float(rng.uniform(*domain.blur_sigma)),
            noise_std=float(rng.uniform(*domain.noise_std)),
        )

    def perspective(self, y: float) -> float:
        """Size factor at height ``y``: far (top) objects look smaller than near (bottom) ones."""
        return 0.7 + 0.6 * min(max(y / max(self.height, 1), 0.0), 1.0)
