"""Pseudo-label filtering: a confident box must be found again in the mirrored frame."""

from __future__ import annotations

import numpy as np

from visionloop.core.contracts import Detections
from visionloop.learning.adaptation import _agreeing, _mirror


def dets(boxes: list[list[float]], classes: list[int]) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), np.full(len(boxes), 0.9, np.float32),
                      np.array(classes, np.int32))  # fmt: skip


def test_mirroring_puts_a_box_where_the_flipped_frame_shows_it() -> None:
    mirrored = _mirror(dets([[10, 5, 30, 25]], [0]), width=100)
    assert mirrored.tolist() == [[70.0, 5.0, 90.0, 25.0]]


def test_only_boxes_the_mirrored_frame_confirms_with_the_same_class_agree() -> None:
    found = dets([[10, 5, 30, 25], [50, 50, 70, 70], [0, 80, 10, 90]], [0, 1, 2])
    # In the flipped frame (width 100): the first box where it belongs, the second with another class, the third
    # nowhere.
    flipped = dets([[70, 5, 90, 25], [30, 50, 50, 70]], [0, 3])
    assert _agreeing(found, flipped, width=100).tolist() == [True, False, False]
    assert _agreeing(found, Detections.empty(), width=100).tolist() == [False, False, False]
