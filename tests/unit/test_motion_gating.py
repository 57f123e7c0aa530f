"""Motion gating: a still, noisy scene is held back (but refreshed), a moving object goes every frame, masked
regions never count, and the grey plane comes from the decoder's Y without a conversion."""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError

from visionloop.core.cameras import CameraSpec, MotionGating
from visionloop.core.frame_clock import stamp_frame_number, strip_height
from visionloop.core.settings import CameraSettings
from visionloop.streaming.buffers import CapturedFrame
from visionloop.streaming.motion import MotionGate
from visionloop.streaming.worker import CameraRuntime

FPS = 15
CLOCK_MASK = (0.0, 1 - strip_height(360) / 360, 1.0, 1.0)


def _scene(
    rng: np.random.Generator, noise: float, square_x: int | None = None, number: int = 0
) -> npt.NDArray[np.uint8]:
    """A 640x360 grey scene with sensor noise, an optional 40-px square, and a frame clock at the bottom."""
    base = np.tile(np.linspace(40, 200, 640, dtype=np.float32), (360, 1))
    if square_x is not None:
        base[150:190, square_x : square_x + 40] = 250
    noisy = base + rng.normal(0, noise, base.shape).astype(np.float32)
    image = np.clip(noisy, 0, 255).astype(np.uint8)
    stamp_frame_number(image, number)
    return image


def _sent(gate: MotionGate, frames: list[npt.NDArray[np.uint8]]) -> list[bool]:
    return [gate.due(frame, index / FPS) for index, frame in enumerate(frames)]


def test_a_still_noisy_scene_is_held_back_and_refreshed_once_a_second() -> None:
    rng = np.random.default_rng(0)
    gate = MotionGate(MotionGating(enabled=True, refresh_s=1.0, mask=[CLOCK_MASK]))
    sent = _sent(gate, [_scene(rng, noise=20.0, number=n) for n in range(3 * FPS)])  # heavy noise, a new clock each
    assert [i for i, s in enumerate(sent) if s] == [0, 15, 30]  # the first frame, then one per refresh_s
    assert gate.gated == 3 * FPS - 3


def test_a_moving_object_goes_every_frame() -> None:
    rng = np.random.default_rng(1)
    gate = MotionGate(MotionGating(enabled=True, mask=[CLOCK_MASK]))
    sent = _sent(gate, [_scene(rng, noise=10.0, square_x=100 + 8 * n, number=n) for n in range(30)])
    assert all(sent) and gate.gated == 0


def test_the_clock_strip_counts_as_motion_unless_masked() -> None:
    rng = np.random.default_rng(2)
    frames = [_scene(rng, noise=2.0, number=n * 4095) for n in range(10)]  # many of the clock's bits change
    unmasked = MotionGate(MotionGating(enabled=True, refresh_s=1.0))  # no refresh within these 10 frames
    masked = MotionGate(MotionGating(enabled=True, refresh_s=1.0, mask=[CLOCK_MASK]))
    assert sum(_sent(unmasked, frames)) > 5
    assert sum(_sent(masked, frames)) == 1


def test_without_gating_every_frame_goes() -> None:
    gate = MotionGate(MotionGating())
    frame = np.zeros((36, 64), np.uint8)
    assert all(gate.due(frame, t / FPS) for t in range(20)) and gate.gated == 0


def test_a_clock_that_goes_back_sends_the_frame() -> None:
    rng = np.random.default_rng(3)
    gate = MotionGate(MotionGating(enabled=True, mask=[CLOCK_MASK]))
    still = _scene(rng, noise=0.0)
    assert gate.due(still, 100.0) and not gate.due(still, 100.1)
    assert gate.due(still, 5.0)  # the source restarted: its capture times start over


def test_the_grey_plane_is_the_decoders_y_or_the_images_grey() -> None:
    import av
    import cv2

    bgr = np.random.default_rng(4).integers(0, 255, (36, 64, 3), dtype=np.uint8)
    picture = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
    frame = CapturedFrame(picture, 1, 0.0, 1.0, time.monotonic())
    grey = frame.gray()
    assert grey.shape == (36, 64) and np.array_equal(grey, picture.to_ndarray()[:36])  # yuv420p: Y rows first
    assert not frame.converted  # no BGR was made for it
    from_bgr = CapturedFrame(bgr, 2, 0.0, 1.0, time.monotonic()).gray()
    assert np.array_equal(from_bgr, cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


@pytest.mark.parametrize("region", [(0.5, 0.0, 0.4, 1.0), (0.0, 0.0, 1.1, 1.0), (-0.1, 0.0, 0.5, 0.5)])
def test_a_mask_region_outside_the_picture_is_refused(region: tuple[float, float, float, float]) -> None:
    with pytest.raises(ValidationError, match="mask region"):
        MotionGating(enabled=True, mask=[region])


def test_a_camera_with_gating_counts_what_it_held_back() -> None:
    spec = CameraSpec(id="cam", url="rtsp://example/x", motion=MotionGating(enabled=True, mask=[CLOCK_MASK]))
    runtime = CameraRuntime(spec, CameraSettings(), send=lambda frames: [])
    rng = np.random.default_rng(5)
    still = [
        CapturedFrame(np.dstack([_scene(rng, 5.0, number=n)] * 3), n, n / FPS, 1.0, time.monotonic()) for n in range(6)
    ]
    assert [runtime._moved(frame) for frame in still] == [True] + [False] * 5
    status = runtime.status()
    assert status["frames_gated"] == 5 and status["motion"] < 0.002
