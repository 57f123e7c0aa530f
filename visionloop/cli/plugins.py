"""What the face hands the spine and the parts: checks of the names that pick an implementation, and the hook
that shows every answered frame to labeling.

The settings schema lives in the spine and cannot import the parts, so it does not repeat their names (backends,
samplers); the face checks them against the parts' own registries when it loads the settings, and the error
names the valid ones, the key and where the value came from.
"""

from __future__ import annotations

from pathlib import Path

from visionloop.config import SettingsCheck, load_settings
from visionloop.frames import FrameObserverFactory
from visionloop.settings import Settings


def unknown_backend(settings: Settings) -> list[tuple[tuple[str, ...], str]]:
    from serving.backends import InferenceBackend

    backends = InferenceBackend.available()
    if settings.serving.backend in backends:
        return []
    return [
        (("serving", "backend"), f"unknown backend '{settings.serving.backend}'; choose one of: {', '.join(backends)}")
    ]


def unknown_samplers(settings: Settings) -> list[tuple[tuple[str, ...], str]]:
    from labeling.samplers import Sampler

    samplers = Sampler.available()
    unknown = sorted(set(settings.labeling.sampler_weights) - set(samplers))
    if not unknown:
        return []
    message = f"unknown sampler(s) {', '.join(unknown)}; choose from: {', '.join(samplers)}"
    return [(("labeling", "sampler_weights"), message)]


PLUGIN_CHECKS: tuple[SettingsCheck, ...] = (unknown_backend, unknown_samplers)


def load_checked_settings(config: Path | None = None) -> Settings:
    """The settings of the layers, with every backend and sampler name checked against the registries."""
    return load_settings(config, checks=PLUGIN_CHECKS)


def frame_observer(settings: Settings) -> FrameObserverFactory | None:
    """What the Router tells about every answered frame: the labeling selector, when labeling is enabled."""
    if not settings.labeling.enabled:
        return None
    from labeling.selector import build_selector

    return build_selector
