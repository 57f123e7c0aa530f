"""Build models from an architecture yaml and export them to ONNX (dynamic batch) for the serving replicas."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from visionloop.core.errors import ModelLoadError
from visionloop.core.offline import require_prepared


def build_untrained_model(architecture: str, class_names: Sequence[str], out_file: Path, seed: int = 0) -> Path:
    """Write an Ultralytics checkpoint with random weights built from ``architecture`` (no download).

    It stands in until a trained model exists: the whole serving path can run and be measured on it. The weights
    are drawn from ``seed`` (torch's global generator is left as it was), so every build answers the same: what a
    test or a measurement sees of the stand-in does not change from run to run.
    """
    require_prepared()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = DetectionModel(architecture, nc=len(class_names), verbose=False)  # type: ignore[no-untyped-call]
    except FileNotFoundError as exc:
        raise ModelLoadError(f"unknown model architecture '{architecture}': {exc}") from exc
    model.names = dict(enumerate(class_names))
    out_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.half(), "train_args": {}, "date": None, "version": "visionloop"}, out_file)
    return out_file


def export_onnx(weights: Path, imgsz: int, out_file: Path) -> Path:
    """Export an Ultralytics weights file to ONNX (dynamic batch and input size) at ``out_file``."""
    return _export(weights, out_file, format="onnx", dynamic=True, imgsz=imgsz, simplify=True)


def export_torchscript(weights: Path, imgsz: int, out_file: Path) -> Path:
    """TorchScript export (for torch-only runtimes). TFLite is not offered: its TensorFlow stack is not installed."""
    return _export(weights, out_file, format="torchscript", imgsz=imgsz)


def _export(weights: Path, out_file: Path, **options: Any) -> Path:
    """Run an Ultralytics export on a private copy of ``weights``; only ``out_file`` is written.

    Ultralytics writes its output next to the weights it reads. Weights may sit in a published (immutable) registry
    version, so the export works in a temporary folder and never touches the folder the weights came from.
    """
    require_prepared()
    from ultralytics import YOLO  # type: ignore[attr-defined]

    if not weights.is_file():
        raise ModelLoadError(f"weights file '{weights}' does not exist")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="visionloop-export-") as tmp:
        private = Path(tmp) / "model.pt"
        shutil.copyfile(weights, private)
        exported = Path(YOLO(str(private)).export(verbose=False, **options))
        shutil.move(exported, out_file)
    return out_file
