"""Short in-memory clips of the synthetic world, for the demo and the serving benchmark."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from simulation.world import load_domains
from simulation.world.video import world_frames
from visionloop.config import PACKAGE_ROOT
from visionloop.imaging import encode_jpeg

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
    return [encode_jpeg(frame) for frame in render_clip(frames, width, height, seed, domain)]
