"""The figures bench-pipeline's targets are set on: when a camera count is sustained, whether fresh results fall as
cameras are added, and motion gating's held mAP50 (each frame scored with the last result a user would hold)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from benchmarks.ages import camera_ages_report, cameras_sustained
from benchmarks.gating import frames_in, held_matches
from benchmarks.pipeline_report import _never_falls
from visionloop.core.contracts import Detections
from visionloop.learning.ab_stats import map50

pytestmark = pytest.mark.usefixtures("offline_ultralytics")


def test_a_camera_count_is_sustained_only_when_every_camera_is_fresh_enough() -> None:
    fresh = [0.05] * 100  # 100 results at 50 ms over 10 s: 10 fresh results/s
    assert camera_ages_report({"a": fresh, "b": fresh}, 2, 10.0)["sustained"]
    slow_tail = [0.05] * 98 + [0.4, 0.4]  # p99 above 150 ms
    assert not camera_ages_report({"a": fresh, "b": slow_tail}, 2, 10.0)["sustained"]
    sparse = [0.05] * 40  # 4 fresh results/s
    assert not camera_ages_report({"a": fresh, "b": sparse}, 2, 10.0)["sustained"]
    missing = camera_ages_report({"a": fresh}, 2, 10.0)  # a camera without any result is the worst camera
    assert not missing["sustained"] and missing["worst_camera_fresh_fps"] == 0.0


def test_cameras_sustained_is_the_largest_sustained_count() -> None:
    assert cameras_sustained({1: {"sustained": True}, 2: {"sustained": True}, 4: {"sustained": False}}) == 2
    assert cameras_sustained({1: {"sustained": False}}) == 0


def test_fresh_results_may_level_off_but_not_fall() -> None:
    assert _never_falls([15.0, 30.0, 60.0, 100.0, 99.0, 101.0])  # saturation: flat within 5 %
    assert not _never_falls([15.0, 30.0, 60.0, 40.0])


def _boxes(*xyxy: tuple[float, float, float, float]) -> Detections:
    return Detections(
        xyxy=np.array(xyxy, np.float32).reshape(-1, 4),
        confidence=np.full(len(xyxy), 0.9, np.float32),
        class_id=np.zeros(len(xyxy), np.int32),
    )


class _Site:
    """A camera whose one object moves 20 px per frame: a result held for frames it did not see goes stale."""

    epoch = 100.0

    class spec:  # mirrors RenderedSite.spec
        fps = 10

    def truth(self, name: str) -> list[dict[str, Any]]:
        assert name == "cam1"
        return [{"objects": [{"cls": 0, "box": [20.0 * n, 0.0, 20.0 * n + 20.0, 20.0]}]} for n in range(10)]


def test_held_results_score_every_frame_so_skipped_frames_cost() -> None:
    site: Any = _Site()
    every = {"g-cam1": {n: _boxes((20.0 * n, 0.0, 20.0 * n + 20.0, 20.0)) for n in range(10)}}
    every_other = {"g-cam1": {n: box for n, box in every["g-cam1"].items() if n % 2 == 0}}
    frames = range(0, 10)
    assert map50(held_matches(site, every, "g", frames)) == pytest.approx(1.0, abs=0.01)
    stale = held_matches(site, every_other, "g", frames)
    assert len(stale) == 10
    assert map50(stale) < 0.8  # the odd frames hold a box that no longer overlaps the object


def test_the_frames_of_a_window_follow_the_site_clock() -> None:
    window = ("101000-0", "102000-0")  # stream ids: 1 s to 2 s after the epoch at 10 fps
    assert frames_in(window, 100.0, 10) == range(10, 21)
