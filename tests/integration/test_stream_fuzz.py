"""Fuzzed camera streams: damaged H.264, a resolution change mid-stream, no video track, not media at all.

Every stream runs through the camera worker's own code (a CameraRuntime: supervisor, PyAV source, buffer, sender)
as a file camera and, where the GStreamer simulator can serve it, as an RTSP camera. The inputs are made here, in
tmp_path, from the synthetic world. Each camera must settle in a clear state with a human-readable reason, keep
answering ``status()`` with both of its threads alive, and deliver every frame that can be decoded: past a damaged
stretch, the frames after it keep flowing. A band at the top of each frame carries its index (as a grey level),
so the test can tell which frames came through. The resolution change is sent to the real Detector (ONNX).

Which damaged packets fail and which the decoder conceals depends on its thread count; the sources decode with a
fixed one (streaming.sources.DECODE_THREADS, not FFmpeg's choice by core count), so every machine sees the same.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from tests.conftest import free_port, wait_for
from tests.reliability import record_reliability
from visionloop.core.cameras import CameraSpec
from visionloop.core.contracts import Detections, EncodedFrame, FrameResult
from visionloop.core.settings import CameraSettings, ServingSettings
from visionloop.serving.detector import DetectorCore, DetectorSpec, FrameRequest, frame_results
from visionloop.simulation.clips import encode_h264, render_clip
from visionloop.simulation.rtsp_cameras import RtspSimulator, SimulatedCamera
from visionloop.streaming.sources import DECODE_THREADS, PyAVSource, SourceError, SourceOptions
from visionloop.streaming.state import CameraState
from visionloop.streaming.worker import CameraRuntime

pytestmark = pytest.mark.integration
FPS = 15
GOP = FPS  # encode_h264 puts a keyframe every second: frames 0, 15 and 30 of a 45-frame clip
FAST = CameraSettings(
    open_timeout_s=3.0,
    read_timeout_s=1.0,
    stall_timeout_s=2.0,
    backoff_initial_s=0.1,
    backoff_max_s=0.5,
    failed_retry_s=60.0,
)
BAND_ROWS, BAND_BASE, BAND_STEP = 16, 20, 5
CONTAINER_CASES = 40  # damaged copies per container format


# -- inputs ----------------------------------------------------------------------------------------------------------


def _indexed_clip(frames: int, width: int, height: int, seed: int) -> list[npt.NDArray[np.uint8]]:
    """World frames whose top band's grey level says the frame's index."""
    clip = render_clip(frames, width, height, seed=seed)
    for index, image in enumerate(clip):
        image[:BAND_ROWS] = BAND_BASE + BAND_STEP * index
    return clip


def _index(image: npt.NDArray[np.uint8]) -> int | None:
    """The index a cleanly decoded frame carries; None for a frame the decoder concealed (its band is not flat)."""
    band = image[:BAND_ROWS].astype(np.float32)
    if band.std() > 3.0:
        return None
    return round((float(band.mean()) - BAND_BASE) / BAND_STEP)


def _damage(units: list[bytes], recipe: str, seed: int) -> bytes:
    """The clip with its middle second (frames 15-29) damaged; the first and last seconds are left whole."""
    rng = random.Random(seed)
    head, middle, tail = units[:GOP], [bytearray(u) for u in units[GOP : 2 * GOP]], units[2 * GOP :]
    if recipe == "overwrite":
        for _ in range(rng.randint(2, 5)):
            unit = rng.choice(middle)
            start = rng.randrange(len(unit))
            size = min(rng.randint(8, 400), len(unit) - start)
            unit[start : start + size] = rng.randbytes(size)
    elif recipe == "garbage_between_nal_units":
        for position in sorted(rng.sample(range(len(middle)), 4), reverse=True):
            middle.insert(position, bytearray(rng.randbytes(rng.randint(16, 300))))
    elif recipe == "truncated":
        cut = rng.randrange(len(middle))
        middle = [*middle[:cut], middle[cut][: len(middle[cut]) // 2]]
        tail = []  # the file ends inside a frame
    return b"".join([*head, *map(bytes, middle), *tail])


def _every_slice_garbage(units: list[bytes], seed: int) -> bytes:
    """Valid SPS/PPS, then every frame's slice replaced by noise behind a well-formed NAL header."""
    rng = random.Random(seed)
    headers = units[0][: units[0].find(b"\x00\x00\x01\x65")]
    slices = [
        b"\x00\x00\x00\x01" + (b"\x65" if i % GOP == 0 else b"\x41") + rng.randbytes(len(u))
        for i, u in enumerate(units)
    ]
    return headers + b"".join(slices)


def _audio_only(path: Path, container: str, codec: str) -> Path:
    """About two seconds of a tone and nothing else: a file with no video track."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=16_000, layout="mono")
        assert isinstance(stream, av.AudioStream)
        samples, sample_format = stream.codec_context.frame_size or 1024, stream.codec_context.format.name
        wave = np.sin(np.arange(samples) / 8.0)[None, :]
        tone = (wave * 0.3).astype(np.float32) if sample_format.startswith("flt") else (wave * 8000).astype(np.int16)
        for index in range(30):
            frame = av.AudioFrame.from_ndarray(tone, format=sample_format, layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 16_000, index * samples, Fraction(1, 16_000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def clean_units() -> list[bytes]:
    return encode_h264(_indexed_clip(3 * GOP, 320, 240, seed=3), FPS)


@pytest.fixture(scope="module")
def resizing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seconds at 320x240, then three at 640x360, in one raw H.264 stream."""
    small = encode_h264(render_clip(3 * GOP, 320, 240, seed=4), FPS)
    large = encode_h264(render_clip(3 * GOP, 640, 360, seed=5), FPS)
    path = tmp_path_factory.mktemp("resize") / "resize.264"
    path.write_bytes(b"".join(small + large))
    return path


@pytest.fixture(scope="module")
def simulator(
    tmp_path_factory: pytest.TempPathFactory, clean_units: list[bytes], resizing_file: Path
) -> Iterator[RtspSimulator]:
    """One RTSP server: a damaged stream, a resolution change and an audio-only mount."""
    folder = tmp_path_factory.mktemp("rtsp")
    corrupt = folder / "corrupt.264"
    corrupt.write_bytes(_damage(clean_units, "overwrite", seed=11))
    audio = _audio_only(folder / "audio.wav", "wav", "pcm_s16le")
    cameras = [
        SimulatedCamera("corrupt", corrupt, FPS),
        SimulatedCamera("resize", resizing_file, FPS),
        SimulatedCamera("audio", audio, FPS),
    ]
    server = RtspSimulator(cameras, free_port()).start()
    yield server
    server.stop()


@dataclass
class Figures:
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)  # camera -> its status when checked
    damaged_files: dict[str, dict[str, int]] = field(default_factory=dict)  # container -> played/failed/crashed


@pytest.fixture(scope="module")
def figures() -> Iterator[Figures]:
    """What the module saw, recorded as its reliability figures."""
    seen = Figures()
    yield seen
    if seen.streams:
        record_reliability(
            "stream_fuzz",
            {
                "streams": len(seen.streams),
                "dead_workers": sum(1 for status in seen.streams.values() if not status["alive"]),
                "states": dict(Counter(status["state"] for status in seen.streams.values())),
                "per_stream": {name: status["state"] for name, status in sorted(seen.streams.items())},
                "damaged_container_files": seen.damaged_files,
            },
        )


# -- the camera and its sinks ----------------------------------------------------------------------------------------


class Recorder:
    """Stands in for the Detector: keeps each frame's index (None: concealed), answers with empty results."""

    def __init__(self) -> None:
        self.indices: list[int | None] = []

    def __call__(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        self.indices += [_index(frame.decoded()) for frame in frames]
        return [FrameResult(f.camera_id, f.seq or 0, f.capture_ts or 0.0, "test", Detections.empty()) for f in frames]


class DetectorSink:
    """The real Detector's batch function (ONNX), as the camera's frame sink: processed sizes are what it saw."""

    def __init__(self, core: DetectorCore) -> None:
        self.core = core
        self.processed: dict[tuple[int, int], int] = {}

    def __call__(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        replies = self.core.run_batch([FrameRequest([f.decoded() for f in frames], time.perf_counter())])[0]
        results = frame_results(frames, replies)
        for result in results:
            if isinstance(result, FrameResult):
                size = (result.frame_width, result.frame_height)
                self.processed[size] = self.processed.get(size, 0) + 1
        return results


@pytest.fixture(scope="module")
def detector(module_var_dir: Path) -> DetectorCore:
    spec = DetectorSpec(
        model_path=str(module_var_dir / "models" / "v1" / "model.onnx"),
        model_version="v1",
        serving=ServingSettings(backend="onnxruntime"),
        class_names=["circle", "square", "triangle", "star", "cross"],
    )
    return DetectorCore(spec)


def _run(
    name: str,
    url: str,
    send: Callable[[list[EncodedFrame]], list[FrameResult | str]],
    until: Callable[[dict[str, Any]], bool],
    figures: Figures,
    timeout_s: float = 15.0,
    settings: CameraSettings = FAST,
) -> dict[str, Any]:
    """Run one camera until ``until(status)`` holds, check it is still a working camera, stop it, and return its
    status as it was before the stop."""
    runtime = CameraRuntime(CameraSpec(id=name, url=url, target_fps=30), settings, send)
    runtime.start()
    try:
        status = wait_for(runtime.status, until, timeout_s)
        figures.streams[name] = status
        assert status["alive"], f"{name}: a camera thread died: {status}"
        assert status["state_reason"], f"{name}: a state without a reason: {status}"
        return status
    finally:
        runtime.stop()
        assert runtime.status()["state"] == "stopped"


def _failed(status: dict[str, Any]) -> bool:
    return bool(status["state"] == CameraState.FAILED.value)


# -- damaged H.264 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", ["overwrite", "garbage_between_nal_units"])
@pytest.mark.parametrize("seed", [1, 2])
def test_damaged_h264_file_keeps_streaming_the_frames_after_the_damage(
    tmp_path: Path, clean_units: list[bytes], recipe: str, seed: int, figures: Figures
) -> None:
    path = tmp_path / f"{recipe}-{seed}.264"
    path.write_bytes(_damage(clean_units, recipe, seed))
    recorder = Recorder()
    last_second = set(range(2 * GOP, 3 * GOP))

    status = _run(
        f"file-{recipe}-{seed}",
        str(path),
        recorder,
        lambda s: len(last_second & set(recorder.indices)) >= GOP - 2 and recorder.indices.count(0) >= 2,
        figures,
    )
    assert status["state"] == "streaming", status
    # The first second played whole, the last second after the damage came through, and the file looped.
    assert set(range(GOP)) <= set(recorder.indices)
    assert status["frames_processed"] >= 2 * GOP and status["last_error"] is None


def test_truncated_h264_file_plays_what_is_there_and_loops(
    tmp_path: Path, clean_units: list[bytes], figures: Figures
) -> None:
    path = tmp_path / "truncated.264"
    path.write_bytes(_damage(clean_units, "truncated", seed=5))
    recorder = Recorder()

    status = _run("file-truncated", str(path), recorder, lambda s: recorder.indices.count(GOP - 1) >= 3, figures)
    assert status["state"] == "streaming" and status["reconnects"] == 0, status
    assert set(range(GOP)) <= set(recorder.indices)


def test_damaged_h264_over_rtsp_keeps_streaming(simulator: RtspSimulator, figures: Figures) -> None:
    recorder = Recorder()
    last_second = set(range(2 * GOP, 3 * GOP))

    status = _run(
        "rtsp-corrupt",
        simulator.url("corrupt"),
        recorder,
        lambda s: len(last_second & set(recorder.indices)) >= GOP // 2 and s["frames_processed"] >= 4 * GOP,
        figures,
        timeout_s=20,
    )
    assert status["state"] == "streaming", status
    assert len(set(range(GOP)) & set(recorder.indices)) >= GOP // 2


# -- a resolution change mid-stream ------------------------------------------------------------------------------------


def test_resolution_change_in_a_file_reaches_the_detector_at_both_sizes(
    resizing_file: Path, detector: DetectorCore, figures: Figures
) -> None:
    sink = DetectorSink(detector)
    status = _run(
        "file-resize",
        str(resizing_file),
        sink,
        lambda s: sink.processed.get((320, 240), 0) >= 3 * GOP and sink.processed.get((640, 360), 0) >= 3 * GOP,
        figures,
        timeout_s=30,
    )
    assert status["state"] == "streaming" and status["frames_failed"] == 0, status
    assert set(sink.processed) == {(320, 240), (640, 360)}


def test_resolution_change_over_rtsp_reaches_the_detector_at_both_sizes(
    simulator: RtspSimulator, detector: DetectorCore, figures: Figures
) -> None:
    sink = DetectorSink(detector)
    status = _run(
        "rtsp-resize",
        simulator.url("resize"),
        sink,
        lambda s: sink.processed.get((320, 240), 0) >= 5 and sink.processed.get((640, 360), 0) >= 5,
        figures,
        timeout_s=25,
    )
    assert status["state"] == "streaming" and status["frames_failed"] == 0, status


# -- no video track, not media -----------------------------------------------------------------------------------------


def _fails_for_good(status: dict[str, Any], fragment: str) -> None:
    """FAILED with the reason in both places an operator looks, after exactly one attempt: not a retry loop.

    Read when the camera turned FAILED (a transient error goes to BACKOFF, never there): no reconnect had happened,
    so the first attempt's error was taken as permanent. (A wait after ``_run`` would watch a camera already
    stopped; the RTSP case, whose camera still runs, also watches it stay failed.)"""
    assert status["state"] == "failed", status
    assert fragment in status["last_error"] and fragment in status["state_reason"], status
    assert status["reconnects"] == 0, status


@pytest.mark.parametrize(
    ("container", "codec", "suffix"), [("wav", "pcm_s16le", "wav"), ("mpegts", "mp2", "ts"), ("mp4", "aac", "m4a")]
)
def test_audio_only_file_fails_with_no_video_track(
    tmp_path: Path, container: str, codec: str, suffix: str, figures: Figures
) -> None:
    path = _audio_only(tmp_path / f"audio.{suffix}", container, codec)
    status = _run(f"file-audio-{suffix}", str(path), Recorder(), _failed, figures)
    _fails_for_good(status, "no video track")
    assert "audio" in status["last_error"] and status["frames_in"] == 0


def test_audio_only_rtsp_stream_fails_with_no_video_track(simulator: RtspSimulator, figures: Figures) -> None:
    runtime = CameraRuntime(CameraSpec(id="rtsp-audio", url=simulator.url("audio")), FAST, Recorder())
    runtime.start()
    try:
        wait_for(runtime.status, _failed, 10)
        time.sleep(1.0)
        status = runtime.status()
        _fails_for_good(status, "no video track")
        assert status["alive"] and status["frames_in"] == 0
        figures.streams["rtsp-audio"] = status
    finally:
        runtime.stop()


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("noise.264", random.Random(7).randbytes(40_000), "not a video"),
        ("notes.mp4", b"these are not the frames you are looking for\n" * 200, "not a video"),
        ("empty.264", b"", "the file is empty"),
    ],
)
def test_a_file_that_is_not_media_fails_clearly(
    tmp_path: Path, name: str, content: bytes, fragment: str, figures: Figures
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    status = _run(f"file-{name}", str(path), Recorder(), _failed, figures)
    _fails_for_good(status, fragment)
    assert status["frames_in"] == 0


def test_h264_whose_every_frame_is_garbage_fails_instead_of_looping_on_concealment(
    tmp_path: Path, clean_units: list[bytes], figures: Figures
) -> None:
    path = tmp_path / "every-slice-garbage.264"
    path.write_bytes(_every_slice_garbage(clean_units, seed=3))
    status = _run("file-every-slice-garbage", str(path), Recorder(), _failed, figures)
    _fails_for_good(status, "the file is corrupt")
    assert status["corrupt_packets"] > status["frames_in"] and status["last_corruption"], status


@pytest.mark.parametrize("container", ["mpegts", "mp4"])
def test_damaged_containers_end_or_fail_clearly_at_the_source(tmp_path: Path, container: str, figures: Figures) -> None:
    """Random byte ranges over an H.264 MPEG-TS / MP4 file, read once by the camera's source: each either plays to
    its end or stops with a SourceError that says what is wrong. Any other exception is a crash."""
    clean = tmp_path / f"clean.{container}"
    with av.open(str(clean), "w", format=container) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "veryfast", "g": str(GOP), "bf": "0"}
        for index, image in enumerate(render_clip(2 * GOP, 320, 240, seed=6)):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = index
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    data, counts, crashes = clean.read_bytes(), Counter[str](), list[str]()
    for seed in range(CONTAINER_CASES):
        rng, damaged = random.Random(seed), bytearray(data)
        for _ in range(rng.randint(1, 6)):
            start = rng.randrange(len(damaged))
            size = min(rng.randint(1, 400), len(damaged) - start)
            damaged[start : start + size] = rng.randbytes(size)
        path = tmp_path / f"damaged-{seed}.{container}"
        path.write_bytes(damaged)
        source = PyAVSource(str(path), SourceOptions(loop_files=False, decode_threads=DECODE_THREADS))
        try:
            # Each frame converted as the sender would: a decoded picture always converts, damaged or not.
            played = sum(1 for decoded in source.frames() if decoded.picture.to_ndarray(format="bgr24").size)
            counts["played" if played else "played_nothing"] += 1
        except SourceError as exc:
            counts["failed_permanently" if exc.permanent else "failed_transiently"] += 1
            assert len(str(exc)) > 20, exc
        except Exception as exc:  # anything but a SourceError would reach the supervisor as a bug
            counts["crashed"] += 1
            crashes.append(f"seed {seed}: {type(exc).__name__}: {exc}")
        finally:
            source.close()
    figures.damaged_files[container] = dict(counts)
    assert not crashes and counts["played"] > 0 and counts["played_nothing"] == 0, (counts, crashes)
    # A file cannot heal: a damaged one that cannot be read must not be retried like a flaky camera.
    assert counts["failed_transiently"] == 0, counts


# -- the supervisor itself -------------------------------------------------------------------------------------------


def test_a_supervisor_bug_or_a_failing_listener_leaves_a_clear_state_not_a_dead_watchdog(
    tmp_path: Path, clean_units: list[bytes], figures: Figures
) -> None:
    path = tmp_path / "clean.264"
    path.write_bytes(b"".join(clean_units))

    def broken_listener(camera_id: str, transition: object) -> None:
        raise RuntimeError("the events stream is gone")

    settings = FAST.model_copy(update={"failed_retry_s": 0.5})
    runtime = CameraRuntime(CameraSpec(id="bug", url=str(path), target_fps=30), settings, Recorder(), broken_listener)
    real_attempt, calls = runtime.supervisor._run_attempt, []

    def attempt_with_a_bug() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("injected bug")
        real_attempt()

    runtime.supervisor._run_attempt = attempt_with_a_bug  # type: ignore[method-assign]
    runtime.start()
    try:
        failed = wait_for(runtime.status, _failed, 5)
        assert "camera supervisor error: RuntimeError: injected bug" in failed["state_reason"] and failed["alive"]
        status = wait_for(runtime.status, lambda s: s["state"] == "streaming" and s["frames_processed"] > 0, 10)
        assert status["alive"]
        figures.streams["file-supervisor-bug"] = status
    finally:
        runtime.stop()
