"""The optional components behind parts of the API (each is a named Ray actor the service starts beside Serve)."""

from __future__ import annotations

from typing import Any

from visionloop.core.errors import ComponentDisabled, NotReadyError
from visionloop.core.settings import Settings
from visionloop.core.streams import CAMERA_MANAGER_ACTOR, LABELING_WORKER_ACTOR, LOOP_WORKER_ACTOR
from visionloop.serving.http_errors import http_exception

LEARNING_LOOP = "the learning loop"
LABELING = "labeling"
CAMERA_MANAGER = "the camera manager"


def components(settings: Settings) -> dict[str, tuple[str, bool, str]]:
    """Each optional component: its actor's name, whether the settings enable it, and that setting's key."""
    return {
        LEARNING_LOOP: (LOOP_WORKER_ACTOR, settings.loop.enabled, "loop.enabled"),
        LABELING: (LABELING_WORKER_ACTOR, settings.labeling.enabled, "labeling.enabled"),
        CAMERA_MANAGER: (CAMERA_MANAGER_ACTOR, True, "the service ('visionloop up')"),
    }


def component(settings: Settings, name: str) -> Any:
    """The actor behind an optional component: 409 if the settings switch it off, 503 naming it (and the
    setting) if it should run but does not (still starting, or it failed: `visionloop up`'s log says why)."""
    import ray

    actor_name, enabled, setting = components(settings)[name]
    if not enabled:
        raise http_exception(ComponentDisabled(f"{name} is switched off ({setting} is false)"))
    try:
        return ray.get_actor(actor_name)
    except ValueError:
        message = f"{name} is not running although {setting} is true: it is still starting or it failed"
        raise http_exception(NotReadyError(message)) from None


def component_states(settings: Settings) -> dict[str, str]:
    """'ready', 'disabled' or 'missing' for each optional component (for /v1/health)."""
    import ray

    states: dict[str, str] = {}
    for name, (actor_name, enabled, _) in components(settings).items():
        key = name.removeprefix("the ").replace(" ", "_")
        if not enabled:
            states[key] = "disabled"
            continue
        try:
            ray.get_actor(actor_name)
            states[key] = "ready"
        except ValueError:
            states[key] = "missing"
    return states
