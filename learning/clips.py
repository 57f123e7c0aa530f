"""Short in-memory clips of the synthetic world, for the demo and the serving benchmark."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from learning.world import load_domains
from learning.world.video import world_frames
from visionloop.config import PACKAGE_ROOT

DOMAINS_FILE = PACKAGE_ROOT / "configs" / "domains.yaml"


def render_clip(
    frames: int = 60, width: int = 640, height: int = 360, seed: int = 0, domain: str = "A"
) -> list[npt.NDArray[np.uint8]]:
    """BGR frames of one moving world scene; same seed, same frames."""
    world = load_domains(DOMAINS_FILE)[domain]
    return [image for image, _ in world_frames(world, seed, frames, height, width)]


def render_clip_jpegs(
    frames: int = 60, width: int = 640, height: int = 360, seed: int = 0, domain: str = "A"
) -> list[bytes]:
    return [
        bytes(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])[1])
        for frame in render_clip(frames, width, height, seed, domain)
    ]
