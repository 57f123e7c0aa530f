"""Per-camera tracking: ids that follow objects, ByteTrack's second pass, flicker, and the result contract."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.core.boxes import greedy_match
from visionloop.core.contracts import Detections, FrameResult
from visionloop.core.settings import TrackingSettings
from visionloop.core.tracking import NO_TRACK, CameraTrackers, Tracker


def boxes(*corners: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(corners, np.float32).reshape(-1, 4)


def step(tracker: Tracker, corners: list[tuple[float, float, float, float]], conf: list[float], cls: list[int]):
    return tracker.update(boxes(*corners), np.array(conf, np.float32), np.array(cls, np.int32))


def test_a_moving_object_keeps_one_id_and_two_objects_two() -> None:
    tracker = Tracker()
    seen: list[list[int]] = []
    for t in range(40):
        a = (10 + 4 * t, 20, 50 + 4 * t, 60)  # left to right
        b = (300 - 4 * t, 120, 340 - 4 * t, 160)  # right to left, another lane
        frame = step(tracker, [a, b], [0.9, 0.8], [0, 1])
        seen.append([int(i) for i in frame.track_ids])
    assert all(ids == seen[0] for ids in seen)
    assert len(set(seen[0])) == 2 and NO_TRACK not in seen[0]


def test_a_doubtful_box_continues_a_track_but_never_starts_one() -> None:
    tracker = Tracker(high=0.5, low=0.1)
    first = step(tracker, [(10, 10, 50, 50)], [0.9], [0])
    doubtful = step(tracker, [(12, 10, 52, 50), (200, 200, 240, 240)], [0.2, 0.3], [0, 0])
    assert doubtful.track_ids[0] == first.track_ids[0]  # the second pass kept the object through the dip
    assert doubtful.track_ids[1] == NO_TRACK  # a doubtful box alone starts nothing
    assert doubtful.born == 0


def test_a_track_survives_a_short_occlusion_and_not_a_long_one() -> None:
    tracker = Tracker(max_missed=3)
    first = step(tracker, [(10, 10, 50, 50)], [0.9], [0])
    for _ in range(3):
        step(tracker, [], [], [])
    back = step(tracker, [(10, 10, 50, 50)], [0.9], [0])
    assert back.track_ids[0] == first.track_ids[0]
    for _ in range(4):
        step(tracker, [], [], [])
    later = step(tracker, [(10, 10, 50, 50)], [0.9], [0])
    assert later.track_ids[0] != first.track_ids[0]


def test_flicker_counts_boxes_that_come_and_go_and_class_switches() -> None:
    steady, flickering = Tracker(), Tracker()
    steady_flicker, flicker = [], []
    for t in range(20):
        steady_flicker.append(step(steady, [(10 + t, 10, 50 + t, 50)], [0.9], [0]).flicker)
        here = t % 2 == 0  # a box the detector finds every other frame, far from the last time
        corners = [(10 + 30 * t, 100, 50 + 30 * t, 140)] if here else []
        flicker.append(step(flickering, corners, [0.9] * len(corners), [0] * len(corners)).flicker)
    assert sum(steady_flicker[1:]) == 0
    assert sum(flicker[1:]) >= 9
    switching = Tracker()
    step(switching, [(10, 10, 50, 50)], [0.9], [0])
    assert step(switching, [(11, 10, 51, 50)], [0.9], [3]).class_switches == 1


def test_greedy_match_takes_the_best_pairs_once() -> None:
    iou = np.array([[0.9, 0.6], [0.8, 0.1]], np.float32)
    assert sorted(greedy_match(iou, 0.3)) == [(0, 0)]  # row 1's best column is taken; its other is too low
    assert greedy_match(np.zeros((0, 3), np.float32), 0.3) == []


def result(camera: str, seq: int, corners: list[tuple[float, float, float, float]]) -> FrameResult:
    dets = Detections(boxes(*corners), np.full(len(corners), 0.9, np.float32), np.zeros(len(corners), np.int32))
    return FrameResult(camera, seq, float(seq), "v1", dets)


def test_camera_trackers_keep_cameras_apart_and_forget_idle_ones() -> None:
    trackers = CameraTrackers.from_settings(TrackingSettings(idle_s=10.0))
    assert trackers is not None
    a = trackers.tag([result("a", 0, [(0, 0, 10, 10)]), "bad frame", result("b", 0, [(0, 0, 10, 10)])], now=0.0)
    assert a[1] == "bad frame"
    first_a, first_b = (r.detections.track_id for r in a if isinstance(r, FrameResult))
    assert first_a is not None and first_b is not None and first_a[0] == first_b[0] == 1  # each camera counts alone
    assert len(trackers) == 2
    later = trackers.tag([result("a", 1, [(1, 0, 11, 10)])], now=5.0)[0]
    assert isinstance(later, FrameResult) and later.detections.track_id is not None
    assert later.detections.track_id[0] == 1 and later.flicker == 0.0
    trackers.tag([result("a", 2, [(2, 0, 12, 10)])], now=14.0)  # b silent for 14 s: forgotten
    assert len(trackers) == 1
    assert CameraTrackers.from_settings(TrackingSettings(enabled=False)) is None


def test_track_ids_and_flicker_survive_the_result_contract() -> None:
    trackers = CameraTrackers()
    tagged = trackers.tag([result("cam", 0, [(0, 0, 10, 10), (50, 50, 60, 60)])])[0]
    assert isinstance(tagged, FrameResult)
    back = FrameResult.from_dict(tagged.to_dict())
    assert back.detections.track_id is not None
    assert back.detections.track_id.tolist() == [1, 2]
    assert back.flicker == tagged.flicker
    assert [b["track_id"] for b in tagged.to_dict()["detections"]["boxes"]] == [1, 2]
    with pytest.raises(ValueError, match="track_id"):
        Detections(boxes((0, 0, 1, 1)), np.ones(1, np.float32), np.zeros(1, np.int32), track_id=np.array([1, 2]))
