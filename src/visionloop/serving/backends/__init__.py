"""Inference backends behind one small interface; each registers itself under its ``name``."""

from visionloop.serving.backends.base import BackendOptions, BatchPrediction, InferenceBackend, create_backend
from visionloop.serving.backends.onnx_backend import OnnxRuntimeBackend
from visionloop.serving.backends.ultralytics_backend import UltralyticsBackend

__all__ = [
    "BackendOptions",
    "BatchPrediction",
    "InferenceBackend",
    "OnnxRuntimeBackend",
    "UltralyticsBackend",
    "create_backend",
]
