"""A scheduled shift on 2 of a site's 8 cameras raises the drift alarm on those two and on no other.

The cameras are a simulated site's (each its own viewpoint with its own traffic, objects coming and going, quiet
stretches), at 320x180 and thinned as the drift sampler thins them (one frame each 0.5 s); cam3 and cam7 turn from A
to B at 60 s. The day is held steady and the weather off (a test domains file), so the scheduled shift is the only
change: a drift monitor's reaction to daylight is a question of its own. Detections are the site's truth (a perfect
detector), as in test_drift_world.py; the windows (20 samples), references, tests and alarm are the monitor's own.

False alarms: 6 unshifted cameras x 14 compared windows at alpha 0.01 expect 0.84 drifted windows, and an alarm needs
3 in a row; the site is seeded, so the outcome is fixed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.unit.test_drift_world import DRIFT, evaluated, feed, sampler, windows_to_alarm
from visionloop.core.contracts import Detections, EncodedFrame, FrameResult
from visionloop.core.imaging import encode_jpeg
from visionloop.core.layout import shipped_config
from visionloop.monitoring.drift_sampler import DriftSample, summarise
from visionloop.monitoring.drift_windows import DriftWindows
from visionloop.simulation.site import Shift, SiteCamera, SiteSpec
from visionloop.simulation.world import load_domains

CONF = 0.25
SHIFTED = ("cam3", "cam7")
SHIFT_AT_S, END_S = 60.0, 150.0


@pytest.fixture(scope="module")
def steady_domains(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = yaml.safe_load(shipped_config("domains.yaml").read_text())
    for knobs in raw.values():
        knobs["day"] = {"period_s": 86_400.0}
        knobs["weather"] = {"fog_per_hour": 0.0, "rain_per_hour": 0.0, "burst_per_hour": 0.0}
    path = tmp_path_factory.mktemp("domains") / "domains.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def samples(camera: SiteCamera, spec: SiteSpec) -> list[DriftSample]:
    thin, out = sampler(), []
    for number in range(0, round(END_S * spec.fps), max(1, round(DRIFT.sample_interval_s * spec.fps))):
        frame = camera.render(number)
        boxes = np.array([o.box for o in frame.objects], np.float32).reshape(-1, 4)
        classes = np.array([o.class_id for o in frame.objects], np.int32)
        result = FrameResult(
            camera.name, number, frame.t, "v1", Detections(boxes, np.ones(len(classes), np.float32), classes),
            frame_width=spec.width, frame_height=spec.height,
        )  # fmt: skip
        if thin.due(result):
            sample = summarise(EncodedFrame(camera.name, encode_jpeg(frame.image)), result, CONF)
            assert sample is not None
            out.append(sample)
    return out


def test_the_alarm_rings_on_the_two_shifted_cameras_only(steady_domains: Path) -> None:
    shifts = tuple(Shift(camera=c, at_s=SHIFT_AT_S, domain="B") for c in SHIFTED)
    spec = SiteSpec(seed=21, cameras=8, seconds=END_S, width=320, height=180, shifts=shifts)
    domains = load_domains(steady_domains)
    windows = DriftWindows(DRIFT)
    per_camera = {name: samples(SiteCamera(spec, name, domains), spec) for name in spec.camera_names()}
    merged = sorted((s for stream in per_camera.values() for s in stream), key=lambda s: s.ts)
    outcomes = feed(windows, merged)
    took = {name: windows_to_alarm(outcomes, name) for name in spec.camera_names()}
    compared = {name: len(evaluated(outcomes, name)) for name in spec.camera_names()}
    print(f"\nwindows compared per camera {compared}; windows until the alarm {took}")
    for name in spec.camera_names():
        assert bool(windows.scopes[name].alarm) == (name in SHIFTED), (name, took)
    first_b = int(SHIFT_AT_S / (DRIFT.window_size * DRIFT.sample_interval_s))  # compared window 6: 60-70 s
    for name in SHIFTED:
        b_windows = (took[name] or 10**6) - first_b + 1
        assert b_windows <= DRIFT.persistence + 1, took  # the alarm within one window of the fastest it can
