"""Ultralytics (torch) backend: runs any Ultralytics weights file, .pt or exported.

Loading a .pt unpickles it: only serve weights files you trust (the default ONNX backend never unpickles).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visionloop.core.contracts import Detections
from visionloop.core.errors import ModelLoadError
from visionloop.serving.backends.base import BackendOptions, BatchPrediction, Frame, InferenceBackend


def torch_device(device: str) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("serving.device is 'cuda' but torch sees no GPU here; set it to 'auto' or 'cpu'")
    return "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"


class UltralyticsBackend(InferenceBackend):
    name = "ultralytics"

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        from visionloop.core.offline import prepare_ultralytics

        prepare_ultralytics(options.ultralytics_dir or Path.home() / ".cache" / "visionloop" / "ultralytics")
        import torch
        from ultralytics import YOLO  # type: ignore[attr-defined]

        torch.set_num_threads(options.intra_op_threads)
        self._device = torch_device(options.device)
        try:
            self._model: Any = YOLO(str(options.model_path), task="detect")
        except Exception as exc:  # Ultralytics raises many untyped errors for bad files
            raise ModelLoadError(f"cannot load Ultralytics model '{options.model_path}': {exc}") from exc
        names = self._model.names
        self._class_names = list(options.class_names) or [str(names[i]) for i in sorted(names)]

    @property
    def class_names(self) -> list[str]:
        return self._class_names

    @property
    def device(self) -> str:
        return self._device

    def predict(self, frames: Sequence[Frame]) -> BatchPrediction:
        if not frames:
            return BatchPrediction([], 0.0, 0.0, 0.0)
        results = self._model.predict(
            list(frames),
            imgsz=self.options.imgsz,
            conf=self.options.conf_threshold,
            iou=self.options.iou_threshold,
            max_det=self.options.max_detections,
            device=self._device,
            verbose=False,
        )
        speed = [r.speed for r in results]  # ms per image, per stage
        return BatchPrediction(
            detections=[Detections.from_ultralytics(r) for r in results],
            preprocess_ms=sum(s.get("preprocess", 0.0) or 0.0 for s in speed),
            inference_ms=sum(s.get("inference", 0.0) or 0.0 for s in speed),
            postprocess_ms=sum(s.get("postprocess", 0.0) or 0.0 for s in speed),
        )
