"""Compare Ultralytics architectures trained on the same data with the same budget."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionloop.core.settings import TrainingSettings
from visionloop.learning.evaluation import evaluate, read_bgr, split_images
from visionloop.learning.export import export_onnx
from visionloop.learning.training import train
from visionloop.serving.backends import BackendOptions, create_backend

DEFAULT_ARCHITECTURES = ("yolov8n.yaml", "yolo11n.yaml", "yolov5nu.yaml")


@dataclass(frozen=True)
class ArchitectureRow:
    architecture: str
    map50: float
    map50_95: float
    images_per_s: float
    parameters: int
    onnx_mb: float
    train_seconds: float


def count_parameters(weights: Path) -> int:
    from ultralytics import YOLO  # type: ignore[attr-defined]

    net: Any = YOLO(str(weights)).model
    return int(sum(p.numel() for p in net.parameters()))


def onnx_throughput(onnx: Path, images: Sequence[Path], imgsz: int, threads: int, seconds: float = 5.0) -> float:
    """Images/s through our ONNX Runtime backend (pre-processing and NMS included), batch 8."""
    backend = create_backend("onnxruntime", BackendOptions(onnx, imgsz=imgsz, intra_op_threads=threads))
    frames = [read_bgr(p) for p in images[:32]]
    backend.predict(frames[:8])
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        backend.predict(frames[done % len(frames) : done % len(frames) + 8] or frames[:8])
        done += 8
    return done / (time.perf_counter() - start)


def compare(
    architectures: Sequence[str],
    data_yaml: Path,
    eval_yaml: Path,
    training: TrainingSettings,
    work: Path,
    ultralytics_dir: Path,
    imgsz: int,
    operating_threshold: float,
    threads: int,
    on_row: Callable[[ArchitectureRow], None] | None = None,
) -> list[ArchitectureRow]:
    rows = []
    eval_images, _ = split_images(eval_yaml, "val")
    for architecture in architectures:
        result = train(architecture, data_yaml, training, work / Path(architecture).stem, ultralytics_dir)
        onnx = export_onnx(result.weights, imgsz, result.weights.with_suffix(".onnx"))
        scored = evaluate(onnx, eval_yaml, "val", operating_threshold, imgsz, ultralytics_dir)
        row = ArchitectureRow(
            architecture=architecture,
            map50=scored.map50,
            map50_95=scored.map50_95,
            images_per_s=onnx_throughput(onnx, [i.image for i in eval_images], imgsz, threads),
            parameters=count_parameters(result.weights),
            onnx_mb=onnx.stat().st_size / 2**20,
            train_seconds=result.seconds,
        )
        rows.append(row)
        if on_row:
            on_row(row)
    return rows
