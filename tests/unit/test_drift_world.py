"""The issue's drift acceptance test on the synthetic world: few false alarms on a domain-A stream, an alarm soon
after the cameras turn to domain B.

Streams are made as cameras make them: each camera is one moving world scene (a static view, objects moving, fresh
sensor noise every frame) at 6 frames/s, thinned by the drift sampler's own per-camera interval (0.5 s) and
summarised by its own ``summarise`` (appearance from the quarter-size decoded JPEG). The windows, references and
alarm are the monitor's own (``DriftWindows``), with the default alpha (0.01), persistence (3) and 200 permutations
and windows of 20 samples (the smallest sensible; the default is 60).

Detections: the world's ground truth stands for a perfect detector (every visible object, confidence 1.0). The
untrained champion the tests have finds next to nothing, so with it only the appearance test would carry signal;
here class mix, detections per frame, box size and appearance carry it, and the two confidence tests carry none
(constant confidences). A trained detector's confidences are not exercised by this test.

False alarms: a window drifts with probability at most alpha (0.01) when nothing changed, so 20 windows expect
0.2; we allow max(1, ceil(0.01 x 20)) = 1 drifted window (a calibrated test passes that 98% of the time; the
streams are seeded, so the outcome is fixed) and no alarm.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import numpy as np

from visionloop.core.contracts import Detections, EncodedFrame, FrameResult
from visionloop.core.imaging import encode_jpeg
from visionloop.core.settings import DriftSettings, Settings
from visionloop.core.streams import StreamNames
from visionloop.monitoring.drift_sampler import DriftSample, DriftSampler, summarise
from visionloop.monitoring.drift_windows import ALL_SCOPE, DriftWindows, Outcome
from visionloop.simulation.world import load_domains
from visionloop.simulation.world.video import world_frames

FPS = 6
HEIGHT, WIDTH = 180, 320
WINDOW = 20
A_WINDOWS = 20
CONF = 0.25

DRIFT = DriftSettings(window_size=WINDOW)
DOMAINS = load_domains(Settings().domains_file())


def camera(camera_id: str, domain: str, seed: int, start_s: float, sampler: DriftSampler) -> Iterator[DriftSample]:
    """Samples of one camera watching one scene of ``domain`` from ``start_s`` on, thinned as the sampler does."""
    for index, (image, labels) in enumerate(world_frames(DOMAINS[domain], seed, 100_000, HEIGHT, WIDTH)):
        boxes = np.array([label["xyxy"] for label in labels], np.float32).reshape(-1, 4)
        classes = np.array([label["class_id"] for label in labels], np.int32)
        detections = Detections(boxes, np.ones(len(labels), np.float32), classes)
        result = FrameResult(
            camera_id, index, start_s + index / FPS, "v1", detections, frame_width=WIDTH, frame_height=HEIGHT
        )
        if sampler.due(result):
            sample = summarise(EncodedFrame(camera_id, encode_jpeg(image)), result, CONF)
            assert sample is not None
            yield sample


def take(samples: Iterator[DriftSample], n: int) -> list[DriftSample]:
    return [next(samples) for _ in range(n)]


def sampler() -> DriftSampler:
    return DriftSampler(None, StreamNames("test"), DRIFT.sample_interval_s, DRIFT.samples_maxlen, CONF)  # type: ignore[arg-type]


def feed(windows: DriftWindows, samples: list[DriftSample]) -> list[Outcome]:
    return [outcome for sample in samples for outcome in windows.add(sample)]


def evaluated(outcomes: list[Outcome], scope: str) -> list[Outcome]:
    return [o for o in outcomes if o.scope == scope and o.result is not None]


def windows_to_alarm(outcomes: list[Outcome], scope: str) -> int | None:
    """Windows holding domain-B frames until the scope's alarm was raised (1-based), or None."""
    for k, outcome in enumerate(evaluated(outcomes, scope), start=1):
        if outcome.alarm_changed and outcome.view["alarm"]:
            return k
    return None


def report(name: str, outcomes: list[Outcome]) -> None:
    for o in outcomes:
        assert o.result is not None
        print(f"{name} {o.scope} drifted={o.result.drifted} adj_p={o.result.adjusted_p:.2e} reasons={o.result.reasons}")


def test_one_camera_a_then_b() -> None:
    """One camera: 21 windows of its domain-A scene (a reference and 20 compared), then it turns to a domain-B
    scene half-way through a window."""
    started = time.perf_counter()
    windows, thin = DriftWindows(DRIFT), sampler()
    stream_a = camera("cam-1", "A", 101, 0.0, thin)
    a_samples = take(stream_a, WINDOW * (A_WINDOWS + 1) + WINDOW // 2)
    b_samples = take(camera("cam-1", "B", 202, a_samples[-1].ts + 0.5, thin), WINDOW * 6)
    on_a = feed(windows, a_samples)
    on_b = feed(windows, b_samples)

    a_windows = evaluated(on_a, "cam-1")
    report("A", a_windows)
    report("B", evaluated(on_b, "cam-1"))
    assert len(a_windows) == A_WINDOWS
    false_alarms = sum(o.result is not None and o.result.drifted for o in a_windows)
    assert false_alarms <= max(1, math.ceil(DRIFT.alpha * A_WINDOWS)), false_alarms
    assert not any(o.alarm_changed for o in on_a)
    k = windows_to_alarm(on_b, "cam-1")
    print(f"one camera: false alarms {false_alarms}/{A_WINDOWS}, K = {k}, {time.perf_counter() - started:.1f} s")
    assert k is not None and k <= DRIFT.persistence + 1  # the first B window is half A
    assert windows.scopes["cam-1"].alarm


def test_four_cameras_overall_scope() -> None:
    """Four cameras, each its own domain-A scene, interleaved: the overall scope gets 20 compared windows mixing
    them (and each camera its own few), then every camera turns to a domain-B scene."""
    started = time.perf_counter()
    windows, thin = DriftWindows(DRIFT), sampler()
    cameras = [f"cam-{i}" for i in range(4)]
    each = WINDOW * (A_WINDOWS + 1) // 4
    a_streams = [take(camera(c, "A", 300 + i, 0.0, thin), each) for i, c in enumerate(cameras)]
    end_s = max(s[-1].ts for s in a_streams) + 0.5
    b_streams = [take(camera(c, "B", 400 + i, end_s, thin), WINDOW * 4) for i, c in enumerate(cameras)]
    on_a = feed(windows, [s for row in zip(*a_streams, strict=True) for s in row])
    on_b = feed(windows, [s for row in zip(*b_streams, strict=True) for s in row])

    overall = evaluated(on_a, ALL_SCOPE)
    report("A", [o for o in on_a if o.result is not None])
    report("B", [o for o in on_b if o.result is not None])
    assert len(overall) == A_WINDOWS
    false_alarms = sum(o.result is not None and o.result.drifted for o in overall)
    per_camera = [o for c in cameras for o in evaluated(on_a, c)]
    per_camera_false = sum(o.result is not None and o.result.drifted for o in per_camera)
    assert false_alarms <= max(1, math.ceil(DRIFT.alpha * A_WINDOWS)), false_alarms
    assert not any(o.alarm_changed for o in on_a)
    k = windows_to_alarm(on_b, ALL_SCOPE)
    print(
        f"four cameras: overall false alarms {false_alarms}/{A_WINDOWS}, per-camera {per_camera_false}/"
        f"{len(per_camera)}, K = {k}, {time.perf_counter() - started:.1f} s"
    )
    assert per_camera_false <= max(1, math.ceil(DRIFT.alpha * len(per_camera))), per_camera_false
    assert k is not None and k <= DRIFT.persistence
    assert all(windows.scopes[c].alarm for c in cameras)
