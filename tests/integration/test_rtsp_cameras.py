"""Camera supervision against a real GStreamer RTSP server: restarts, hangs, bad paths and credentials, leaks.

The model side is a recording function here (a unit seam); test_camera_service.py runs the same cameras
through the real Serve app.
"""

from __future__ import annotations

import gc
import http.server
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil
import pytest

from tests.conftest import free_port, leak_found, seconds_until, settled_count, wait_for
from visionloop.core.cameras import CameraSpec
from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.settings import CameraSettings
from visionloop.simulation.rtsp_cameras import RtspSimulator, SimulatedCamera, prepare_world_camera
from visionloop.streaming.state import CameraState, Transition
from visionloop.streaming.supervisor import RestartPolicy
from visionloop.streaming.worker import CameraRuntime

pytestmark = pytest.mark.integration
FAST = CameraSettings(
    open_timeout_s=3.0,
    read_timeout_s=1.0,
    stall_timeout_s=2.0,
    backoff_initial_s=0.1,
    backoff_max_s=1.0,
    failed_retry_s=60.0,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> SimulatedCamera:
    return prepare_world_camera(
        "cam", "A", 5, seconds=3, fps=15, out_dir=tmp_path_factory.mktemp("videos"), height=180, width=320
    )


@pytest.fixture
def server(video: SimulatedCamera) -> Iterator[RtspSimulator]:
    simulator = RtspSimulator([video], free_port(), user="viewer", password="s3cr3t-pw").start()
    yield simulator
    simulator.stop()


class Recorder:
    """Stands in for the Router: records frames and answers with empty results."""

    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []

    def __call__(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        from visionloop.core.contracts import Detections

        self.frames.extend(frames)
        return [FrameResult(f.camera_id, f.seq or 0, f.capture_ts or 0.0, "test", Detections.empty()) for f in frames]


def _camera(url: str, settings: CameraSettings = FAST, on_transition: Any = None) -> tuple[CameraRuntime, Recorder]:
    recorder = Recorder()
    runtime = CameraRuntime(CameraSpec(id="cam", url=url, target_fps=15), settings, recorder, on_transition)
    runtime.start()
    return runtime, recorder


def _state(runtime: CameraRuntime) -> CameraState:
    return runtime.supervisor.state.state


@pytest.mark.parametrize("client", ["native", "ffmpeg"])
def test_streams_frames_with_latency_fields(server: RtspSimulator, client: str) -> None:
    runtime, recorder = _camera(server.url("cam"), FAST.model_copy(update={"rtsp_client": client}))
    try:
        assert seconds_until(lambda: runtime.frames_processed >= 15, 15)
        status = runtime.status()
        assert status["state"] == "streaming" and status["frames_in"] >= 15
        assert "s3cr3t" not in str(status) and status["url"].startswith("rtsp://***@")
        frame = recorder.frames[-1]
        assert frame.camera_id == "cam" and frame.decode_ms > 0 and frame.queue_ms >= 0
        assert frame.seq and frame.capture_ts and abs(time.time() - frame.capture_ts) < 5
    finally:
        runtime.stop()
    assert _state(runtime) is CameraState.STOPPED


def test_a_camera_that_is_not_h264_streams_through_ffmpeg(tmp_path: Path) -> None:
    """The native client reads H.264 only; an MJPEG camera is handed to FFmpeg and streams all the same."""
    rng = np.random.default_rng(0)
    pictures = [cv2.imencode(".jpg", rng.integers(0, 255, (176, 320, 3), dtype=np.uint8))[1] for _ in range(15)]
    clip = tmp_path / "cam.mjpeg"
    clip.write_bytes(b"".join(picture.tobytes() for picture in pictures))
    simulator = RtspSimulator([SimulatedCamera("mjpeg", clip, 15)], free_port()).start()
    runtime, recorder = _camera(simulator.url("mjpeg"))
    try:
        assert seconds_until(lambda: len(recorder.frames) >= 10, 15), runtime.status()
        assert runtime.status()["state"] == "streaming"
        frame = recorder.frames[-1]
        assert frame.image is not None and frame.image.shape == (176, 320, 3)  # RTP JPEG: sides in 8s
    finally:
        runtime.stop()
        simulator.stop()


# A reconnect attempt after the server came back starts within one capped backoff (with its jitter), or within an
# open timeout when an attempt begun while the server was starting has to time out first; plus slack for a busy
# machine. An uncapped backoff would wait 6.4 s after the six failed attempts below.
PROMPT_S = FAST.backoff_max_s * (1 + RestartPolicy.backoff_jitter) + FAST.open_timeout_s + 1.0


def test_server_killed_and_restarted_streams_again_promptly(video: SimulatedCamera) -> None:
    port = free_port()
    simulator = RtspSimulator([video], port).start()
    transitions: list[Transition] = []
    runtime, _ = _camera(simulator.url("cam"), on_transition=lambda _, t: transitions.append(t))
    try:
        assert seconds_until(lambda: _state(runtime) is CameraState.STREAMING, 15)
        simulator.kill()
        assert seconds_until(lambda: _state(runtime) is not CameraState.STREAMING, 15)
        attempts = runtime.supervisor.counters.attempts
        # Down for a while: several failed attempts, each followed by a backoff up to the cap, never FAILED.
        wait_for(lambda: runtime.supervisor.counters.attempts, lambda n: n >= attempts + 6, 30, 0.05)
        assert _state(runtime) in (CameraState.BACKOFF, CameraState.CONNECTING)
        simulator = RtspSimulator([video], port).start()
        back_at = time.time()
        assert seconds_until(lambda: _state(runtime) is CameraState.STREAMING, 30), "never streamed again"
        resumed = next(
            t.at
            for t in list(transitions)
            if t.at >= back_at and t.new in (CameraState.CONNECTING, CameraState.STREAMING)
        )
        assert resumed - back_at <= PROMPT_S, f"the next attempt began {resumed - back_at:.1f} s after the server"
        assert runtime.status()["reconnects"] >= 1
    finally:
        runtime.stop()
        simulator.stop()


def test_hung_server_is_detected_and_recovers(server: RtspSimulator) -> None:
    runtime, _ = _camera(server.url("cam"))
    try:
        assert seconds_until(lambda: _state(runtime) is CameraState.STREAMING, 15)
        server.pause()
        detected = seconds_until(lambda: _state(runtime) is not CameraState.STREAMING, 30)
        # Noticed by the stall timeout (or the shorter read timeout), with generous slack for a busy machine: a
        # hang left to the operating system's TCP timeouts would take minutes.
        bound = FAST.stall_timeout_s + 6.0
        assert detected is not None and detected <= bound, f"noticed after {detected} s (bound {bound} s)"
        time.sleep(1.0)  # hung for a while longer before it wakes up
        server.resume()
        assert seconds_until(lambda: _state(runtime) is CameraState.STREAMING, 30)
    finally:
        server.resume()
        runtime.stop()


@pytest.mark.parametrize(
    ("make_url", "fragment"),
    [
        (lambda s: s.url("nowhere"), "404"),
        (lambda s: s.url("cam", password="wrong-pass"), "401"),
        (lambda s: s.url("cam", user="", password=""), "401"),
    ],
)
def test_wrong_path_or_credentials_fail_clearly(
    server: RtspSimulator, make_url: Callable[[RtspSimulator], str], fragment: str
) -> None:
    runtime, recorder = _camera(make_url(server))
    try:
        assert seconds_until(lambda: _state(runtime) is CameraState.FAILED, 10)
        error = runtime.status()["last_error"]
        assert fragment in error and "s3cr3t" not in error and "wrong-pass" not in error
        assert recorder.frames == []
    finally:
        runtime.stop()


def _fd_targets() -> set[str]:
    """What each open file descriptor points at (socket:[inode], pipe:[inode], a path), to name what grew."""
    targets = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            targets.add(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:  # closed between the listing and the read
            continue
    return targets


def _resources(previous: tuple[float, float, float] | None) -> tuple[float, float, float]:
    """Threads, file descriptors and RSS (MB), the counts once settled (see settled_count)."""
    gc.collect()
    threads = settled_count(threading.active_count, previous[0] if previous else None)
    fds = settled_count(lambda: len(os.listdir("/proc/self/fd")), previous[1] if previous else None)
    return threads, fds, psutil.Process().memory_info().rss / 2**20


LEAK_SNAPSHOTS = (2, 11, 20)  # after the cycles that warm every code path, then twice 9 cycles more
LEAK_WINDOW = LEAK_SNAPSHOTS[2] - LEAK_SNAPSHOTS[1]
LEAK_LIMITS = {"threads": (1, 1), "file descriptors": (2, 1), "RSS (MB)": (20, 10)}  # (slack, noise)


def _leaks(snapshots: list[tuple[float, float, float]]) -> list[str]:
    series = zip(*snapshots, strict=True)
    found = (leak_found(what, counts, *LEAK_LIMITS[what]) for what, counts in zip(LEAK_LIMITS, series, strict=True))
    return [reason for reason in found if reason]


def test_twenty_reconnect_cycles_leak_nothing(video: SimulatedCamera) -> None:
    """A leak grows on every window of reconnects. This pytest process also holds whatever earlier tests left
    running (a CI run saw file descriptors 41, 41, 46 once), so a count that stepped over one window gets one more:
    a step taken once is not a leak, one that comes again is."""
    port = free_port()
    simulator = RtspSimulator([video], port).start()
    runtime, recorder = _camera(simulator.url("cam"))
    snapshots: list[tuple[float, float, float]] = []
    targets: list[set[str]] = []

    def reconnect(cycle: int) -> None:
        nonlocal simulator
        simulator.kill()
        assert seconds_until(lambda: _state(runtime) is not CameraState.STREAMING, 15), f"cycle {cycle}"
        simulator = RtspSimulator([video], port).start()
        assert seconds_until(lambda: _state(runtime) is CameraState.STREAMING, 30), f"cycle {cycle}"
        frames_before = len(recorder.frames)
        assert seconds_until(lambda: len(recorder.frames) > frames_before, 15), f"cycle {cycle}"

    def snapshot() -> None:
        snapshots.append(_resources(snapshots[-1] if snapshots else None))
        targets.append(_fd_targets())

    try:
        assert seconds_until(lambda: _state(runtime) is CameraState.STREAMING, 15)
        for cycle in range(1, LEAK_SNAPSHOTS[-1] + 1):
            reconnect(cycle)
            if cycle in LEAK_SNAPSHOTS:
                snapshot()
        if _leaks(snapshots):
            for cycle in range(LEAK_SNAPSHOTS[-1] + 1, LEAK_SNAPSHOTS[-1] + LEAK_WINDOW + 1):
                reconnect(cycle)
            snapshot()
        assert runtime.status()["reconnects"] >= LEAK_SNAPSHOTS[-1]
        leaks = _leaks(snapshots)
        assert not leaks, f"{leaks}; file descriptors new since the first snapshot: {sorted(targets[-1] - targets[0])}"
    finally:
        runtime.stop()
        simulator.stop()


def test_nothing_listening_backs_off_and_keeps_trying() -> None:
    runtime, _ = _camera(f"rtsp://127.0.0.1:{free_port()}/cam")
    try:
        assert seconds_until(lambda: runtime.status()["reconnects"] >= 2, 10)
        assert _state(runtime) in (CameraState.BACKOFF, CameraState.CONNECTING)
        assert "connection refused" in runtime.status()["last_error"]
    finally:
        runtime.stop()


def test_truncated_file_and_non_video_url_get_clear_states(video: SimulatedCamera, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    runtime, _ = _camera(str(truncated))
    try:
        assert seconds_until(lambda: _state(runtime) is CameraState.FAILED, 10)
        assert "not a video" in runtime.status()["last_error"] or "Invalid" in runtime.status()["last_error"]
    finally:
        runtime.stop()

    class TextHandler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>not a camera</html>" * 50
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TextHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    runtime, _ = _camera(f"http://127.0.0.1:{httpd.server_address[1]}/index.html")
    try:
        assert seconds_until(lambda: _state(runtime) is CameraState.FAILED, 10)
    finally:
        runtime.stop()
        httpd.shutdown()
        httpd.server_close()


def test_a_file_is_read_in_full_at_its_target_rate(video: SimulatedCamera) -> None:
    runtime, recorder = _camera(str(video.video))
    try:
        assert runtime.buffer.mode.value == "every"
        assert seconds_until(lambda: len(recorder.frames) >= 30, 15)
        seqs = [f.seq for f in recorder.frames]
        assert seqs == sorted(seqs) and runtime.buffer.skipped == 0
    finally:
        runtime.stop()
