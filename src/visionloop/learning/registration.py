"""Trained weights become registry versions: exported to ONNX (fp32, and int8 calibrated on the training images),
registered with their lineage.

Until a trained model exists an untrained one stands in (``init_untrained_champion``), so the whole serving path
can run and be measured on a machine that has trained nothing yet.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from visionloop.core.model_setup import registry_for, ultralytics_config_dir
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.registry import ModelVersion, Role
from visionloop.core.settings import Settings
from visionloop.learning.datasets import load_class_names
from visionloop.learning.export import build_untrained_model, export_onnx
from visionloop.learning.quantize import int8_for
from visionloop.learning.training import TrainResult


def register_trained(
    settings: Settings,
    result: TrainResult,
    work: Path,
    data_ref: str,
    data_yaml: Path,
    architecture: str,
    parent: str | None,
    extra_meta: dict[str, Any] | None = None,
    onnx: Path | None = None,
    int8: Path | None = None,
) -> tuple[ModelVersion, bool]:
    """Export ``result`` to ONNX and int8 (unless ``onnx`` and ``int8`` are the exports already made) and register
    it as a candidate; (version, whether it became champion).

    ``extra_meta`` adds lineage (the loop's: labels version, label counts by arm, job key, gold scores); it cannot
    override the keys written here. On an empty registry the first trained model becomes champion: there is nothing
    to compare it against.
    """
    if onnx is None:
        onnx = export_trained(settings, result, work)
    if int8 is None:
        int8 = int8_for(settings, onnx, data_yaml, work)
    registry = registry_for(settings)
    version = registry.register(
        onnx,
        result.weights,
        {
            **(extra_meta or {}),
            "source": "train",
            "parent": parent,
            "dataset_version": data_ref,
            "architecture": architecture,
            "class_names": load_class_names(data_yaml),
            "imgsz": settings.serving.imgsz,
            "epochs_run": result.epochs_run,
            "train_seconds": round(result.seconds, 1),
            "metrics": {"val": result.metrics},
        },
        int8_file=int8,
    )
    if registry.pointers()["champion"] is None:
        registry.set_pointer(Role.CHAMPION, version.version)
        return registry.get(version.version), True
    return version, False


def export_trained(settings: Settings, result: TrainResult, work: Path) -> Path:
    """The ONNX file of trained weights at the serving input size, in ``work`` (measured before registering)."""
    prepare_ultralytics(ultralytics_config_dir(settings))
    return export_onnx(result.weights, settings.serving.imgsz, work / "model.onnx")


def init_untrained_champion(settings: Settings, force: bool = False) -> ModelVersion:
    """Build an untrained model from ``model.architecture``, export it to ONNX, register it as champion.

    Skipped (returning the current champion) when a champion exists, unless ``force``.
    """
    registry = registry_for(settings)
    current = registry.pointers()["champion"]
    if current and not force:
        return registry.get(current)
    prepare_ultralytics(ultralytics_config_dir(settings))
    with tempfile.TemporaryDirectory(prefix="visionloop-model-") as tmp:
        weights = build_untrained_model(settings.model.architecture, settings.model.class_names, Path(tmp) / "model.pt")
        onnx = export_onnx(weights, settings.serving.imgsz, Path(tmp) / "model.onnx")
        version = registry.register(
            onnx,
            weights,
            {
                "source": "untrained",
                "architecture": settings.model.architecture,
                "class_names": list(settings.model.class_names),
                "imgsz": settings.serving.imgsz,
                "parent": None,
                "dataset_version": None,
                "metrics": {},
            },
        )
    registry.set_pointer(Role.CHAMPION, version.version)
    return registry.get(version.version)
