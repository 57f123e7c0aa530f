"""Box geometry every part shares: pairwise IoU and a greedy one-to-one matching (tracker, edits, duplicates,
metrics), so that "the same box" means one thing across the product."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Boxes = npt.NDArray[Any]  # (N, 4) xyxy, float32 or float64


def box_iou(a: Boxes, b: Boxes) -> npt.NDArray[np.floating[Any]]:
    """(N, M) IoU of two sets of xyxy boxes, in the wider of their float types (float32 at least): the metrics
    pass float64, the tracker float32. A box with no area overlaps nothing."""
    dtype = np.result_type(a, b, np.float32)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)), dtype)
    a, b = np.asarray(a, dtype), np.asarray(b, dtype)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(axis=1)
    return np.asarray(inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9), dtype)


def greedy_match(iou: npt.NDArray[np.floating[Any]], threshold: float) -> list[tuple[int, int]]:
    """(row, column) pairs, best IoU first, each row and column used once, every pair at least ``threshold``."""
    pairs: list[tuple[int, int]] = []
    if not iou.size:
        return pairs
    rows, cols = np.nonzero(iou >= threshold)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_rows: set[int] = set()
    used_cols: set[int] = set()
    for index in order:
        row, col = int(rows[index]), int(cols[index])
        if row not in used_rows and col not in used_cols:
            pairs.append((row, col))
            used_rows.add(row)
            used_cols.add(col)
    return pairs
