from __future__ import annotations

from contextlib import ExitStack as DoesNotRaise
from typing import Any

import numpy as np
import pytest

from visionloop.core.contracts import Detections, FrameResult, ModelRole, StageLatency


@pytest.mark.parametrize(
    ("xyxy", "confidence", "class_id", "expectation"),
    [
        ([[0, 0, 10, 10]], [0.5], [1], DoesNotRaise()),
        (np.zeros((0, 4)), [], [], DoesNotRaise()),
        ([], [], [], DoesNotRaise()),
        ([[0, 0, 10]], [0.5], [1], pytest.raises(ValueError, match=r"shape \(N, 4\)")),
        ([[0, 0, 10, 10]], [0.5, 0.4], [1], pytest.raises(ValueError, match="confidence must have shape")),
        ([[0, 0, 10, 10]], [1.5], [1], pytest.raises(ValueError, match=r"\[0, 1\]")),
        ([[0, 0, 10, 10]], [0.5], [-1], pytest.raises(ValueError, match="non-negative")),
        ([[0, 0, 10, 10]], [0.5], [1.5], pytest.raises(ValueError, match="integers")),
        ([[10, 0, 0, 10]], [0.5], [1], pytest.raises(ValueError, match="x2 >= x1")),
        ([[0, 0, np.nan, 10]], [0.5], [1], pytest.raises(ValueError, match="NaN")),
    ],
)
def test_detections_are_validated(xyxy: Any, confidence: Any, class_id: Any, expectation: Any) -> None:
    with expectation:
        detections = Detections(np.asarray(xyxy), np.asarray(confidence), np.asarray(class_id))
        assert detections.xyxy.dtype == np.float32
        assert detections.class_id.dtype == np.int32


def _two_boxes() -> Detections:
    return Detections(
        xyxy=np.array([[10, 20, 110, 70], [0, 0, 64, 36]], np.float32),
        confidence=np.array([0.9, 0.3], np.float32),
        class_id=np.array([2, 0], np.int32),
        class_scores=np.array([[0.1, 0.0, 0.9], [0.3, 0.2, 0.1]], np.float32),
    )


def test_to_yolo_normalises_centre_and_size() -> None:
    lines = _two_boxes().to_yolo(width=640, height=360)
    assert lines[0] == "2 0.093750 0.125000 0.156250 0.138889"
    assert lines[1].startswith("0 0.050000 0.050000 0.100000 0.100000")


def test_to_label_studio_uses_percent_and_names() -> None:
    results = _two_boxes().to_label_studio(640, 360, ["circle", "square", "triangle"])
    first = results[0]
    assert first["value"]["rectanglelabels"] == ["triangle"]
    assert first["value"]["x"] == pytest.approx(100 * 10 / 640)
    assert first["value"]["height"] == pytest.approx(100 * 50 / 360)
    assert first["score"] == pytest.approx(0.9)


def test_dict_round_trip_keeps_everything() -> None:
    detections = _two_boxes()
    again = Detections.from_dict(detections.to_dict(["circle", "square", "triangle"]))
    np.testing.assert_allclose(again.xyxy, detections.xyxy)
    np.testing.assert_allclose(again.confidence, detections.confidence, atol=1e-5)
    np.testing.assert_array_equal(again.class_id, detections.class_id)
    assert again.class_scores is not None


def test_from_onnx_undoes_the_letterbox() -> None:
    # A 640x360 frame scaled by 0.5 into a 320x192 input with 6 px of padding at the top.
    candidates = np.zeros((3, 4 + 2), np.float32)
    candidates[1] = [60, 6 + 30, 40, 20, 0.2, 0.8]  # centre (60, 36) in network pixels
    detections = Detections.from_onnx(candidates, [1], scale=0.5, pad=(0.0, 6.0), frame_shape=(360, 640))
    np.testing.assert_allclose(detections.xyxy[0], [80, 40, 160, 80])
    assert detections.class_id[0] == 1
    assert detections.confidence[0] == pytest.approx(0.8)


def test_from_onnx_clips_to_the_frame() -> None:
    candidates = np.array([[5, 5, 40, 40, 0.9]], np.float32)
    detections = Detections.from_onnx(candidates, [0], scale=1.0, pad=(0.0, 0.0), frame_shape=(100, 100))
    np.testing.assert_allclose(detections.xyxy[0], [0, 0, 25, 25])


def test_frame_result_survives_the_stream() -> None:
    result = FrameResult(
        camera_id="gate-2",
        seq=41,
        capture_ts=1700000000.25,
        model_version="v3",
        detections=_two_boxes(),
        latency=StageLatency(decode_ms=1.0, queue_ms=2.0, inference_ms=10.0, post_ms=0.5),
        role=ModelRole.SHADOW,
        frame_width=640,
        frame_height=360,
    )
    fields = result.to_stream_fields()
    assert fields["camera_id"] == "gate-2" and fields["role"] == "shadow"
    again = FrameResult.from_stream_fields({k.encode(): v.encode() for k, v in fields.items()})
    assert again.camera_id == "gate-2" and again.seq == 41 and again.role is ModelRole.SHADOW
    assert again.latency.total_ms == pytest.approx(13.5)
    assert len(again.detections) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"camera_id": ""}, "camera_id"),
        ({"seq": -1}, "seq"),
        ({"model_version": ""}, "model_version"),
        ({"role": "referee"}, "referee"),
    ],
)
def test_frame_result_is_validated(kwargs: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "camera_id": "c",
        "seq": 0,
        "capture_ts": 0.0,
        "model_version": "v1",
        "detections": Detections.empty(),
    }
    with pytest.raises(ValueError, match=message):
        FrameResult(**{**base, **kwargs})


def test_negative_latency_is_rejected() -> None:
    with pytest.raises(ValueError, match="queue_ms"):
        StageLatency(queue_ms=-1)
