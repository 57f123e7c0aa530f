"""The Detector's batch function, tested directly (Ray's local testing mode cannot run @serve.batch)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from visionloop.core.contracts import Detections, EncodedFrame, FrameResult, StageLatency
from visionloop.core.imaging import decode_image, encode_jpeg
from visionloop.core.settings import ServingSettings
from visionloop.serving import detector as detector_module
from visionloop.serving.detector import DetectorCore, DetectorSpec, FrameReply, FrameRequest, frame_results, frames_in


def _core(var_dir: Path) -> DetectorCore:
    spec = DetectorSpec(
        model_path=str(var_dir / "models" / "v1" / "model.onnx"),
        model_version="v1",
        serving=ServingSettings(backend="onnxruntime", conf_threshold=0.0, max_detections=5),
        class_names=["circle", "square", "triangle", "star", "cross"],
    )
    return DetectorCore(spec)


def test_batch_groups_replies_per_call_and_isolates_bad_frames(var_dir: Path) -> None:
    core = _core(var_dir)
    good = encode_jpeg(np.full((180, 320, 3), 100, np.uint8))
    other = encode_jpeg(np.full((240, 320, 3), 30, np.uint8))
    enqueued = time.perf_counter()
    requests = [
        FrameRequest([good, b"not an image", other], enqueued),
        FrameRequest([other], enqueued),
    ]
    assert frames_in(requests) == 4
    grouped = core.run_batch(requests)
    assert [len(g) for g in grouped] == [3, 1]
    first, bad, third = grouped[0]
    assert first.error is None and (first.width, first.height) == (320, 180)
    assert bad.detections is None and bad.error is not None and "not a JPEG or PNG" in bad.error
    assert (third.width, third.height) == (320, 240)
    assert grouped[1][0].model_version == "v1"
    assert first.latency.batch_ms >= 0 and first.latency.inference_ms > 0
    # Every frame of a batch shares one model call, so they report the same inference time.
    assert first.latency.inference_ms == third.latency.inference_ms == grouped[1][0].latency.inference_ms


def test_all_bad_frames_still_answer(var_dir: Path) -> None:
    replies = _core(var_dir).run_batch([FrameRequest([b"", b"\xff\xd8\xff\x00"], time.perf_counter())])[0]
    assert [r.error is not None for r in replies] == [True, True]


def test_info_reports_the_model(var_dir: Path) -> None:
    info = _core(var_dir).info()
    assert (info.model_version, info.backend, info.device) == ("v1", "onnxruntime", "cpu")
    assert info.class_names == ["circle", "square", "triangle", "star", "cross"]


def test_arrays_from_cameras_skip_the_decode_and_answer_like_jpegs(
    var_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = _core(var_dir)
    image = np.full((180, 320, 3), 100, np.uint8)
    decoded: list[int] = []  # the sizes of what was decoded: asserted, not timed (one timing is noise)

    def counting_decode(data: bytes) -> npt.NDArray[np.uint8]:
        decoded.append(len(data))
        return decode_image(data)

    monkeypatch.setattr(detector_module, "decode_image", counting_decode)
    jpeg = encode_jpeg(image)
    (from_array, from_jpeg), *_ = core.run_batch([FrameRequest([image, jpeg], time.perf_counter())])
    assert decoded == [len(jpeg)]  # nothing to decode for the array: it is the frame
    assert from_array.error is None and (from_array.width, from_array.height) == (320, 180)
    assert from_array.detections is not None and from_jpeg.detections is not None


def test_frame_results_add_the_source_stages_and_keep_errors() -> None:
    frames = [
        EncodedFrame("cam", image=np.zeros((4, 4, 3), np.uint8), seq=7, capture_ts=5.0, decode_ms=2.0, queue_ms=3.0),
        EncodedFrame("cam", b"junk", seq=8, capture_ts=6.0),
    ]
    replies = [
        FrameReply(Detections.empty(), StageLatency(decode_ms=0.5, batch_ms=1.5, inference_ms=9.0), "v1", 4, 4),
        FrameReply(None, StageLatency(), "v1", error="corrupt"),
    ]
    first, second = frame_results(frames, replies)
    assert isinstance(first, FrameResult) and (first.seq, first.capture_ts) == (7, 5.0)
    assert (first.latency.decode_ms, first.latency.queue_ms, first.latency.batch_ms) == (2.5, 3.0, 1.5)
    assert second == "corrupt"


def test_a_frame_gives_either_form_on_demand() -> None:
    image = np.full((8, 8, 3), 200, np.uint8)
    from_camera = EncodedFrame("cam", image=image)
    assert from_camera.payload is image and from_camera.decoded() is image
    assert from_camera.encoded().startswith(b"\xff\xd8\xff")  # JPEG made only when someone asks
    upload = EncodedFrame("api", encode_jpeg(image))
    assert upload.payload == upload.data and upload.decoded().shape == (8, 8, 3)
