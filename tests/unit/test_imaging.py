from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from visionloop.core.errors import ImageTooLarge, InvalidImageError
from visionloop.core.imaging import decode_image, encode_jpeg


def _png(width: int = 32, height: int = 16) -> bytes:
    return bytes(cv2.imencode(".png", np.zeros((height, width, 3), np.uint8))[1])


def test_jpeg_and_png_decode() -> None:
    image = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    assert decode_image(encode_jpeg(image)).shape == (24, 40, 3)
    assert decode_image(_png()).shape == (16, 32, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty upload"),
        (b"GIF89a......", "not a JPEG or PNG"),
        (b"%PDF-1.7 hello", "not a JPEG or PNG"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "corrupt or truncated JPEG"),
    ],
)
def test_bad_images_say_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImageError, match=message):
        decode_image(data, name="upload")


def test_truncated_jpeg_is_rejected() -> None:
    jpeg = encode_jpeg(np.full((64, 64, 3), 128, np.uint8))
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        decode_image(jpeg[:20])


def test_png_bomb_is_refused_before_decoding() -> None:
    header = bytearray(_png())
    header[16:20] = (100_000).to_bytes(4, "big")
    header[20:24] = (100_000).to_bytes(4, "big")
    with pytest.raises(InvalidImageError, match="pixels refused"):
        decode_image(bytes(header))


# -- bombs and malformed headers: refused from the header, before anything is decoded --------------------------------


def _jpeg(width: int = 64, height: int = 48) -> bytes:
    return encode_jpeg(np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8))


def _with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    sof = jpeg.index(b"\xff\xc0")  # length(2) precision(1) height(2) width(2) follow the marker
    return jpeg[: sof + 5] + struct.pack(">HH", height, width) + jpeg[sof + 9 :]


def _png_of_zeros(width: int, height: int) -> bytes:
    """A real, complete 1-bit grey PNG: 20000x20000 is ~50 KB of file and 1.2 GB once decoded to BGR."""
    compress, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)
    idat = b"".join(compress.compress(row) for _ in range(height)) + compress.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _refusal(data: bytes) -> tuple[str, float, int]:
    """The refusal's message, the seconds it took (the best of 3: the box is shared) and the most memory (Python
    and numpy, so also the array OpenCV would decode into) held meanwhile."""
    seconds, peak, message = [], 0, ""
    for _ in range(3):
        tracemalloc.start()
        started = time.perf_counter()
        try:
            with pytest.raises(InvalidImageError) as refused:
                decode_image(data, name="bomb")
            seconds.append(time.perf_counter() - started)
            peak, message = max(peak, tracemalloc.get_traced_memory()[1]), str(refused.value)
        finally:
            tracemalloc.stop()
    return message, min(seconds), peak


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_png_of_zeros(20_000, 20_000), "PNG of 20000x20000 pixels refused: too large"),
        (_png_of_zeros(6_400, 6_400), "PNG of 6400x6400 pixels refused: too large"),  # just over MAX_PIXELS
        (_with_jpeg_size(_jpeg(), 60_000, 60_000), "JPEG of 60000x60000 pixels refused: too large"),
        (_with_jpeg_size(_jpeg(), 7_000, 7_000), "JPEG of 7000x7000 pixels refused: too large"),
        (_png_of_zeros(100_000, 1), "aspect ratio beyond 32:1"),
        (_with_jpeg_size(_jpeg(), 10, 5_000), "aspect ratio beyond 32:1"),
        (_with_jpeg_size(_jpeg(), 640, 0), "JPEG of 640x0 pixels refused: a side is zero"),
        (_png_of_zeros(0, 10), "PNG of 0x10 pixels refused: a side is zero"),
    ],
)
def test_bombs_are_refused_from_the_header(data: bytes, message: str) -> None:
    text, seconds, peak = _refusal(data)
    assert message in text
    with pytest.raises(InvalidImageError) as refused:
        decode_image(data, name="bomb")
    assert isinstance(refused.value, ImageTooLarge) == ("too large" in message)  # 413 by type, never by text
    assert seconds < 0.05 and peak < 1_000_000, (seconds, peak)


def test_a_bomb_under_the_limits_is_what_the_guard_lets_through() -> None:
    # The guard's own measure: a 6000x6000 zero PNG (36 M pixels) decodes, and the tracing sees its 108 MB, so
    # the bound above would catch a bomb that got decoded.
    tracemalloc.start()
    try:
        assert decode_image(_png_of_zeros(6_000, 6_000)).shape == (6_000, 6_000, 3)
        assert tracemalloc.get_traced_memory()[1] > 6_000 * 6_000 * 3
    finally:
        tracemalloc.stop()


def _chain(jpeg: bytes, how: str) -> bytes:
    return {
        "zero_length": jpeg[:4] + b"\x00\x00" + jpeg[6:],
        "length_past_end": jpeg[:4] + b"\xff\xff" + jpeg[6:],
        "scan_first": jpeg[:2] + b"\xff\xda\x00\x08" + bytes(6) + jpeg[2:],
        "end_first": jpeg[:2] + b"\xff\xd9" + jpeg[2:],
        "no_frame_header": jpeg[: jpeg.index(b"\xff\xc0")] + jpeg[jpeg.index(b"\xff\xc4") :],
        "cut_in_frame_header": jpeg[: jpeg.index(b"\xff\xc0") + 6],
        "ff_flood": jpeg[:2] + b"\xff" * 2_000_000 + jpeg[2:],
        "stuffed_flood": jpeg[:2] + b"\xff\x00" * 1_000_000 + jpeg[2:],
    }[how]


@pytest.mark.parametrize(
    "how",
    [
        "zero_length",
        "length_past_end",
        "scan_first",
        "end_first",
        "no_frame_header",
        "cut_in_frame_header",
        "ff_flood",
        "stuffed_flood",
    ],
)
def test_a_malformed_jpeg_marker_chain_is_refused(how: str) -> None:
    text, seconds, _ = _refusal(_chain(_jpeg(), how))
    assert "corrupt or truncated JPEG" in text and seconds < 0.05, (text, seconds)


def test_headers_libjpeg_accepts_still_decode() -> None:
    jpeg = _jpeg(64, 48)
    fill_bytes = jpeg[:2] + b"\xff\xff\xff" + jpeg[2:]  # fill bytes before a marker are allowed
    app0_end = 4 + int.from_bytes(jpeg[4:6], "big")
    stray = jpeg[:app0_end] + b"junk\xff\x00" + jpeg[app0_end:]  # libjpeg skips (and warns about) stray bytes
    progressive = io.BytesIO()
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(
        progressive, "JPEG", progressive=True, icc_profile=b"x" * 9000
    )
    for data in (fill_bytes, stray, progressive.getvalue(), _with_jpeg_size(_jpeg(32 * 40, 40), 32 * 40, 40)):
        assert decode_image(data).shape[:2] in ((48, 64), (40, 32 * 40))


def test_an_opencv_exception_is_an_invalid_image(monkeypatch: pytest.MonkeyPatch) -> None:
    import visionloop.core.imaging as imaging

    monkeypatch.setattr(imaging, "MAX_PIXELS", 10**12)  # past our guard, OpenCV's own limit raises cv2.error
    with pytest.raises(InvalidImageError, match="corrupt or truncated JPEG"):
        decode_image(_with_jpeg_size(_jpeg(), 60_000, 60_000))


def test_a_frame_error_keeps_its_kind_through_pickling_and_maps_to_its_status() -> None:
    """Ray carries a frame's error between processes: the kind (not the text) decides 413 against 400."""
    import pickle

    from visionloop.core.frame_errors import FrameError
    from visionloop.core.http_errors import http_error

    bomb = _png_of_zeros(20_000, 20_000)
    with pytest.raises(ImageTooLarge) as too_large:
        decode_image(bomb, name="bomb")
    with pytest.raises(InvalidImageError) as broken:
        decode_image(b"not an image", name="notes")
    for exc, kind, status in [(too_large.value, "too_large", 413), (broken.value, "invalid", 400)]:
        error = pickle.loads(pickle.dumps(FrameError.of(exc)))
        assert isinstance(error, FrameError) and error.kind == kind and error == str(exc)
        assert http_error(error.exception("upload.png")).status == status
    assert FrameError.read("not processed: RayActorError").kind == "invalid"  # a plain string: not a bomb
    assert http_error(FrameError("pixels refused: too large (more than 40000000 pixels)").exception("x")).status == 400
