"""Render any frame of any camera of a site, with its truth: the objects' ids, classes, visible boxes and masks.

Frame ``n`` depends on (site spec, camera, n) alone: its objects come from the traffic model at ``n / fps``, its
light and weather from the conditions at that moment, its sensor noise from its own seed. The bottom strip holds
the frame clock; nothing else is drawn there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from visionloop.core.frame_clock import stamp_frame_number, strip_height
from visionloop.simulation.site.conditions import arrivals_switch_at, daylight, mix, stage_at, weather_at
from visionloop.simulation.site.spec import SiteSpec
from visionloop.simulation.site.traffic import CameraTraffic, DomainAt, Track
from visionloop.simulation.site.viewpoint import Viewpoint
from visionloop.simulation.world.domain import Domain
from visionloop.simulation.world.scene import CLASS_NAMES, Look, Mask, SceneObject, compose

NOISE_TAG, RAIN_TAG = 51, 53
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class TruthObject:
    """One labelled object in one frame: the same ``id`` while it stays in view."""

    id: int
    class_id: int
    box: tuple[float, float, float, float]
    moving: bool

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "cls": self.class_id, "box": [round(v, 2) for v in self.box]}


@dataclass
class SiteFrame:
    number: int
    t: float
    image: Image
    objects: list[TruthObject] = field(default_factory=list)
    masks: list[Mask] = field(default_factory=list)  # aligned with objects, over the whole frame

    def truth_line(self) -> dict[str, Any]:
        return {"frame": self.number, "t": round(self.t, 4), "objects": [o.to_json() for o in self.objects]}


class SiteCamera:
    """One camera of a site, rendered frame by frame in any order."""

    def __init__(self, spec: SiteSpec, name: str, domains: dict[str, Domain]) -> None:
        missing = sorted({spec.domain, *(s.domain for s in spec.shifts)} - set(domains))
        if missing:
            raise KeyError(f"the site names domains {missing} that the domains file does not define")
        self.spec, self.name, self.domains = spec, name, domains
        self.index = spec.viewpoint(name)
        self.base = domains[spec.domain]
        self.shifts = spec.shifts_of(name)
        self.viewpoint = Viewpoint(spec.seed, self.index, spec.width, spec.height - strip_height(spec.height))
        changes = tuple((arrivals_switch_at(s), domains[s.domain]) for s in self.shifts)
        self.domain_at = DomainAt(self.base, changes)
        self.traffic = CameraTraffic(spec.seed, self.index, self.domain_at, self.viewpoint.geometry, len(CLASS_NAMES))

    def _look(self, t: float) -> tuple[Look, Image, list[Any], dict[str, float], float]:
        stage = stage_at(self.base, self.shifts, self.domains, t)
        a, b, p = stage.start, stage.end, stage.progress
        view = self.viewpoint
        background = view.background(a)
        if p > 0:
            background = np.asarray(cv2.addWeighted(background, 1 - p, view.background(b), p, 0.0), np.uint8)
        clutter = view.clutter(b if p >= 0.5 else a)
        near = b if p >= 0.5 else a
        light = daylight(self.spec.seed, mix(a.day.period_s, b.day.period_s, p), t)
        sensor_a, sensor_b = view.sensor(a), view.sensor(b)
        weather = weather_at(self.spec.seed, near.weather, t)
        low, high = mix(a.brightness[0], b.brightness[0], p), mix(a.brightness[1], b.brightness[1], p)
        look = Look(
            brightness=low + (high - low) * light,
            contrast=mix(sensor_a.contrast, sensor_b.contrast, p) * (1 - 0.6 * weather["fog"]),
            blur_sigma=mix(sensor_a.blur_sigma, sensor_b.blur_sigma, p) + 0.8 * weather["rain"],
            noise_std=mix(sensor_a.noise_std, sensor_b.noise_std, p) * (1 + 3 * weather["burst"]),
            hue_shift=mix(a.hue_shift, b.hue_shift, p),
        )
        warmth = mix(a.day.warmth, b.day.warmth, p) * (1 - light)
        return look, background, clutter, weather, warmth

    def _objects(self, tracks: list[Track], t: float) -> list[SceneObject]:
        objects = []
        for track in tracks:
            place = track.place(t)
            assert place is not None
            objects.append(
                SceneObject(
                    class_id=track.class_id,
                    centre=place,
                    size=track.size * self.viewpoint.perspective(place[1]),
                    angle=(track.angle + track.spin * (t - track.enters)) % 360,
                    aspect=track.aspect,
                    colour=track.colour,
                )
            )
        return objects

    def render(self, number: int) -> SiteFrame:
        """Frame ``number`` (0 is the site's first), its clock stamped, with its truth."""
        t = number / self.spec.fps
        look, background, clutter, weather, warmth = self._look(t)
        tracks = self.traffic.in_view(t)
        rng = np.random.default_rng(np.random.SeedSequence([self.spec.seed, self.index, number, NOISE_TAG]))
        scene = compose(background, self._objects(tracks, t), clutter, look, rng)
        picture = _weathered(scene.image, weather, warmth, rng)
        image = np.empty((self.spec.height, self.spec.width, 3), np.uint8)
        image[: picture.shape[0]] = picture
        stamp_frame_number(image, number)
        frame = SiteFrame(number, t, image)
        pad = ((0, self.spec.height - picture.shape[0]), (0, 0))
        for source, class_id, box, mask in zip(scene.sources, scene.class_ids, scene.boxes, scene.masks, strict=True):
            track = tracks[source]
            frame.objects.append(TruthObject(track.id, class_id, box, track.moving(t)))
            frame.masks.append(np.pad(mask, pad))
        return frame


def _weathered(image: Image, weather: dict[str, float], warmth: float, rng: np.random.Generator) -> Image:
    """Fog greys the picture, rain streaks it, dusk warms it (sensor noise bursts went into the look)."""
    out = image.astype(np.float32)
    if weather["fog"] > 0:
        out = out * (1 - 0.5 * weather["fog"]) + 170.0 * 0.5 * weather["fog"]
    if weather["rain"] > 0:
        height, width = image.shape[:2]
        streaks = np.zeros((height, width), np.uint8)
        for _ in range(int(250 * weather["rain"])):
            x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.line(streaks, (x, y), (x - 3, y + 14), 255, 1)
        out += (streaks[..., None].astype(np.float32) / 255.0) * 60.0
    if warmth > 0:
        out[..., 2] *= 1 + warmth
        out[..., 0] *= 1 - warmth
    return np.clip(out, 0, 255).astype(np.uint8)
