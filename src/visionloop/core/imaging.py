"""The one image codec: decoding uploaded and streamed frames (with errors that say what was wrong), encoding JPEG."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from visionloop.core.errors import ImageTooLarge, InvalidImageError

_SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}
MAX_PIXELS = 40_000_000  # a decompression bomb guard: a 8K frame is 33 M pixels
# Wider than any camera or panorama; beyond it the detector's letterbox rounds the short side to 0 pixels.
MAX_ASPECT = 32
# JPEG frame headers (SOFn); C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frame headers.
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_NO_LENGTH = frozenset({0x00, 0xFF, 0x01, *range(0xD0, 0xD8)})  # not a segment: 00, FF, TEM, RST0-7
_JPEG_NO_FRAME = frozenset({0xD8, 0xD9, 0xDA})  # SOI again, EOI or SOS before any frame header: no image
_JPEG_MAX_STEPS = 1_000  # FF bytes looked at before the frame header; real headers have a few dozen segments


def sniff_image_type(data: bytes) -> str | None:
    """'jpeg' or 'png' from the first bytes, else None."""
    for signature, kind in _SIGNATURES.items():
        if data.startswith(signature):
            return kind
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the IHDR chunk, which the PNG format puts first; None where it is not there."""
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first frame header (SOFn), read by walking the marker segments after SOI, so a
    header that claims a huge frame is seen before libjpeg allocates it; None where the chain has no frame header
    (truncated, a bad length, a scan or the end first).

    Stray bytes, fill bytes (FF FF) and stuffed FF 00 pairs are skipped as libjpeg skips them, within a budget of
    FF bytes looked at: every step moves forward and a megabyte of FF bytes costs no more than a real header.
    """
    pos = 2
    for _ in range(_JPEG_MAX_STEPS):
        pos = data.find(b"\xff", pos) + 1  # at the byte after the next FF
        if pos == 0 or pos >= len(data):
            return None
        marker = data[pos]
        if marker in _JPEG_NO_LENGTH:  # a stuffed 00, a fill FF (found again from here), TEM or RSTn: no segment
            continue
        length = int.from_bytes(data[pos + 1 : pos + 3], "big")  # it counts its own 2 bytes
        if marker in _JPEG_NO_FRAME or length < 2 or pos + 1 + length > len(data):
            return None
        if marker in _JPEG_SOF:  # length(2) precision(1) height(2) width(2)
            return int.from_bytes(data[pos + 6 : pos + 8], "big"), int.from_bytes(data[pos + 4 : pos + 6], "big")
        pos += 1 + length
    return None


def check_frame_size(width: int, height: int, name: str = "frame", kind: str = "frame") -> None:
    """InvalidImageError for a size no camera makes: a zero side, more than MAX_PIXELS (a decompression bomb), or
    beyond MAX_ASPECT (the detector's letterbox would fail on it, and on every frame batched with it)."""
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{name}: {kind} of {width}x{height} pixels refused: a side is zero")
    if width * height > MAX_PIXELS:
        raise ImageTooLarge(
            f"{name}: {kind} of {width}x{height} pixels refused: too large (more than {MAX_PIXELS} pixels)"
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise InvalidImageError(
            f"{name}: {kind} of {width}x{height} pixels refused: aspect ratio beyond {MAX_ASPECT}:1"
        )


def _check_header(kind: str, size: tuple[int, int] | None, name: str, length: int) -> None:
    """Refuse, before decoding, a header that is missing or claims a frame no camera makes (the bomb guard)."""
    if size is None:
        raise InvalidImageError(f"{name}: corrupt or truncated {kind.upper()} data ({length} bytes; no valid size)")
    check_frame_size(*size, name=name, kind=kind.upper())


def decode_image(data: bytes, name: str = "frame") -> npt.NDArray[np.uint8]:
    """BGR uint8 array from JPEG or PNG bytes; raises InvalidImageError naming the problem.

    The size the header declares is checked first: a few hundred bytes may claim gigapixels.
    """
    if not data:
        raise InvalidImageError(f"{name}: empty upload")
    kind = sniff_image_type(data)
    if kind is None:
        raise InvalidImageError(f"{name}: not a JPEG or PNG image (starts with {data[:8].hex()})")
    _check_header(kind, _png_size(data) if kind == "png" else _jpeg_size(data), name, len(data))
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # OpenCV raises, rather than returning None, on some data (its own size limit, for one)
        image = None
    if image is None:
        raise InvalidImageError(f"{name}: corrupt or truncated {kind.upper()} data ({len(data)} bytes)")
    return np.asarray(image, dtype=np.uint8)


def encode_jpeg(image: npt.NDArray[np.uint8], quality: int = 85) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InvalidImageError("could not encode frame as JPEG")
    return bytes(buffer)


def frame_embedding(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """A cheap appearance vector (8x8 colour thumbnail + grey histogram), unit length: the novelty sampler and the
    drift monitor compare frames with it."""
    thumb = cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA).astype(np.float32).reshape(-1) / 255.0
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    counts = np.asarray(cv2.calcHist([grey], [0], None, [16], [0, 256]), dtype=np.float32).reshape(-1)
    hist = counts / max(float(counts.sum()), 1.0)
    vector = np.concatenate([thumb, hist * 4.0])
    return (vector / max(float(np.linalg.norm(vector)), 1e-6)).astype(np.float32)
