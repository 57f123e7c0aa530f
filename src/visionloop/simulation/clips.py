"""Short in-memory clips of the synthetic world, for the demo, the serving benchmark and the stream fuzz tests."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from visionloop.core.imaging import encode_jpeg
from visionloop.core.layout import shipped_config
from visionloop.simulation.world import load_domains
from visionloop.simulation.world.video import world_frames

DOMAINS_FILE = shipped_config("domains.yaml")


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


def encode_h264(frames: Sequence[npt.NDArray[np.uint8]], fps: int) -> list[bytes]:
    """Raw H.264 (Annex-B) of BGR frames of one size: one access unit per frame, in order, and a keyframe carrying
    its SPS/PPS every second. Joined, the units are a .264 file the RTSP simulator loops; kept apart, they can be
    damaged, cut or concatenated where a test wants (two sizes back to back change resolution mid-stream)."""
    import av

    height, width = frames[0].shape[:2]
    codec: av.VideoCodecContext = av.CodecContext.create("libx264", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
    codec.time_base, codec.framerate = Fraction(1, fps), Fraction(fps)
    codec.options = {"preset": "veryfast", "tune": "zerolatency", "threads": "1", "g": str(fps), "bf": "0"}
    units: list[bytes] = []
    for index, image in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts = index
        units += [bytes(packet) for packet in codec.encode(frame)]
    units += [bytes(packet) for packet in codec.encode(None)]
    return units
