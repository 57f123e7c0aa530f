"""What a labeler had to change: the pre-annotation (the model's boxes) against the finished annotation.

Labels cost edits, not frames: a frame whose pre-annotation was right costs a glance, one where every box was wrong
costs as much as drawing from scratch. Boxes are matched greedily by IoU; a matched box of the same class that
barely moved was kept, any other matched box was moved (or relabelled), a finished box with no match was added, a
predicted one with no match was deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from visionloop.core.boxes import box_iou, greedy_match

KEEP_IOU = 0.85  # a box moved less than this was accepted as it was
MATCH_IOU = 0.3  # below this, two boxes are different objects


@dataclass(frozen=True)
class EditCount:
    added: int = 0
    deleted: int = 0
    moved: int = 0
    kept: int = 0

    @property
    def total(self) -> int:
        """Edits the labeler made (a kept box costs none)."""
        return self.added + self.deleted + self.moved

    def __add__(self, other: EditCount) -> EditCount:
        return EditCount(
            self.added + other.added, self.deleted + other.deleted, self.moved + other.moved, self.kept + other.kept
        )

    def to_dict(self) -> dict[str, int]:
        return {"added": self.added, "deleted": self.deleted, "moved": self.moved, "kept": self.kept,
                "total": self.total}  # fmt: skip


def region_boxes(regions: Sequence[dict[str, Any]]) -> tuple[np.ndarray, list[str]]:
    """Label Studio rectangle regions as xyxy boxes in percent of the image, and their labels."""
    boxes, labels = [], []
    for region in regions:
        value = region.get("value") or {}
        names = value.get("rectanglelabels") or []
        if region.get("type") != "rectanglelabels" or not names:
            continue
        x, y = float(value.get("x", 0.0)), float(value.get("y", 0.0))
        boxes.append([x, y, x + float(value.get("width", 0.0)), y + float(value.get("height", 0.0))])
        labels.append(str(names[0]))
    return np.array(boxes, np.float32).reshape(-1, 4), labels


def count_edits(predicted: Sequence[dict[str, Any]], finished: Sequence[dict[str, Any]]) -> EditCount:
    """The edits that turn the ``predicted`` regions into the ``finished`` ones."""
    before, before_labels = region_boxes(predicted)
    after, after_labels = region_boxes(finished)
    iou = box_iou(before, after)
    pairs = greedy_match(iou, MATCH_IOU)
    kept = sum(1 for b, a in pairs if before_labels[b] == after_labels[a] and iou[b, a] >= KEEP_IOU)
    return EditCount(
        added=len(after) - len(pairs), deleted=len(before) - len(pairs), moved=len(pairs) - kept, kept=kept
    )


def latest_prediction(task: dict[str, Any]) -> list[dict[str, Any]]:
    """The regions of the pre-annotation a task was shown with (none: every finished box was added)."""
    predictions = [p for p in task.get("predictions") or [] if isinstance(p, dict)]
    return list(predictions[-1].get("result") or []) if predictions else []
