"""The frame clock: a frame number burned into the bottom strip of a picture, readable after H.264 by any consumer.

A simulated camera stamps every frame it renders with its number, and sends frame ``n`` at ``epoch + n / fps``; a
consumer (a camera worker, a benchmark's naive loop) reads the number back from the decoded picture, so both measure
**glass-to-result age** (the time a result is ready, less the time its frame left the camera) the same way, whatever
they skipped or queued on the way. Real cameras carry no clock: :func:`read_frame_number` answers None for them.

The code is 32 cells across the strip, each one flat black or white (H.264 keeps large flat blocks intact even at a
low bitrate): a start mark (white, black), 24 bits of the number (most significant first), a 4-bit check (the
number's nibbles summed, mod 16) and an end mark (black, white). A reader thresholds each cell's mean between the
marks' own levels, so brightness or contrast changes on the way do not matter; a picture whose marks or check do not
match holds no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

CELLS = 32
NUMBER_BITS = 24
CHECK_BITS = 4
MAX_FRAME_NUMBER = (1 << NUMBER_BITS) - 1  # 310 hours at 15 frames/s
START, END = (1, 0), (0, 1)
WHITE, BLACK = 224, 32
MIN_MARK_CONTRAST = 48  # marks closer than this in grey level: no code here (a real camera's picture)


def strip_height(frame_height: int) -> int:
    """Rows the strip takes at the bottom of a frame (16 of 360): objects and clutter stay above them."""
    return max(8, round(frame_height * 16 / 360))


def _check(number: int) -> int:
    return sum((number >> shift) & 0xF for shift in range(0, NUMBER_BITS, 4)) & 0xF


def _bits(number: int) -> list[int]:
    if not 0 <= number <= MAX_FRAME_NUMBER:
        raise ValueError(f"frame number {number} is outside 0..{MAX_FRAME_NUMBER}")
    data = [(number >> (NUMBER_BITS - 1 - i)) & 1 for i in range(NUMBER_BITS)]
    check = [(_check(number) >> (CHECK_BITS - 1 - i)) & 1 for i in range(CHECK_BITS)]
    return [*START, *data, *check, *END]


def _cell_edges(width: int) -> npt.NDArray[np.int64]:
    return np.round(np.linspace(0, width, CELLS + 1)).astype(np.int64)


def stamp_frame_number(image: npt.NDArray[np.uint8], number: int) -> None:
    """Write ``number`` into the bottom strip of ``image`` (BGR or grey, in place)."""
    height, width = image.shape[:2]
    if width < CELLS * 4:
        raise ValueError(f"a frame {width} pixels wide is too narrow for the frame clock ({CELLS * 4} at least)")
    top = height - strip_height(height)
    edges = _cell_edges(width)
    for cell, bit in enumerate(_bits(number)):
        image[top:, edges[cell] : edges[cell + 1]] = WHITE if bit else BLACK


def read_frame_number(image: npt.NDArray[np.uint8]) -> int | None:
    """The number stamped in ``image``'s bottom strip, or None where there is no valid code."""
    height, width = image.shape[:2]
    if width < CELLS * 4 or height < 16:
        return None
    strip = image[height - strip_height(height) :]
    grey = strip.mean(axis=2) if strip.ndim == 3 else strip.astype(np.float64)
    rows = grey.shape[0]
    inner = grey[rows // 4 : rows - rows // 4]  # the cells' centres: away from the blocks' blurred borders
    edges = _cell_edges(width)
    levels = np.empty(CELLS)
    for cell in range(CELLS):
        left, right = edges[cell], edges[cell + 1]
        margin = (right - left) // 4
        levels[cell] = inner[:, left + margin : right - margin].mean()
    white = (levels[0] + levels[-1]) / 2
    black = (levels[1] + levels[-2]) / 2
    if white - black < MIN_MARK_CONTRAST:
        return None
    bits = [int(level > (white + black) / 2) for level in levels]
    if tuple(bits[:2]) != START or tuple(bits[-2:]) != END:
        return None
    number = int("".join(map(str, bits[2 : 2 + NUMBER_BITS])), 2)
    check = int("".join(map(str, bits[2 + NUMBER_BITS : 2 + NUMBER_BITS + CHECK_BITS])), 2)
    return number if check == _check(number) else None


@dataclass(frozen=True)
class FrameClock:
    """When a camera sent each frame: frame ``n`` leaves at ``epoch + n / fps`` (wall-clock seconds)."""

    epoch: float
    fps: float

    def sent_at(self, number: int) -> float:
        return self.epoch + number / self.fps

    def age_s(self, number: int, at: float) -> float:
        """Glass-to-result age of frame ``number`` whose result was ready at ``at``."""
        return at - self.sent_at(number)

    def frame_at(self, at: float) -> int:
        """The frame the camera sends at wall time ``at`` (its newest)."""
        return max(0, int((at - self.epoch) * self.fps))
