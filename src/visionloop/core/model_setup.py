"""The registry and the Ultralytics config folder of a settings object; pointer swaps go to the events stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from visionloop.core.events import EventLog
from visionloop.core.registry import ModelRegistry
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames


def event_log_for(settings: Settings) -> EventLog:
    pending = settings.var.events_pending
    return EventLog(settings.redis_url(), StreamNames(settings.redis.stream_prefix), pending)


def registry_for(settings: Settings) -> ModelRegistry:
    """The registry, announcing pointer swaps on the events stream (or queueing them while Redis is away)."""
    events = event_log_for(settings)

    def announce(kind: str, data: dict[str, Any]) -> None:
        events.publish(kind, **data)

    return ModelRegistry(settings.var.models, on_swap=announce)


def ultralytics_config_dir(settings: Settings) -> Path:
    return settings.var.ultralytics
