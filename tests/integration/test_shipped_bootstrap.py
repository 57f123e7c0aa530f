"""The shipped bootstrap model at first start, on a var/ that never saw visionloop: ``visionloop up``'s first step
installs it as champion v1 (exported, quantized, re-scored on the gold set regenerated from its card's recipe,
within the tolerance of the card), the next start reuses it without scoring again, and a card whose score the
weights do not reproduce is refused with a clear error and nothing registered. Real Ultralytics export, real ONNX
Runtime evaluation, real generated world; nothing faked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.console import Console

from visionloop.cli.first_start import ensure_champion
from visionloop.core.config import load_settings
from visionloop.core.model_setup import registry_for
from visionloop.core.settings import Settings
from visionloop.simulation.bootstrap import install_shipped, run_bootstrap
from visionloop.simulation.model_card import write_card
from visionloop.simulation.shipped_model import CARD_FILE, SHIPPED_DIR, WEIGHTS_FILE, ShippedModelMismatch, shipped_card

pytestmark = pytest.mark.skipif(shipped_card() is None, reason="this checkout ships no bootstrap model")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    var_dir = tmp_path_factory.mktemp("fresh-var")
    return load_settings(environ={"VISIONLOOP_PATHS__VAR_DIR": str(var_dir)})


@pytest.fixture(scope="module")
def installed(settings: Settings) -> str:
    """The first start: one install, shared by the tests below (it takes about a minute on 2 cores)."""
    return ensure_champion(settings, Console(width=120)).version


def test_first_start_installs_the_shipped_model_as_champion_v1(settings: Settings, installed: str) -> None:
    card = shipped_card()
    assert card is not None
    registry = registry_for(settings)
    champion = registry.champion()
    assert installed == champion.version == "v1"
    meta = champion.meta
    assert meta["source"] == "bootstrap" and meta["shipped"]["sha256"] == card.weights_sha256
    assert meta["recipe_hash"] == card.recipe_hash
    assert abs(meta["metrics"]["map50"] - card.gold.map50) <= settings.bootstrap.card_tolerance
    assert champion.onnx_path.is_file() and champion.int8_path.is_file()
    assert (champion.path / "model.pt").read_bytes() == (SHIPPED_DIR / WEIGHTS_FILE).read_bytes()


def test_the_next_start_reuses_it_without_scoring_again(settings: Settings, installed: str) -> None:
    outcome = run_bootstrap(settings, Console(width=120))
    assert outcome.reused and outcome.version.version == installed
    assert [v.version for v in registry_for(settings).versions()] == [installed]


def test_a_card_the_weights_do_not_reproduce_is_refused(settings: Settings, installed: str, tmp_path: Path) -> None:
    card = shipped_card()
    assert card is not None
    shutil.copyfile(SHIPPED_DIR / WEIGHTS_FILE, tmp_path / WEIGHTS_FILE)
    wrong = card.model_copy(update={"gold": card.gold.model_copy(update={"map50": card.gold.map50 + 0.05})})
    write_card(wrong, tmp_path / CARD_FILE)
    with pytest.raises(ShippedModelMismatch, match=r"card says .*more than bootstrap.card_tolerance 0.01"):
        install_shipped(settings, wrong, Console(width=120), directory=tmp_path)
    assert [v.version for v in registry_for(settings).versions()] == [installed]
    assert registry_for(settings).champion().version == installed
