"""Boxes and labels drawn on a frame, for the annotated video the browser gets back."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from visionloop.core.contracts import Detections

PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72)]


def draw_detections(
    image: npt.NDArray[np.uint8], detections: Detections, class_names: Sequence[str]
) -> npt.NDArray[np.uint8]:
    out = image.copy()
    for box, conf, cls in zip(detections.xyxy, detections.confidence, detections.class_id, strict=True):
        x1, y1, x2, y2 = (int(v) for v in box)
        colour = PALETTE[int(cls) % len(PALETTE)]
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 2)
        name = class_names[int(cls)] if int(cls) < len(class_names) else str(int(cls))
        label = f"{name} {float(conf):.2f}"
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(out, (x1, max(0, y1 - th - 4)), (x1 + tw + 2, y1), colour, -1)
        cv2.putText(
            out, label, (x1 + 1, max(th, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA
        )
    return out
