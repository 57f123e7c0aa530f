"""Make sure the registry has a champion: until a trained model exists, an untrained nano YOLO stands in."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from visionloop.events import EventLog
from visionloop.offline import prepare_ultralytics
from visionloop.registry import ModelRegistry, ModelVersion, Role
from visionloop.settings import Settings
from visionloop.streams import StreamNames


def event_log_for(settings: Settings) -> EventLog:
    url = settings.redis.url or f"redis://127.0.0.1:{settings.redis.embedded_port}/0"
    pending = settings.resolved_var_dir() / "events.pending.jsonl"
    return EventLog(url, StreamNames(settings.redis.stream_prefix), pending)


def registry_for(settings: Settings) -> ModelRegistry:
    """The registry, announcing pointer swaps on the events stream (or queueing them while Redis is away)."""
    events = event_log_for(settings)

    def announce(kind: str, data: dict[str, Any]) -> None:
        events.publish(kind, **data)

    return ModelRegistry(settings.resolved_var_dir() / "models", on_swap=announce)


def ultralytics_config_dir(settings: Settings) -> Path:
    return settings.resolved_var_dir() / "ultralytics"


def init_untrained_champion(settings: Settings, force: bool = False) -> ModelVersion:
    """Build an untrained model from ``model.architecture``, export it to ONNX, register it as champion.

    Skipped (returning the current champion) when a champion exists, unless ``force``.
    """
    registry = registry_for(settings)
    current = registry.pointers()["champion"]
    if current and not force:
        return registry.get(current)
    prepare_ultralytics(ultralytics_config_dir(settings))
    from learning.export import build_untrained_model, export_onnx

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
