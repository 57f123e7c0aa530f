"""A simulated site served live over RTSP by the GStreamer server: cameras that behave like cameras.

Frame ``n`` leaves at ``epoch + n / fps`` whether anyone watches or not: a client joining later sees the current
frame, never the site's start again; no frame number repeats during a run; a camera worker reads each frame's number
from the picture, so glass-to-result age (result time less send time) is measured the same way by every consumer.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import av
import psutil
import pytest

from tests.conftest import free_port, seconds_until
from visionloop.core.cameras import CameraSpec
from visionloop.core.contracts import Detections, EncodedFrame, FrameResult
from visionloop.core.frame_clock import read_frame_number
from visionloop.core.layout import shipped_config
from visionloop.core.settings import CameraSettings
from visionloop.simulation.rtsp_cameras import RtspSimulator
from visionloop.simulation.site import Shift, SiteSpec
from visionloop.simulation.site.live import RenderedSite
from visionloop.simulation.site.writer import write_site
from visionloop.streaming.worker import CameraRuntime

pytestmark = pytest.mark.integration
SPEC = SiteSpec(seed=3, cameras=2, seconds=40, shifts=(Shift(camera="cam2", at_s=20, domain="B"),))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> RenderedSite:
    return RenderedSite(write_site(SPEC, shipped_config("domains.yaml"), tmp_path_factory.mktemp("site") / "s"))


@pytest.fixture
def served(site: RenderedSite) -> Iterator[RtspSimulator]:
    with site.serve(free_port()) as simulator:
        yield simulator


def _read(url: str, frames: int) -> list[tuple[int | None, float]]:
    """(frame number, arrival time) of the next ``frames`` frames a plain PyAV client decodes."""
    out = []
    options = {"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay", "timeout": "5000000"}
    with av.open(url, options=options) as container:
        container.streams.video[0].codec_context.thread_count = 1
        for frame in container.decode(video=0):
            out.append((read_frame_number(frame.to_ndarray(format="bgr24")), time.time()))
            if len(out) >= frames:
                break
    return out


def test_a_client_sees_the_live_frame_and_frame_numbers_never_repeat(site: RenderedSite, served: RtspSimulator) -> None:
    clock = site.clock("cam1")
    time.sleep(max(0.0, clock.epoch + 2.0 - time.time()))  # the site has been live for 2 s before anyone looks
    first = _read(served.url("cam1"), 45)
    numbers = [n for n, _ in first]
    assert None not in numbers
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # in order, none skipped, none repeated
    assert clock.frame_at(first[0][1]) - 15 <= numbers[0] <= clock.frame_at(first[0][1])  # live, not the start
    ages = [clock.age_s(n, at) for n, at in first if n is not None]
    print(f"\nplain client: age p50 {statistics.median(ages) * 1e3:.0f} ms, max {max(ages) * 1e3:.0f} ms")
    assert 0 < statistics.median(ages) < 0.5
    later = _read(served.url("cam1"), 5)  # a second session, later: the stream went on, it did not start over
    assert later[0][0] is not None and later[0][0] > numbers[-1]


def test_two_cameras_share_one_clock_and_the_shift_shows(site: RenderedSite, served: RtspSimulator) -> None:
    time.sleep(max(0.0, site.clock("cam2").epoch + 0.5 - time.time()))
    one, two = _read(served.url("cam1"), 10), _read(served.url("cam2"), 10)
    both = site.clock("cam1")
    for number, at in one + two:
        assert number is not None and 0 < both.age_s(number, at) < 0.5
    assert site.truth("cam2")[0]["frame"] == 0 and len(site.truth("cam2")) == SPEC.frames
    assert site.data["cameras"]["cam2"]["shifts"][0]["domain"] == "B"


class HoldingSink:
    """Answers each frame after holding it ``hold_s``: a known latency the ages must show."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.results: list[FrameResult] = []

    def __call__(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        time.sleep(self.hold_s)
        done = time.time()
        out: list[FrameResult | str] = []
        for f in frames:
            seq, captured = f.seq or 0, f.capture_ts or 0.0
            result = FrameResult(
                f.camera_id, seq, captured, "test", Detections.empty(), source_frame=f.source_frame, result_ts=done
            )
            self.results.append(result)
            out.append(result)
        return out


def _ages_through_a_camera(site: RenderedSite, url: str, hold_s: float, seconds: float) -> list[float]:
    sink = HoldingSink(hold_s)
    settings = CameraSettings(open_timeout_s=5, read_timeout_s=2, stall_timeout_s=3, backoff_max_s=1)
    runtime = CameraRuntime(CameraSpec(id="cam1", url=url, target_fps=15), settings, sink)
    runtime.start()
    try:
        assert seconds_until(lambda: len(sink.results) >= 5, 20)
        start = len(sink.results)
        time.sleep(seconds)
        measured = sink.results[start:]
    finally:
        runtime.stop()
    clock = site.clock("cam1")
    assert all(r.source_frame is not None for r in measured)
    return [clock.age_s(r.source_frame, r.result_ts) for r in measured if r.source_frame is not None and r.result_ts]


def test_a_result_held_50_ms_is_50_ms_older(site: RenderedSite, served: RtspSimulator) -> None:
    baseline = _ages_through_a_camera(site, served.url("cam1"), 0.0, 8)
    held = _ages_through_a_camera(site, served.url("cam1"), 0.050, 8)
    rise = statistics.median(held) - statistics.median(baseline)
    print(f"\ncamera worker: age p50 {statistics.median(baseline) * 1e3:.1f} ms, held 50 ms: "
          f"{statistics.median(held) * 1e3:.1f} ms (rise {rise * 1e3:.1f} ms over {len(held)} frames)")  # fmt: skip
    assert len(baseline) > 60 and len(held) > 60
    assert abs(rise - 0.050) <= 0.005


def test_the_server_costs_little_per_camera(site: RenderedSite, served: RtspSimulator, tmp_path: Path) -> None:
    assert served.pid is not None
    server = psutil.Process(served.pid)
    time.sleep(max(0.0, site.clock("cam1").epoch - time.time()))
    before = server.cpu_times()
    started = time.monotonic()
    for camera in ("cam1", "cam2"):  # a session of 5 s each
        _read(served.url(camera), 75)
    after = server.cpu_times()
    share = (after.user + after.system - before.user - before.system) / (time.monotonic() - started)
    print(f"\nRTSP server: {share * 100:.1f}% of a core for {len(site.cameras)} live cameras")
    assert share < 0.25  # sending pre-encoded frames; nothing is rendered or encoded while measuring
