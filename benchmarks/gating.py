"""What motion gating costs in accuracy: mAP50 over every frame the cameras sent, not only the frames inferred.

A live application shows, for each frame, the last result it has. So each frame of the measured window is scored
with the detections of the newest result at or before it (nothing before the first result), against the site's
truth for that frame. Scored this way for the gated and the ungated run alike, the difference is what gating costs
a user: stale boxes on frames it skipped, and objects it missed while it judged the picture quiet.
"""

from __future__ import annotations

import bisect
from typing import Any

import numpy as np

from visionloop.core.contracts import Detections
from visionloop.learning.ab_stats import FrameMatches, map50, match_frame
from visionloop.simulation.site.live import RenderedSite


def frames_in(window: tuple[str, str], epoch: float, fps: int) -> range:
    """The frame numbers a site served from ``epoch`` sent within ``window`` (Redis stream ids)."""
    start_s, end_s = (int(entry.split("-")[0]) / 1000.0 for entry in window)
    first = max(0, int(np.ceil((start_s - epoch) * fps)))
    return range(first, int(np.floor((end_s - epoch) * fps)) + 1)


def held_matches(
    site: RenderedSite, predictions: dict[str, dict[int, Detections]], label: str, frames: range
) -> list[FrameMatches]:
    """Every frame of ``frames`` of every camera, matched with the result a user would hold then."""
    matches = []
    for camera_id, by_frame in predictions.items():
        name = camera_id.removeprefix(f"{label}-")
        truth = site.truth(name)
        numbers = sorted(by_frame)
        for frame in frames:
            if frame >= len(truth):
                break
            at = bisect.bisect_right(numbers, frame) - 1
            held = by_frame[numbers[at]] if at >= 0 else None
            objects = truth[frame]["objects"]
            matches.append(
                match_frame(
                    [obj["box"] for obj in objects],
                    [obj["cls"] for obj in objects],
                    held.xyxy if held is not None else np.zeros((0, 4)),
                    held.confidence if held is not None else np.zeros(0),
                    held.class_id if held is not None else np.zeros(0),
                )
            )
    return matches


def held_map50(
    site: RenderedSite, predictions: dict[str, dict[int, Detections]], label: str, frames: range
) -> dict[str, Any]:
    """mAP50 of a phase's results held over ``frames`` of each camera, and how many frames were scored."""
    matches = held_matches(site, predictions, label, frames)
    return {"map50": map50(matches) if matches else None, "frames_scored": len(matches),
            "frames": [frames.start, frames.stop]}  # fmt: skip
