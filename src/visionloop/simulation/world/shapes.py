"""Outlines of the world's object classes and of the distractors that look almost like them."""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

Points = npt.NDArray[np.float64]


def _regular(n: int, radius: float = 0.5, phase: float = -math.pi / 2) -> Points:
    angles = phase + np.arange(n) * 2 * math.pi / n
    return np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius


def circle(aspect: float) -> Points:
    pts = np.asarray(cv2.ellipse2Poly((0, 0), (1000, int(1000 * aspect)), 0, 0, 360, 8), dtype=np.float64)
    return pts / 2000.0


def square(aspect: float) -> Points:
    return np.array([[-0.5, -0.5 * aspect], [0.5, -0.5 * aspect], [0.5, 0.5 * aspect], [-0.5, 0.5 * aspect]])


def triangle(aspect: float) -> Points:
    pts = _regular(3, 0.58)
    pts[:, 1] *= aspect
    return pts


def star(aspect: float) -> Points:
    outer, inner = _regular(5, 0.5), _regular(5, 0.21, phase=-math.pi / 2 + math.pi / 5)
    pts = np.empty((10, 2))
    pts[0::2], pts[1::2] = outer, inner
    pts[:, 1] *= aspect
    return pts


def cross(aspect: float) -> Points:
    a, b = 0.5, 0.17
    pts = np.array(
        [[-b, -a], [b, -a], [b, -b], [a, -b], [a, b], [b, b], [b, a], [-b, a], [-b, b], [-a, b], [-a, -b], [-b, -b]]
    )
    pts[:, 1] *= aspect
    return pts


CLASS_OUTLINES = {"circle": circle, "square": square, "triangle": triangle, "star": star, "cross": cross}


def place(outline: Points, centre: tuple[float, float], size: float, angle_deg: float) -> npt.NDArray[np.int32]:
    """Scale, rotate and move a unit outline into pixel coordinates (OpenCV fill order)."""
    theta = math.radians(angle_deg)
    rotation = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    pts = outline @ rotation.T * size + np.asarray(centre)
    return np.asarray(np.round(pts), dtype=np.int32)


def irregular_polygon(rng: np.random.Generator) -> Points:
    """A lumpy 5-7-gon: close to a class shape, but not one."""
    n = int(rng.integers(5, 8))
    angles = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = rng.uniform(0.25, 0.5, n)
    return np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
