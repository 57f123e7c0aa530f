from __future__ import annotations

import cv2
import numpy as np
import pytest

from visionloop.errors import InvalidImageError
from visionloop.imaging import decode_image, encode_jpeg


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
