from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from visionloop.core.errors import ModelLoadError
from visionloop.serving.backends import BackendOptions, InferenceBackend, create_backend
from visionloop.serving.backends.onnx_backend import choose_providers


@pytest.fixture
def onnx_model(var_dir: Path) -> Path:
    return var_dir / "models" / "v1" / "model.onnx"


def test_missing_model_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(ModelLoadError, match=str(missing)):
        create_backend("onnxruntime", BackendOptions(missing))


def test_corrupt_model_names_the_path(tmp_path: Path) -> None:
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelLoadError, match=f"cannot load ONNX model '{corrupt}'"):
        create_backend("onnxruntime", BackendOptions(corrupt))


def test_unknown_backend_lists_the_valid_ones(onnx_model: Path) -> None:
    with pytest.raises(ModelLoadError, match="choose one of: onnxruntime, ultralytics"):
        create_backend("tensorrt", BackendOptions(onnx_model))
    assert InferenceBackend.available() == ["onnxruntime", "ultralytics"]


@pytest.mark.parametrize(
    ("device", "available", "expected"),
    [
        ("auto", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
        ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
        ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
        ("cuda", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    ],
)
def test_provider_choice(device: str, available: list[str], expected: list[str]) -> None:
    assert choose_providers(device, available) == expected


def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match="no CUDA execution provider"):
        choose_providers("cuda", ["CPUExecutionProvider"])


def test_onnx_backend_predicts_per_frame_in_frame_coordinates(onnx_model: Path) -> None:
    # An untrained model scores everything near zero: a zero threshold makes it return boxes to check.
    backend = create_backend(
        "onnxruntime", BackendOptions(onnx_model, imgsz=320, conf_threshold=0.0, max_detections=50)
    )
    assert backend.class_names == ["circle", "square", "triangle", "star", "cross"]  # from the ONNX metadata
    rng = np.random.default_rng(0)
    frames = [
        rng.integers(0, 255, (360, 640, 3), dtype=np.uint8),
        rng.integers(0, 255, (480, 640, 3), dtype=np.uint8),
        rng.integers(0, 255, (100, 60, 3), dtype=np.uint8),
    ]
    prediction = backend.predict(frames)
    assert len(prediction.detections) == 3
    for frame, detections in zip(frames, prediction.detections, strict=True):
        assert 0 < len(detections) <= 50
        assert detections.xyxy[:, [0, 2]].max() <= frame.shape[1]
        assert detections.xyxy[:, [1, 3]].max() <= frame.shape[0]
        assert detections.class_scores is not None and detections.class_scores.shape == (len(detections), 5)
    assert prediction.inference_ms > 0
    assert backend.predict([]).detections == []


def test_operating_threshold_filters(onnx_model: Path) -> None:
    backend = create_backend("onnxruntime", BackendOptions(onnx_model, conf_threshold=0.25))
    frame = np.full((360, 640, 3), 90, np.uint8)
    assert all(float(c) > 0.25 for c in backend.predict([frame]).detections[0].confidence)


def test_ultralytics_is_never_used_before_its_offline_settings(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "from pathlib import Path\n"
        "from visionloop.learning.export import export_onnx\n"
        "from visionloop.core.errors import VisionloopError\n"
        "try:\n"
        "    export_onnx(Path('x.pt'), 320, Path('x.onnx'))\n"
        "except VisionloopError as exc:\n"
        "    print('refused:', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "HOME": str(tmp_path)},
    )
    assert "refused: internal: call visionloop.offline.prepare_ultralytics()" in out.stdout, out.stderr
    assert not (tmp_path / ".config" / "Ultralytics").exists()
