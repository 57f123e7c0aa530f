"""A short generated clip (moving shapes on a textured background) for the demo and the tests."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def render_clip(frames: int = 60, width: int = 640, height: int = 360, seed: int = 0) -> list[npt.NDArray[np.uint8]]:
    """BGR frames of a circle, a square and a triangle drifting across noise; same seed, same frames."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(40, 200, size=(height // 8, width // 8, 3), dtype=np.uint8)
    background = np.asarray(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), dtype=np.uint8)
    start = rng.uniform([0.1 * width, 0.1 * height], [0.9 * width, 0.9 * height], size=(3, 2))
    velocity = rng.uniform(-4, 4, size=(3, 2))
    out = []
    for t in range(frames):
        image = background.copy()
        centres = (start + velocity * t) % [width, height]
        cx, cy = centres[0].astype(int)
        cv2.circle(image, (int(cx), int(cy)), 28, (40, 40, 230), -1)
        sx, sy = centres[1].astype(int)
        cv2.rectangle(image, (int(sx) - 25, int(sy) - 25), (int(sx) + 25, int(sy) + 25), (230, 60, 40), -1)
        tx, ty = centres[2].astype(int)
        triangle = np.array([[tx, ty - 30], [tx - 28, ty + 22], [tx + 28, ty + 22]], np.int32)
        cv2.fillPoly(image, [triangle], (40, 200, 60))
        out.append(image)
    return out


def render_clip_jpegs(frames: int = 60, width: int = 640, height: int = 360, seed: int = 0) -> list[bytes]:
    return [
        bytes(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1])
        for frame in render_clip(frames, width, height, seed)
    ]
