"""A labeler's edits: pre-annotation against the finished annotation."""

from __future__ import annotations

from typing import Any

from visionloop.labeling.edits import EditCount, count_edits, latest_prediction


def region(x: float, y: float, w: float, h: float, label: str = "circle") -> dict[str, Any]:
    value = {"x": x, "y": y, "width": w, "height": h, "rectanglelabels": [label]}
    return {"type": "rectanglelabels", "value": value}


def test_kept_moved_relabelled_added_and_deleted_boxes() -> None:
    predicted = [region(10, 10, 20, 20), region(50, 50, 10, 10), region(80, 5, 10, 10, "star"), region(0, 80, 5, 5)]
    finished = [
        region(10, 10, 20, 20),  # accepted as it was
        region(52, 51, 10, 10),  # nudged
        region(80, 5, 10, 10, "cross"),  # relabelled
        region(30, 60, 10, 10),  # drawn: the model missed it
    ]  # the box at (0, 80) was deleted
    edits = count_edits(predicted, finished)
    assert edits == EditCount(added=1, deleted=1, moved=2, kept=1)
    assert edits.total == 4
    assert count_edits([], finished).to_dict() == {"added": 4, "deleted": 0, "moved": 0, "kept": 0, "total": 4}
    assert count_edits(predicted, predicted).total == 0
    assert (edits + edits).moved == 4


def test_the_latest_prediction_is_the_one_shown() -> None:
    task = {"predictions": [{"result": [region(0, 0, 1, 1)]}, {"result": [region(5, 5, 1, 1), region(9, 9, 1, 1)]}]}
    assert len(latest_prediction(task)) == 2
    assert latest_prediction({}) == []
