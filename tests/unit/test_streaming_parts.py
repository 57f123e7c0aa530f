from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from visionloop.core.cameras import CameraSpec, load_camera_file
from visionloop.core.errors import ConfigError
from visionloop.core.redaction import redact
from visionloop.core.settings import CameraSettings
from visionloop.streaming.buffers import BufferMode, CapturedFrame, FrameBuffer
from visionloop.streaming.opening import create_source
from visionloop.streaming.sources import DecodedFrame, SourceError, SourceOptions, classify
from visionloop.streaming.state import ALLOWED, CameraState, IllegalTransition, StateMachine
from visionloop.streaming.supervisor import CameraSupervisor, RestartPolicy
from visionloop.streaming.worker import CameraRuntime


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/live", "rtsp://***@10.0.0.5:554/live"),
        ("failed: 'rtsps://u:p%40ss@cam/x' (401)", "failed: 'rtsps://***@cam/x' (401)"),
        ("http://token@host/mjpg and rtsp://a:b@c/d", "http://***@host/mjpg and rtsp://***@c/d"),
        ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
        ("/videos/a@b.mp4", "/videos/a@b.mp4"),
    ],
)
def test_credentials_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_state_machine_follows_the_table() -> None:
    seen = []
    machine = StateMachine(on_change=seen.append)
    assert machine.to(CameraState.STREAMING, "frames")
    assert not machine.to(CameraState.STREAMING)  # no-op
    machine.to(CameraState.STALLED, "quiet")
    machine.to(CameraState.BACKOFF)
    with pytest.raises(IllegalTransition, match="backoff -> streaming"):
        machine.to(CameraState.STREAMING)
    machine.to(CameraState.STOPPED)
    assert [t.new for t in seen] == [
        CameraState.STREAMING,
        CameraState.STALLED,
        CameraState.BACKOFF,
        CameraState.STOPPED,
    ]
    assert ALLOWED[CameraState.STOPPED] == frozenset()


def test_a_stall_that_ends_in_a_permanent_error_can_fail_and_the_state_keeps_its_reason() -> None:
    machine = StateMachine()
    assert machine.reason == "starting"
    machine.to(CameraState.STALLED, "no frame for 3.1 s")
    assert machine.reason == "no frame for 3.1 s"
    # A read that stalled and then proved the stream corrupt: FAILED, not an IllegalTransition killing the watchdog.
    machine.to(CameraState.FAILED, "the file is corrupt")
    assert (machine.state, machine.reason) == (CameraState.FAILED, "the file is corrupt")


def _frame(seq: int) -> CapturedFrame:
    return CapturedFrame(np.zeros((2, 2, 3), np.uint8), seq, time.time(), 0.1, time.monotonic())


def test_latest_buffer_keeps_the_newest_and_counts_the_rest() -> None:
    buffer = FrameBuffer(BufferMode.LATEST, capacity=2)
    for seq in range(5):
        assert buffer.put(_frame(seq))
    assert buffer.skipped == 3
    assert [f.seq for f in buffer.take(10, 0.1)] == [3, 4]
    assert buffer.take(1, 0.05) == []


def test_every_buffer_waits_for_room_instead_of_dropping() -> None:
    buffer = FrameBuffer(BufferMode.EVERY, capacity=1)
    assert buffer.put(_frame(0))
    assert not buffer.put(_frame(1), timeout_s=0.05)  # full, nobody took: not added, not dropped
    threading.Timer(0.1, lambda: buffer.take(1, 0.1)).start()
    assert buffer.put(_frame(2), timeout_s=2.0)
    assert buffer.skipped == 0


def test_backoff_grows_caps_and_jitters() -> None:
    policy = RestartPolicy(backoff_initial_s=0.25, backoff_max_s=2.0, backoff_jitter=0.2)
    rng = random.Random(0)
    delays = [policy.backoff(n, rng) for n in range(1, 9)]
    assert 0.2 <= delays[0] <= 0.3
    assert all(d <= 2.0 * 1.2 for d in delays)
    assert delays[-1] >= 2.0 * 0.8


def test_camera_spec_validation_and_redacted_view() -> None:
    spec = CameraSpec(id="gate-2", url="rtsp://admin:secret@10.1.1.1/s1")
    assert spec.public()["url"] == "rtsp://***@10.1.1.1/s1"
    with pytest.raises(ValueError):
        CameraSpec(id="../bad", url="rtsp://x")
    with pytest.raises(ValueError):
        CameraSpec(id="ok", url="rtsp://x", transprot="tcp")  # type: ignore[call-arg]


def test_camera_file_errors_never_show_passwords(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text("cameras:\n  - id: a\n    url: rtsp://u:topsecret@h/x\n    target_fps: -1\n")
    with pytest.raises(ConfigError) as excinfo:
        load_camera_file(path)
    assert "topsecret" not in str(excinfo.value)
    assert load_camera_file(tmp_path / "missing.yaml") == []


def test_unknown_scheme_is_permanent_and_names_the_supported_ones() -> None:
    with pytest.raises(SourceError, match="unsupported URL scheme 'ftp'") as excinfo:
        create_source("ftp://u:pw@host/x.mp4", SourceOptions())
    assert excinfo.value.permanent and "pw" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("exc", "permanent", "fragment"),
    [
        (ConnectionRefusedError(111, "Connection refused"), False, "connection refused"),
        (TimeoutError(110, "timed out"), False, "timed out"),
        (FileNotFoundError(2, "No such file"), True, "file not found"),
    ],
)
def test_errors_are_classified(exc: BaseException, permanent: bool, fragment: str) -> None:
    error = classify(exc)
    assert error.permanent is permanent and fragment in str(error)


def _captured(seq: int, capture_ts: float) -> CapturedFrame:
    return CapturedFrame(np.zeros((2, 2, 3), np.uint8), seq, capture_ts, 1.0, time.monotonic())


def test_a_live_camera_sends_each_frame_on_arrival_thinned_to_its_target_rate() -> None:
    spec = CameraSpec(id="cam", url="rtsp://example/x", target_fps=10)
    runtime = CameraRuntime(spec, CameraSettings(), send=lambda frames: [])
    # A 30 fps camera with a 10 fps target: every third frame goes, the moment it arrives (no clock to wait for).
    sent = [f.seq for seq in range(12) for f in runtime._due([_captured(seq, seq / 30)])]
    assert sent == [0, 3, 6, 9]
    assert runtime.buffer.skipped == 8
    # Frames that piled up while a call was in flight: only the newest goes, the rest count as skipped.
    assert [f.seq for f in runtime._due([_captured(20, 1.0), _captured(21, 1.2)])] == [21]
    assert runtime.buffer.skipped == 9


def test_a_file_sends_every_frame() -> None:
    spec = CameraSpec(id="cam", url="file:///tmp/clip.mp4", target_fps=10)
    runtime = CameraRuntime(spec, CameraSettings(), send=lambda frames: [])
    frames = [_captured(seq, 0.0) for seq in range(3)]
    assert runtime._due(frames) == frames and runtime.buffer.skipped == 0


def test_no_frame_in_time_sends_nothing() -> None:
    runtime = CameraRuntime(CameraSpec(id="cam", url="rtsp://example/x"), CameraSettings(), send=lambda frames: [])
    assert runtime._due([]) == []


def _yuv_picture(value: int) -> Any:
    import av

    bgr = np.full((36, 64, 3), value, np.uint8)
    return av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")


def test_a_captured_frame_is_converted_on_first_use_and_once() -> None:
    picture = _yuv_picture(120)
    expected = picture.to_ndarray(format="bgr24")
    frame = CapturedFrame(picture, 1, 0.0, 1.0, time.monotonic())
    assert not frame.converted
    image = frame.image
    assert frame.converted and image.shape == (36, 64, 3)
    assert np.abs(image.astype(int) - expected).max() <= 3  # OpenCV's I420 conversion, within 3 of libswscale's
    assert frame.image is image  # the same array: converted once


def test_a_live_camera_converts_only_the_frames_it_sends() -> None:
    spec = CameraSpec(id="cam", url="rtsp://example/x", target_fps=10)
    runtime = CameraRuntime(spec, CameraSettings(), send=lambda frames: [])
    frames = [CapturedFrame(_yuv_picture(seq * 10), seq, seq / 30, 1.0, time.monotonic()) for seq in range(6)]
    sent = runtime._encoded([f for frame in frames for f in runtime._due([frame])])
    assert [f.seq for f in sent] == [0, 3]
    assert [frame.converted for frame in frames] == [True, False, False, True, False, False]
    assert all(f.image.shape == (36, 64, 3) for f in sent)


class _Unconvertible:
    def to_ndarray(self, format: str) -> Any:
        raise ValueError("unsupported pixel format")


def test_a_frame_that_cannot_be_converted_is_counted_and_not_sent() -> None:
    runtime = CameraRuntime(CameraSpec(id="cam", url="file:///tmp/x.mp4"), CameraSettings(), send=lambda frames: [])
    good = _captured(2, 0.0)
    sent = runtime._encoded([CapturedFrame(_Unconvertible(), 1, 0.0, 1.0, time.monotonic()), good])
    assert [f.seq for f in sent] == [2]
    status = runtime.status()
    assert status["frames_failed"] == 1 and "could not be converted" in (status["last_error"] or "")


def test_the_capture_thread_converts_a_frame_the_sender_takes_next_and_leaves_the_rest() -> None:
    buffer = FrameBuffer(BufferMode.LATEST, capacity=2)
    supervisor = CameraSupervisor("cam", "rtsp://example/x", buffer, SourceOptions(), RestartPolicy())
    supervisor._push(DecodedFrame(_yuv_picture(10), 1.0))  # empty buffer: it goes next, converted off the sender
    supervisor._push(DecodedFrame(_yuv_picture(20), 1.0))  # one waits already: the sender is behind
    supervisor._push(DecodedFrame(_yuv_picture(30), 1.0))  # the first is dropped, converted for nothing
    assert [(f.seq, f.converted) for f in buffer.take(5, timeout_s=0.1)] == [(2, False), (3, False)]
    assert buffer.skipped == 1


def _frames_held_back(path: Path, live: bool) -> int:
    """Packets fed to a decoder configured as the sources configure it, less the frames it handed out."""
    import av

    from visionloop.streaming.sources import DECODE_THREADS, configure_decoder

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        configure_decoder(stream, DECODE_THREADS, live)
        fed = decoded = 0
        for packet in container.demux(stream):
            if packet.size:  # the demuxer's last, empty packet flushes the decoder
                fed += 1
                decoded += len(packet.decode())
    return fed - decoded


def test_a_live_stream_is_decoded_without_holding_frames_back(tmp_path: Path) -> None:
    from visionloop.simulation.clips import encode_h264, render_clip

    clip = tmp_path / "clip.264"
    clip.write_bytes(b"".join(encode_h264(list(render_clip(20, 160, 96, seed=1)), fps=15)))
    assert _frames_held_back(clip, live=True) == 0  # each frame out with its own packet: no added age
    assert _frames_held_back(clip, live=False) == 2  # files keep frame threading: DECODE_THREADS - 1 frames held


def test_the_capture_thread_converts_ahead_only_frames_that_will_be_sent() -> None:
    spec = CameraSpec(id="cam", url="rtsp://example/x", target_fps=5)
    runtime = CameraRuntime(spec, CameraSettings(), send=lambda frames: [])
    assert runtime._will_send(10.0)  # nothing sent yet
    runtime._due([CapturedFrame(_yuv_picture(10), 1, 10.0, 1.0, time.monotonic())])
    assert not runtime._will_send(10.05)  # a fifth of a second between frames at 5 fps
    assert runtime._will_send(10.2)
    gated_spec = CameraSpec(id="cam", url="rtsp://example/x", target_fps=5, motion={"enabled": True})
    gated = CameraRuntime(gated_spec, CameraSettings(), send=lambda frames: [])
    assert not gated._will_send(10.0)  # motion decides first, on the grey plane: no colour conversion ahead
