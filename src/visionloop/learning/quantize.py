"""int8 models: ONNX Runtime static quantization (QDQ), calibrated on the images the model was trained on.

Static quantization fixes each activation's int8 range from a calibration set, so the served model does no range
work per frame; the QDQ format keeps the graph a plain ONNX file any execution provider can load (CPU kernels use
VNNI where the CPU has it). Calibration images are the model's own training images, pushed through the serving
letterbox, so the ranges are those the model meets in service: the synthetic world for the bootstrap model, the
labelled camera frames for a challenger.
"""

from __future__ import annotations

import logging
import random
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from visionloop.core.errors import ModelLoadError
from visionloop.core.model_setup import registry_for
from visionloop.core.registry import INT8_ONNX_FILE, ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.evaluation import read_bgr, serving_map50, split_images
from visionloop.serving.backends.letterbox import batch_shape, letterbox_batch

log = logging.getLogger(__name__)
ARITHMETIC = ("Conv", "Mul", "Add", "Sub", "Div", "Concat")
FALLBACK_FLOAT_TAIL = 8


class LetterboxCalibration:
    """ONNX Runtime's CalibrationDataReader protocol: one letterboxed image per call, as the service feeds them."""

    def __init__(self, input_name: str, images: Sequence[npt.NDArray[np.uint8]], imgsz: int) -> None:
        self._input_name = input_name
        self._tensors: Iterator[npt.NDArray[np.float32]] = (
            letterbox_batch([image], batch_shape([image.shape[:2]], imgsz)).tensor for image in images
        )

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        tensor = next(self._tensors, None)
        return None if tensor is None else {self._input_name: tensor}

    def rewind(self) -> None:  # part of the protocol; one pass is all static calibration needs
        return None


def calibration_images(data_yaml: Path, count: int, seed: int = 0) -> list[npt.NDArray[np.uint8]]:
    """Up to ``count`` training images of a YOLO data set (a fixed sample, so a version quantizes the same way)."""
    labelled, _ = split_images(data_yaml, "train")
    chosen = random.Random(seed).sample(labelled, min(count, len(labelled)))
    return [read_bgr(item.image) for item in chosen]


def float_box_decode(model_path: Path) -> list[str]:
    """Nodes kept in float: the box decode after the DFL (YOLOv8-style heads: anchors plus distances, times the
    stride). Quantizing it rounds pixel coordinates to a few hundred steps over the whole frame and costs boxes their
    IoU; it is a sliver of the compute. Without a DFL the last few arithmetic nodes play that part."""
    import onnx

    nodes = list(onnx.load(str(model_path), load_external_data=False).graph.node)
    dfl = [i for i, node in enumerate(nodes) if "dfl" in node.name.lower() and node.op_type == "Conv"]
    start = dfl[-1] + 1 if dfl else max(0, len(nodes) - FALLBACK_FLOAT_TAIL)
    return [node.name for node in nodes[start:] if node.op_type in ARITHMETIC]


def quantize_int8(
    fp32_model: Path,
    images: Sequence[npt.NDArray[np.uint8]],
    imgsz: int,
    out_file: Path,
) -> Path:
    """Write the int8 (QDQ) version of ``fp32_model`` to ``out_file``, calibrated on ``images``."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not images:
        raise ModelLoadError("int8 quantization needs at least one calibration image")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="visionloop-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_model), str(prepared), skip_symbolic_shape=True)
        input_name = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        options: dict[str, Any] = {"ActivationSymmetric": False, "WeightSymmetric": True}
        quantize_static(
            str(prepared),
            str(out_file),
            LetterboxCalibration(input_name, images, imgsz),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=float_box_decode(prepared),
            extra_options=options,
        )
    log.info("wrote int8 model %s (%d calibration images)", out_file, len(images))
    return out_file


def int8_for(settings: Settings, onnx: Path, data_yaml: Path, work: Path) -> Path | None:
    """The int8 file of ``onnx`` calibrated on ``data_yaml``'s training images, in ``work``; None (logged) when it
    cannot be made: the fp32 model is registered and served regardless."""
    try:
        images = calibration_images(data_yaml, settings.serving.int8_calibration_images)
        return quantize_int8(onnx, images, settings.serving.imgsz, work / INT8_ONNX_FILE)
    except Exception as exc:  # onnxruntime raises untyped errors; an int8 file is an optimisation, not a need
        log.error("int8 quantization of %s failed, registering fp32 only: %s", onnx, exc)
        return None


def register_int8_copy(
    settings: Settings, version: ModelVersion, data_yaml: Path, gold_yaml: Path | None = None
) -> ModelVersion:
    """Register a new version holding ``version``'s files plus an int8 file (published versions never change).

    Its meta is the source's, with ``int8_of`` naming the source and, given a gold set, both precisions' gold
    mAP50 at the operating point (what ``int8_map50_drop`` reports)."""
    if not version.onnx_path.is_file():
        raise ModelLoadError(f"{version.version} has no {version.onnx_path.name} to quantize")
    with tempfile.TemporaryDirectory(prefix="visionloop-int8-") as tmp:
        int8 = quantize_int8(
            version.onnx_path,
            calibration_images(data_yaml, settings.serving.int8_calibration_images),
            settings.serving.imgsz,
            Path(tmp) / INT8_ONNX_FILE,
        )
        meta: dict[str, Any] = {
            **{k: v for k, v in version.meta.items() if k not in ("version", "created")},
            "int8_of": version.version,
        }
        if gold_yaml is not None:
            meta["int8_gold_map50"] = {
                "fp32": serving_map50(settings, version.onnx_path, gold_yaml, version.class_names),
                "int8": serving_map50(settings, int8, gold_yaml, version.class_names),
            }
        torch_file = version.torch_path if version.torch_path.is_file() else None
        return registry_for(settings).register(version.onnx_path, torch_file, meta, int8_file=int8)
