"""What ``visionloop up`` does on a registry with no champion: the shipped bootstrap model when it fits the
settings (checked on gold against its card, about a minute), else an untrained one and a word on how to train."""

from __future__ import annotations

from rich.console import Console

from visionloop.core.model_setup import registry_for
from visionloop.core.registry import ModelVersion
from visionloop.core.settings import Settings


def ensure_champion(settings: Settings, console: Console) -> ModelVersion:
    registry = registry_for(settings)
    if registry.pointers()["champion"] is not None:
        return registry.champion()
    from visionloop.simulation.bootstrap import run_bootstrap, shipped_fits
    from visionloop.simulation.shipped_model import shipped_card

    if shipped_fits(settings, shipped_card()):
        outcome = run_bootstrap(settings, console)
        console.print(outcome.summary(settings.bootstrap.target_map50))
        return outcome.version
    from visionloop.learning.registration import init_untrained_champion

    version = init_untrained_champion(settings)
    console.print(
        f"[yellow]no champion and no shipped model for these settings: serving an untrained {version.version}; "
        "run 'visionloop bootstrap' to train one on the synthetic world, or 'visionloop models ...' to add yours[/]"
    )
    return version
