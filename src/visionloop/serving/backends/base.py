"""The inference backend interface and its self-filling registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from visionloop.core.contracts import Detections
from visionloop.core.errors import ModelLoadError
from visionloop.core.settings import ServingSettings

Frame = npt.NDArray[np.uint8]


def _serving_default(name: str) -> Any:
    """A default of the serving settings: the schema declares it once, the backends reuse it."""
    return ServingSettings.model_fields[name].default


@dataclass(frozen=True)
class BackendOptions:
    """What every backend needs to know to load a model and run it (defaults: the serving settings' own)."""

    model_path: Path
    imgsz: int = _serving_default("imgsz")
    conf_threshold: float = _serving_default("conf_threshold")
    iou_threshold: float = _serving_default("iou_threshold")
    max_detections: int = _serving_default("max_detections")
    device: str = _serving_default("device")
    intra_op_threads: int = _serving_default("intra_op_threads")
    class_names: Sequence[str] = field(default_factory=tuple)
    ultralytics_dir: Path | None = None  # Ultralytics' offline config dir (the torch backend only)


@dataclass(frozen=True)
class BatchPrediction:
    """Detections for each frame of a batch and the milliseconds the whole batch spent in each stage."""

    detections: list[Detections]
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float


class InferenceBackend(ABC):
    """Runs a detector on a batch of BGR frames. Subclasses register themselves under ``name``."""

    name: ClassVar[str]
    _registry: ClassVar[dict[str, type[InferenceBackend]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if getattr(cls, "name", None):
            InferenceBackend._registry[cls.name] = cls

    def __init__(self, options: BackendOptions) -> None:
        if not options.model_path.exists():
            raise ModelLoadError(f"model file '{options.model_path}' does not exist")
        if not options.model_path.is_file():
            raise ModelLoadError(f"model path '{options.model_path}' is not a file")
        self.options = options

    @property
    @abstractmethod
    def class_names(self) -> list[str]:
        """Class names in class-id order."""

    @property
    @abstractmethod
    def device(self) -> str:
        """Where the model runs, e.g. 'cpu' or 'cuda'."""

    @abstractmethod
    def predict(self, frames: Sequence[Frame]) -> BatchPrediction:
        """Detect objects in each BGR uint8 frame; frames may differ in size."""

    @classmethod
    def available(cls) -> list[str]:
        return sorted(cls._registry)


def create_backend(name: str, options: BackendOptions) -> InferenceBackend:
    """Build the backend registered as ``name``; an unknown name is an error listing the valid ones."""
    try:
        backend_cls = InferenceBackend._registry[name]
    except KeyError:
        raise ModelLoadError(
            f"unknown inference backend '{name}'; choose one of: {', '.join(InferenceBackend.available())}"
        ) from None
    return backend_cls(options)
