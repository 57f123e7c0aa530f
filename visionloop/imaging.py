"""The one image codec: decoding uploaded and streamed frames (with errors that say what was wrong), encoding JPEG."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from visionloop.errors import InvalidImageError

_SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}
MAX_PIXELS = 40_000_000  # a decompression bomb guard: a 8K frame is 33 M pixels


def sniff_image_type(data: bytes) -> str | None:
    """'jpeg' or 'png' from the first bytes, else None."""
    for signature, kind in _SIGNATURES.items():
        if data.startswith(signature):
            return kind
    return None


def _png_pixels(data: bytes) -> int:
    # IHDR holds width and height as big-endian uint32 at bytes 16..24.
    return int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big") if len(data) >= 24 else 0


def decode_image(data: bytes, name: str = "frame") -> npt.NDArray[np.uint8]:
    """BGR uint8 array from JPEG or PNG bytes; raises InvalidImageError naming the problem."""
    if not data:
        raise InvalidImageError(f"{name}: empty upload")
    kind = sniff_image_type(data)
    if kind is None:
        raise InvalidImageError(f"{name}: not a JPEG or PNG image (starts with {data[:8].hex()})")
    if kind == "png" and _png_pixels(data) > MAX_PIXELS:
        raise InvalidImageError(f"{name}: PNG of more than {MAX_PIXELS} pixels refused")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
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
