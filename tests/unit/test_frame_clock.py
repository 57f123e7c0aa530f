"""The frame clock: a number stamped in a picture's bottom strip reads back exactly, through brightness changes and
H.264 at the default and at a low bitrate, and a picture without one reads as None."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from visionloop.core.frame_clock import MAX_FRAME_NUMBER, FrameClock, read_frame_number, stamp_frame_number
from visionloop.core.layout import shipped_config
from visionloop.simulation.site import SiteCamera, SiteSpec
from visionloop.simulation.site.encoding import H264Writer
from visionloop.simulation.world import load_domains


@pytest.mark.parametrize("number", [0, 1, 2, 255, 4095, 65_535, 123_456, MAX_FRAME_NUMBER])
@pytest.mark.parametrize(("height", "width"), [(360, 640), (720, 1280), (180, 320), (96, 128)])
def test_a_stamped_number_reads_back(number: int, height: int, width: int) -> None:
    image = np.random.default_rng(number).integers(0, 256, (height, width, 3), dtype=np.uint8)
    stamp_frame_number(image, number)
    assert read_frame_number(image) == number


def test_it_survives_brightness_contrast_and_grey() -> None:
    image = np.full((360, 640, 3), 90, np.uint8)
    stamp_frame_number(image, 4242)
    darker = (image.astype(np.float32) * 0.45 + 10).astype(np.uint8)
    flatter = ((image.astype(np.float32) - 128) * 0.6 + 128).astype(np.uint8)
    assert read_frame_number(darker) == read_frame_number(flatter) == 4242
    assert read_frame_number(image.mean(axis=2).astype(np.uint8)) == 4242


def test_pictures_without_a_code_have_no_number() -> None:
    rng = np.random.default_rng(7)
    noise = rng.integers(0, 256, (360, 640, 3), dtype=np.uint8)
    flat = np.full((360, 640, 3), 128, np.uint8)
    stamped = np.zeros((360, 640, 3), np.uint8)
    stamp_frame_number(stamped, 77)
    stamped[-4:, 300:340] = 255 - stamped[-4:, 300:340]  # one bit's cell flipped at its core: the check fails
    stamped[-12:, 300:340] = 255 - stamped[-12:, 300:340]
    found = [read_frame_number(image) for image in (noise, flat, stamped, np.zeros((10, 10, 3), np.uint8))]
    assert found == [None, None, None, None]


def test_numbers_outside_the_code_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        stamp_frame_number(np.zeros((360, 640, 3), np.uint8), MAX_FRAME_NUMBER + 1)


def test_the_clock_says_when_a_frame_left_and_how_old_a_result_is() -> None:
    clock = FrameClock(epoch=1000.0, fps=15)
    assert clock.sent_at(30) == 1002.0
    assert clock.age_s(30, 1002.25) == pytest.approx(0.25)
    assert clock.frame_at(1002.0) == 30 and clock.frame_at(999.0) == 0


def test_every_frame_of_a_60_s_site_clip_reads_back_after_h264(tmp_path: Path) -> None:
    spec = SiteSpec(seed=5, cameras=1, seconds=60)
    camera = SiteCamera(spec, "cam1", load_domains(shipped_config("domains.yaml")))
    writers = {}
    for kbps in (None, 120):  # constant quality (the default), and a starved 120 kbit/s
        (tmp_path / f"{kbps}").mkdir()
        path = tmp_path / f"{kbps}" / "stream.h264"
        writers[kbps] = H264Writer(path, spec.width, spec.height, spec.fps, spec.gop, kbps)
    for number in range(spec.frames):
        image = camera.render(number).image
        for writer in writers.values():
            writer.write(image)
    for kbps, writer in writers.items():
        writer.close()
        with av.open(str(writer.path), format="h264") as video:
            numbers = [read_frame_number(f.to_ndarray(format="bgr24")) for f in video.decode(video=0)]
        assert numbers == list(range(spec.frames)), f"bitrate {kbps}: {numbers[:10]}..."
    assert (tmp_path / "120" / "stream.h264").stat().st_size < 60 * 120_000 / 8 * 1.5  # it really was starved
