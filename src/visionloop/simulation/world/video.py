"""Videos of a moving world (H.264) with a per-frame ground-truth sidecar (JSON lines)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from visionloop.simulation.world.backgrounds import render_background
from visionloop.simulation.world.domain import Domain
from visionloop.simulation.world.scene import (
    Scene,
    SceneObject,
    compose,
    sample_distractors,
    sample_look,
    sample_objects,
)


def _advance(objects: list[SceneObject], height: int, width: int) -> None:
    """Move each object one frame, bouncing off the edges: smooth motion a tracker could follow."""
    for obj in objects:
        x, y = obj.centre[0] + obj.velocity[0], obj.centre[1] + obj.velocity[1]
        vx, vy = obj.velocity
        half = obj.size / 2
        if not half <= x <= width - half:
            vx, x = -vx, min(max(x, half), width - half)
        if not half <= y <= height - half:
            vy, y = -vy, min(max(y, half), height - half)
        obj.centre, obj.velocity, obj.angle = (x, y), (vx, vy), (obj.angle + obj.spin) % 360


def world_scenes(domain: Domain, seed: int, frames: int, height: int, width: int) -> Iterator[Scene]:
    """Frames of one moving scene (static camera, moving objects), each with its objects."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1_000_003]))
    background = render_background(rng, domain.background, height, width)
    objects = sample_objects(rng, domain, height, width)
    distractors = sample_distractors(rng, domain, height, width)
    look = sample_look(rng, domain)
    for _ in range(frames):
        yield compose(background, objects, distractors, look, rng)
        _advance(objects, height, width)


def world_frames(
    domain: Domain, seed: int, frames: int, height: int, width: int
) -> Iterator[tuple[npt.NDArray[np.uint8], list[dict[str, object]]]]:
    """:func:`world_scenes` as each frame and its ground truth."""
    for scene in world_scenes(domain, seed, frames, height, width):
        yield scene.image, scene.labels()


def write_video(
    domain: Domain,
    seed: int,
    seconds: float,
    fps: int,
    out_file: Path,
    height: int = 360,
    width: int = 640,
    progress: Callable[[int], None] | None = None,
    container_format: str | None = None,
) -> Path:
    """Write an H.264 video and ``<out_file>.jsonl`` (one line per frame: frame index, pts, boxes).

    ``container_format='h264'`` writes a raw Annex-B stream, which the RTSP simulator loops.
    """
    out_file.parent.mkdir(parents=True, exist_ok=True)
    sidecar = out_file.with_suffix(out_file.suffix + ".jsonl")
    frames = max(1, round(seconds * fps))
    with (
        av.open(str(out_file), mode="w", format=container_format) as container,
        sidecar.open("w", encoding="utf-8") as truth,
    ):
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        # One thread and a fixed GOP: the same seed gives the same bytes; a keyframe every second lets RTSP
        # clients join quickly.
        stream.options = {"preset": "veryfast", "tune": "zerolatency", "threads": "1", "g": str(fps), "bf": "0"}
        for index, (image, labels) in enumerate(world_frames(domain, seed, frames, height, width)):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
            truth.write(json.dumps({"frame": index, "pts": index, "boxes": labels}) + "\n")
            if progress:
                progress(1)
        for packet in stream.encode():
            container.mux(packet)
    return out_file
