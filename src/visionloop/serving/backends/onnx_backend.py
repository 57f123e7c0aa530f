"""ONNX Runtime backend: the default; needs no torch. CUDA execution provider where a GPU is present."""

from __future__ import annotations

import ast
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from visionloop.core.contracts import Detections
from visionloop.core.errors import ModelLoadError
from visionloop.serving.backends.base import BackendOptions, BatchPrediction, Frame, InferenceBackend
from visionloop.serving.backends.letterbox import batch_shape, letterbox_batch
from visionloop.serving.backends.nms import nms_keep

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """CUDA first when asked for or (on 'auto') when present; CPU always as the fallback."""
    if device == "cuda" and CUDA_PROVIDER not in available:
        raise ModelLoadError(
            "serving.device is 'cuda' but ONNX Runtime has no CUDA execution provider here: install the 'gpu' "
            "extra (onnxruntime-gpu) on a machine with a GPU, or set serving.device to 'auto' or 'cpu'"
        )
    if device in ("cuda", "auto") and CUDA_PROVIDER in available:
        return [CUDA_PROVIDER, CPU_PROVIDER]
    return [CPU_PROVIDER]


def require_cuda_session(device: str, session_providers: Sequence[str]) -> None:
    """Refuse the CPU fallback on serving.device 'cuda': ORT drops a CUDA provider it cannot load (no driver,
    missing CUDA/cuDNN libraries) with a log line only, and the replica would silently serve from the CPU."""
    if device == "cuda" and CUDA_PROVIDER not in session_providers:
        raise ModelLoadError(
            f"serving.device is 'cuda' but ONNX Runtime could not start its CUDA execution provider (the session "
            f"runs on {', '.join(session_providers) or 'nothing'}): check the NVIDIA driver (nvidia-smi) and the CUDA "
            "and cuDNN libraries onnxruntime-gpu was built for (docker/Dockerfile.cuda has them)"
        )


def _names_from_metadata(metadata: dict[str, str]) -> list[str]:
    raw = metadata.get("names")
    if not raw:
        return []
    try:
        names = ast.literal_eval(raw)  # Ultralytics writes a dict literal; literal_eval runs no code.
    except (ValueError, SyntaxError):
        return []
    if isinstance(names, dict):
        return [str(names[i]) for i in sorted(names)]
    return [str(n) for n in names] if isinstance(names, list) else []


class OnnxRuntimeBackend(InferenceBackend):
    """A YOLO detector exported to ONNX (output ``(B, 4 + C, anchors)``, no NMS in the graph)."""

    name = "onnxruntime"

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        import onnxruntime as ort

        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = options.intra_op_threads
        session_options.inter_op_num_threads = 1
        session_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.log_severity_level = 3
        # Spinning worker threads burn the cores that Ray's router and proxy need on a small box.
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = choose_providers(options.device, ort.get_available_providers())
        try:
            self._session = ort.InferenceSession(str(options.model_path), session_options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelLoadError(f"cannot load ONNX model '{options.model_path}': {exc}") from exc
        model_input = self._session.get_inputs()[0]
        self._input_name = model_input.name
        shape = list(model_input.shape)
        if len(shape) != 4:
            raise ModelLoadError(f"'{options.model_path}' is not an image detector: input shape {shape}")
        self._fixed_batch = shape[0] if isinstance(shape[0], int) else None
        self._fixed_hw = (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
        metadata = self._session.get_modelmeta().custom_metadata_map
        self._class_names = list(options.class_names) or _names_from_metadata(metadata)
        self._providers = self._session.get_providers()
        require_cuda_session(options.device, self._providers)

    @property
    def class_names(self) -> list[str]:
        return self._class_names

    @property
    def device(self) -> str:
        return "cuda" if self._providers and self._providers[0] == CUDA_PROVIDER else "cpu"

    def _run(self, tensor: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        if self._fixed_batch is None or self._fixed_batch == tensor.shape[0]:
            return np.asarray(self._session.run(None, {self._input_name: tensor})[0])
        outputs = [self._session.run(None, {self._input_name: tensor[i : i + 1]})[0] for i in range(len(tensor))]
        return np.concatenate(outputs, axis=0)

    def predict(self, frames: Sequence[Frame]) -> BatchPrediction:
        if not frames:
            return BatchPrediction([], 0.0, 0.0, 0.0)
        start = time.perf_counter()
        shapes = [(int(f.shape[0]), int(f.shape[1])) for f in frames]
        target = self._fixed_hw or batch_shape(shapes, self.options.imgsz)
        batch = letterbox_batch(frames, target)
        prepared = time.perf_counter()
        raw = self._run(batch.tensor)
        inferred = time.perf_counter()
        candidates = np.ascontiguousarray(raw.transpose(0, 2, 1), dtype=np.float32)  # (B, anchors, 4 + C)
        detections = []
        for i, frame_shape in enumerate(shapes):
            keep = nms_keep(
                candidates[i], self.options.conf_threshold, self.options.iou_threshold, self.options.max_detections
            )
            detections.append(Detections.from_onnx(candidates[i], keep, batch.scales[i], batch.pads[i], frame_shape))
        done = time.perf_counter()
        return BatchPrediction(
            detections=detections,
            preprocess_ms=(prepared - start) * 1e3,
            inference_ms=(inferred - prepared) * 1e3,
            postprocess_ms=(done - inferred) * 1e3,
        )
