"""What the face hands the spine and the parts: checks of the names that pick an implementation, and the hooks
that show every answered frame to labeling, drift monitoring and the dashboard's snapshots.

The settings schema lives in the spine and cannot import the parts, so it does not repeat their names (backends,
samplers); the face checks them against the parts' own registries when it loads the settings, and the error
names the valid ones, the key and where the value came from.
"""

from __future__ import annotations

from pathlib import Path

from visionloop.core.config import SettingsCheck, load_settings
from visionloop.core.frames import FrameObserverFactory, chain_observers
from visionloop.core.settings import Settings


def unknown_backend(settings: Settings) -> list[tuple[tuple[str, ...], str]]:
    from visionloop.serving.backends import InferenceBackend

    backends = InferenceBackend.available()
    if settings.serving.backend in backends:
        return []
    return [
        (("serving", "backend"), f"unknown backend '{settings.serving.backend}'; choose one of: {', '.join(backends)}")
    ]


def unknown_samplers(settings: Settings) -> list[tuple[tuple[str, ...], str]]:
    from visionloop.labeling.samplers import Sampler

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
    """What the Router shows every answered frame: the labeling selector (its answer decides shadow mirroring, so
    it comes first), the unlabelled pool the loop adapts to, the drift sampler, and the snapshot keeper (the
    dashboard's live frames and explanations)."""
    factories: list[FrameObserverFactory] = []
    if settings.labeling.enabled:
        from visionloop.labeling.selector import build_selector

        factories.append(build_selector)
    if settings.loop.enabled and settings.loop.pool_frames > 0:
        from visionloop.labeling.pool import build_pool

        factories.append(build_pool)
    if settings.drift.enabled:
        from visionloop.monitoring.drift_sampler import build_drift_sampler

        factories.append(build_drift_sampler)
    if settings.dashboard.enabled or settings.explain.enabled:
        from visionloop.serving.snapshots import build_snapshot_keeper

        factories.append(build_snapshot_keeper)
    return chain_observers(factories)
