"""int8 models: a registry version gets an int8 copy, serving resolves it at int8, and a version without one is
served at fp32 with a warning instead of failing."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import make_settings
from visionloop.core.imaging import encode_jpeg
from visionloop.core.model_setup import registry_for
from visionloop.core.registry import INT8_ONNX_FILE
from visionloop.learning.quantize import register_int8_copy
from visionloop.serving.backends import BackendOptions, create_backend
from visionloop.serving.model_source import resolve_for_backend
from visionloop.simulation.world import load_domains
from visionloop.simulation.world.video import world_frames


def tiny_dataset(root: Path, images: int = 4) -> Path:
    """A YOLO data set of a few world frames (one made-up box each: calibration reads only the images)."""
    world = load_domains(Path("configs/domains.yaml"))["A"]
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i, (image, _) in enumerate(world_frames(world, 7, images, 180, 320)):
            (root / "images" / split / f"f{i}.jpg").write_bytes(encode_jpeg(image))
            (root / "labels" / split / f"f{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n")  # one box: a valid gold set
    names = "\n".join(f"  {i}: c{i}" for i in range(5))
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return root / "data.yaml"


def test_an_int8_copy_is_a_new_version_served_at_int8(var_dir: Path, tmp_path: Path) -> None:
    settings = make_settings(var_dir, serving__int8_calibration_images="3")
    registry = registry_for(settings)
    source = registry.champion()
    copy = register_int8_copy(settings, source, tiny_dataset(tmp_path / "data"))

    assert copy.version != source.version and copy.meta["int8_of"] == source.version
    assert not (source.path / INT8_ONNX_FILE).exists()  # the published version is untouched
    graph = onnx.load(str(copy.int8_path)).graph
    assert any(node.op_type == "QuantizeLinear" for node in graph.node)
    assert copy.int8_path.stat().st_size < 0.5 * copy.onnx_path.stat().st_size  # int8 weights, not float

    resolved = resolve_for_backend(registry, copy.version, "onnxruntime", "int8")
    assert resolved.precision == "int8" and resolved.path == copy.int8_path
    assert resolve_for_backend(registry, copy.version, "onnxruntime", "fp32").path == copy.onnx_path
    backend = create_backend("onnxruntime", BackendOptions(resolved.path, 320, 0.01, 0.45, 100, "cpu", 1))
    prediction = backend.predict([np.full((180, 320, 3), 90, np.uint8)])
    assert len(prediction.detections) == 1


def test_a_version_without_int8_is_served_at_fp32_and_says_so(var_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = registry_for(make_settings(var_dir))
    with caplog.at_level(logging.WARNING, logger="visionloop.serving.model_source"):
        resolved = resolve_for_backend(registry, "champion", "onnxruntime", "int8")
    assert resolved.precision == "fp32" and resolved.path.name == "model.onnx"
    assert "has no model.int8.onnx" in caplog.text and "visionloop models quantize" in caplog.text
