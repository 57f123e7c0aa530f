"""One rendered scene: background, labelled objects, distractors, camera effects, and the visible boxes."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from visionloop.simulation.world.backgrounds import render_background
from visionloop.simulation.world.domain import Domain
from visionloop.simulation.world.shapes import CLASS_OUTLINES, irregular_polygon, place

CLASS_NAMES: tuple[str, ...] = tuple(CLASS_OUTLINES)
MIN_VISIBLE_FRACTION = 0.35  # a shape hidden more than this is not labelled (it is not recognisable either)
MIN_BOX_PIXELS = 4
Image = npt.NDArray[np.uint8]


@dataclass
class SceneObject:
    """A labelled object; velocity and spin move it between video frames."""

    class_id: int
    centre: tuple[float, float]
    size: float
    angle: float
    aspect: float
    colour: tuple[int, int, int]
    velocity: tuple[float, float] = (0.0, 0.0)
    spin: float = 0.0


@dataclass
class Distractor:
    kind: str
    centre: tuple[float, float]
    size: float
    angle: float
    colour: tuple[int, int, int]
    shape: npt.NDArray[np.float64] | None = None
    thickness: int = 2
    in_front: bool = False


@dataclass(frozen=True)
class Look:
    """Camera effects applied to a whole frame."""

    brightness: float
    contrast: float
    blur_sigma: float
    noise_std: float
    hue_shift: float


Mask = npt.NDArray[np.bool_]


@dataclass
class Scene:
    """A rendered frame and its labelled objects; ``masks[i]`` holds the visible pixels of object ``i`` (aligned with
    ``boxes`` and ``class_ids``): the ground truth a pixel-level check, like an explanation's pointing game, needs."""

    image: Image
    class_ids: list[int] = field(default_factory=list)
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)
    masks: list[Mask] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)  # each label's index in the objects composed

    def labels(self) -> list[dict[str, object]]:
        return [
            {"class_id": c, "class_name": CLASS_NAMES[c], "xyxy": [round(v, 2) for v in box]}
            for c, box in zip(self.class_ids, self.boxes, strict=True)
        ]


def _colour(rng: np.random.Generator, domain: Domain) -> tuple[int, int, int]:
    hsv = np.array(
        [[[rng.integers(0, 180), 255 * rng.uniform(*domain.saturation), rng.uniform(90, 255)]]], dtype=np.float32
    )
    bgr = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def sample_objects(rng: np.random.Generator, domain: Domain, height: int, width: int) -> list[SceneObject]:
    weights = np.asarray(domain.class_weights[: len(CLASS_NAMES)], dtype=np.float64)
    weights = weights / weights.sum()
    short = min(height, width)
    objects: list[SceneObject] = []
    for _ in range(int(rng.integers(domain.objects[0], domain.objects[1] + 1))):
        size = short * rng.uniform(*domain.scale)
        if objects and rng.random() < domain.occlusion:
            other = objects[int(rng.integers(len(objects)))]  # overlap a previous object on purpose
            centre = (
                other.centre[0] + rng.uniform(-0.6, 0.6) * other.size,
                other.centre[1] + rng.uniform(-0.6, 0.6) * other.size,
            )
        else:
            centre = (rng.uniform(size / 2, width - size / 2), rng.uniform(size / 2, height - size / 2))
        objects.append(
            SceneObject(
                class_id=int(rng.choice(len(CLASS_NAMES), p=weights)),
                centre=(float(centre[0]), float(centre[1])),
                size=float(size),
                angle=float(rng.uniform(0, 360)),
                aspect=float(rng.uniform(0.85, 1.15)),
                colour=_colour(rng, domain),
                velocity=(float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3))),
                spin=float(rng.uniform(-4, 4)),
            )
        )
    return objects


def sample_distractors(
    rng: np.random.Generator, domain: Domain, height: int, width: int, span: int | None = None
) -> list[Distractor]:
    """Unlabelled shapes sized like the domain's objects; ``span`` is the side their scale is a fraction of (the
    shorter side by default)."""
    short = span or min(height, width)
    out = []
    for _ in range(int(rng.integers(domain.distractors[0], domain.distractors[1] + 1))):
        kind = ("line", "ellipse", "polygon", "ring")[int(rng.integers(4))]
        out.append(
            Distractor(
                kind=kind,
                centre=(float(rng.uniform(0, width)), float(rng.uniform(0, height))),
                size=float(short * rng.uniform(domain.scale[0], domain.scale[1] * 1.5)),
                angle=float(rng.uniform(0, 180)),
                colour=_colour(rng, domain),
                shape=irregular_polygon(rng) if kind == "polygon" else None,
                thickness=int(rng.integers(2, 6)),
                in_front=bool(rng.random() < 0.3),
            )
        )
    return out


def sample_look(rng: np.random.Generator, domain: Domain) -> Look:
    return Look(
        brightness=float(rng.uniform(*domain.brightness)),
        contrast=float(rng.uniform(*domain.contrast)),
        blur_sigma=float(rng.uniform(*domain.blur_sigma)),
        noise_std=float(rng.uniform(*domain.noise_std)),
        hue_shift=domain.hue_shift,
    )


def _draw_distractor(image: Image, owner: npt.NDArray[np.int16], item: Distractor) -> None:
    mask = np.zeros(owner.shape, np.uint8)
    cx, cy = int(item.centre[0]), int(item.centre[1])
    half = int(item.size / 2)
    if item.kind == "line":
        dx, dy = int(np.cos(np.radians(item.angle)) * item.size), int(np.sin(np.radians(item.angle)) * item.size)
        cv2.line(mask, (cx - dx, cy - dy), (cx + dx, cy + dy), 255, item.thickness)
    elif item.kind == "ellipse":  # elongated: never mistaken for the (round) circle class
        cv2.ellipse(mask, (cx, cy), (half, max(2, half // 3)), item.angle, 0, 360, 255, -1)
    elif item.kind == "ring":  # an outline, not a filled circle
        cv2.circle(mask, (cx, cy), max(3, half // 2), 255, item.thickness)
    elif item.shape is not None:
        cv2.fillPoly(mask, [place(item.shape, item.centre, item.size, item.angle)], 255)
    image[mask > 0] = item.colour
    if item.in_front:
        owner[mask > 0] = -2


def compose(
    background: Image, objects: list[SceneObject], distractors: list[Distractor], look: Look, rng: np.random.Generator
) -> Scene:
    """Draw everything, apply the camera look, and label each object by the box of its visible pixels."""
    image = background.copy()
    height, width = image.shape[:2]
    owner = np.full((height, width), -1, np.int16)
    for item in (d for d in distractors if not d.in_front):
        _draw_distractor(image, owner, item)
    full_areas = []
    for index, obj in enumerate(objects):
        polygon = place(CLASS_OUTLINES[CLASS_NAMES[obj.class_id]](obj.aspect), obj.centre, obj.size, obj.angle)
        mask = np.zeros((height, width), np.uint8)
        cv2.fillPoly(mask, [polygon], 255, lineType=cv2.LINE_8)
        image[mask > 0] = obj.colour
        cv2.polylines(image, [polygon], True, tuple(int(c * 0.6) for c in obj.colour), 1, cv2.LINE_AA)
        owner[mask > 0] = index
        full_areas.append(int(np.count_nonzero(mask)))
    for item in (d for d in distractors if d.in_front):
        _draw_distractor(image, owner, item)
    scene = Scene(_apply_look(image, look, rng))
    for index, obj in enumerate(objects):
        visible = owner == index
        ys, xs = np.nonzero(visible)
        if xs.size == 0 or xs.size < MIN_VISIBLE_FRACTION * max(full_areas[index], 1):
            continue
        x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        if x2 - x1 < MIN_BOX_PIXELS or y2 - y1 < MIN_BOX_PIXELS:
            continue
        scene.class_ids.append(obj.class_id)
        scene.boxes.append((x1, y1, x2, y2))
        scene.masks.append(visible)
        scene.sources.append(index)
    return scene


def _apply_look(image: Image, look: Look, rng: np.random.Generator) -> Image:
    out: npt.NDArray[np.float32] = image.astype(np.float32)
    out = np.asarray((out - 128.0) * look.contrast + 128.0 * look.brightness, dtype=np.float32)
    if look.hue_shift:
        hsv = cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV)
        hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + int(look.hue_shift)) % 180).astype(np.uint8)
        out = np.asarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR), dtype=np.float32)
    if look.blur_sigma > 0.05:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), look.blur_sigma), dtype=np.float32)
    if look.noise_std > 0:
        out += rng.normal(0, look.noise_std, size=out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def render_scene(rng: np.random.Generator, domain: Domain, height: int, width: int) -> Scene:
    """A fresh still scene of ``domain``."""
    background = render_background(rng, domain.background, height, width)
    objects = sample_objects(rng, domain, height, width)
    distractors = sample_distractors(rng, domain, height, width)
    return compose(background, objects, distractors, sample_look(rng, domain), rng)
