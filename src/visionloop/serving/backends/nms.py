"""Class-aware non-maximum suppression over YOLO candidates."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt


def nms_keep(
    candidates: npt.NDArray[np.float32], conf_threshold: float, iou_threshold: float, max_detections: int
) -> npt.NDArray[np.int64]:
    """Indices into ``candidates`` (A, 4 + C; xywh centre boxes, class scores) that survive per-class NMS."""
    scores = candidates[:, 4:]
    best = scores.max(axis=1)
    above = np.flatnonzero(best > conf_threshold)
    if above.size == 0:
        return np.zeros(0, np.int64)
    boxes = candidates[above, :4].copy()
    boxes[:, :2] -= boxes[:, 2:] / 2  # centre -> top-left, as OpenCV wants (x, y, w, h)
    class_ids = scores[above].argmax(axis=1)
    kept: npt.NDArray[np.int64] = np.asarray(
        cv2.dnn.NMSBoxesBatched(
            boxes.tolist(), best[above].tolist(), class_ids.tolist(), conf_threshold, iou_threshold
        ),
        dtype=np.int64,
    ).reshape(-1)
    kept = kept[np.argsort(-best[above][kept], kind="stable")][:max_detections]
    return np.asarray(above[kept], dtype=np.int64)
