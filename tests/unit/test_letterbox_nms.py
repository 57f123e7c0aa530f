from __future__ import annotations

import numpy as np
import pytest

from visionloop.serving.backends.letterbox import PAD_VALUE, batch_shape, letterbox_batch
from visionloop.serving.backends.nms import nms_keep


@pytest.mark.parametrize(
    ("shapes", "imgsz", "expected"),
    [
        ([(360, 640)], 320, (192, 320)),  # 16:9 -> rectangle, not a square
        ([(720, 1280)], 640, (384, 640)),
        ([(480, 640)], 320, (256, 320)),
        ([(640, 480)], 320, (320, 256)),
        ([(360, 640), (480, 640)], 320, (256, 320)),  # the batch takes the largest
        ([(100, 100)], 320, (320, 320)),
    ],
)
def test_batch_shape_is_the_smallest_stride_aligned_rectangle(
    shapes: list[tuple[int, int]], imgsz: int, expected: tuple[int, int]
) -> None:
    assert batch_shape(shapes, imgsz) == expected


def test_letterbox_keeps_aspect_and_pads_grey() -> None:
    frame = np.full((360, 640, 3), 200, np.uint8)
    frame[:, :, 0] = 10  # blue channel, to check BGR -> RGB
    batch = letterbox_batch([frame], (256, 320))
    assert batch.tensor.shape == (1, 3, 256, 320)
    assert batch.scales == [0.5]
    left, top = batch.pads[0]
    assert (left, top) == (0.0, 38.0)
    assert batch.tensor[0, 2, 100, 100] == pytest.approx(10 / 255)  # blue is now the last channel
    assert batch.tensor[0, 0, 0, 0] == pytest.approx(PAD_VALUE / 255)  # padding


def _candidates(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, np.float32)


def test_nms_suppresses_overlaps_of_the_same_class_only() -> None:
    candidates = _candidates(
        [
            [50, 50, 40, 40, 0.9, 0.0],  # class 0, best
            [52, 51, 40, 40, 0.8, 0.0],  # class 0, overlaps the first -> suppressed
            [51, 50, 40, 40, 0.0, 0.7],  # class 1, same place -> kept (class-aware)
            [200, 200, 20, 20, 0.6, 0.0],  # class 0 elsewhere -> kept
            [300, 300, 20, 20, 0.1, 0.0],  # below threshold
        ]
    )
    keep = nms_keep(candidates, conf_threshold=0.25, iou_threshold=0.45, max_detections=10)
    assert list(keep) == [0, 2, 3]


def test_nms_caps_detections_and_handles_nothing() -> None:
    rows = [[10.0 * i + 5, 5, 8, 8, 0.5 + i / 100, 0.0] for i in range(20)]
    assert len(nms_keep(_candidates(rows), 0.25, 0.45, max_detections=5)) == 5
    assert nms_keep(_candidates([[5, 5, 8, 8, 0.01, 0.02]]), 0.25, 0.45, 5).size == 0
