"""Build models from an architecture yaml and export them to ONNX (dynamic batch) for the serving replicas."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from visionloop.errors import ModelLoadError
from visionloop.offline import require_prepared


def build_untrained_model(architecture: str, class_names: Sequence[str], out_file: Path) -> Path:
    """Write an Ultralytics checkpoint with random weights built from ``architecture`` (no download).

    It stands in until a trained model exists: the whole serving path can run and be measured on it.
    """
    require_prepared()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    try:
        model = DetectionModel(architecture, nc=len(class_names), verbose=False)  # type: ignore[no-untyped-call]
    except FileNotFoundError as exc:
        raise ModelLoadError(f"unknown model architecture '{architecture}': {exc}") from exc
    model.names = dict(enumerate(class_names))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half(), "train_args": {}, "date": None, "version": "visionloop"}, out_file)
    return out_file


def export_onnx(weights: Path, imgsz: int, out_file: Path | None = None) -> Path:
    """Export an Ultralytics weights file to ONNX with a dynamic batch and input size; returns the .onnx path."""
    require_prepared()
    from ultralytics import YOLO  # type: ignore[attr-defined]

    if not weights.is_file():
        raise ModelLoadError(f"weights file '{weights}' does not exist")
    exported = Path(YOLO(str(weights)).export(format="onnx", dynamic=True, imgsz=imgsz, simplify=True, verbose=False))
    if out_file is not None and exported != out_file:
        exported.replace(out_file)
        return out_file
    return exported


def export_torchscript(weights: Path, imgsz: int) -> Path:
    """TorchScript export (for torch-only runtimes). TFLite is not offered: its TensorFlow stack is not installed."""
    require_prepared()
    from ultralytics import YOLO  # type: ignore[attr-defined]

    if not weights.is_file():
        raise ModelLoadError(f"weights file '{weights}' does not exist")
    return Path(YOLO(str(weights)).export(format="torchscript", imgsz=imgsz, verbose=False))
