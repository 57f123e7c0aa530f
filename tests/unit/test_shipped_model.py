"""The shipped bootstrap model's card and its checks: a damaged weights file or a gold score that moved beyond the
tolerance is a clear error naming both figures and what to do; the recipe that decides whether the card applies
holds what changes the weights and nothing that only changes where or how fast they train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from visionloop.core.config import load_settings
from visionloop.core.settings import Settings
from visionloop.learning.datasets import sha256_of
from visionloop.simulation.bootstrap import bootstrap_training, recipe_hash, recipe_of
from visionloop.simulation.model_card import GoldScore, ModelCard, card_markdown, read_card, write_card
from visionloop.simulation.shipped_model import (
    CARD_FILE,
    WEIGHTS_FILE,
    ShippedModelMismatch,
    check_score,
    check_weights,
    shipped_card,
)


def _settings(**env: str) -> Settings:
    return load_settings(environ={f"VISIONLOOP_{k}": v for k, v in env.items()})


def _card(weights: Path, map50: float = 0.82) -> ModelCard:
    settings = _settings()
    recipe = recipe_of(settings)
    return ModelCard(
        name="visionloop bootstrap (yolov8n, 2 classes)",
        weights_file=weights.name,
        weights_sha256=sha256_of(weights),
        weights_bytes=weights.stat().st_size,
        recipe=recipe,
        recipe_hash=recipe_hash(recipe),
        class_names=["circle", "square"],
        gold=GoldScore(
            map50=map50,
            map50_95=0.55,
            per_class_ap50={"circle": 0.9, "square": 0.74},
            images=200,
            instances=673,
            operating_threshold=0.25,
            int8_map50=0.817,
        ),
        epochs_run=30,
        train_seconds=600.0,
        machine={"cpu": "test", "cores": 2, "gpu": None},
        commit="abc123",
        trained_at="2026-12-07 12:00 UTC",
    )


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    weights = tmp_path / WEIGHTS_FILE
    weights.write_bytes(b"weights" * 1000)
    write_card(_card(weights), tmp_path / CARD_FILE)
    return tmp_path


def test_the_card_round_trips_and_is_found_with_its_weights(shipped: Path) -> None:
    card = shipped_card(shipped)
    assert card is not None and card.gold.map50 == 0.82 and card.recipe_hash == recipe_hash(recipe_of(_settings()))
    assert json.loads((shipped / CARD_FILE).read_text())["weights_sha256"] == sha256_of(shipped / WEIGHTS_FILE)
    assert read_card(shipped / CARD_FILE) == card


def test_no_card_or_no_weights_means_nothing_is_shipped(
    shipped: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    assert shipped_card(tmp_path_factory.mktemp("empty")) is None
    (shipped / WEIGHTS_FILE).unlink()
    assert shipped_card(shipped) is None


def test_damaged_weights_are_refused_before_anything_loads_them(shipped: Path) -> None:
    card = shipped_card(shipped)
    assert card is not None
    check_weights(card, shipped / WEIGHTS_FILE)
    with (shipped / WEIGHTS_FILE).open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(ShippedModelMismatch, match=r"damaged or was replaced.*use_shipped: false"):
        check_weights(card, shipped / WEIGHTS_FILE)


@pytest.mark.parametrize(("measured", "refused"), [(0.82, False), (0.8295, False), (0.8105, False),
                                                   (0.8305, True), (0.805, True), (0.70, True)])  # fmt: skip
def test_a_gold_score_beyond_the_tolerance_is_a_clear_error(shipped: Path, measured: float, refused: bool) -> None:
    card = shipped_card(shipped)
    assert card is not None
    if not refused:
        check_score(card, measured, 0.01)
        return
    with pytest.raises(ShippedModelMismatch) as caught:
        check_score(card, measured, 0.01)
    message = str(caught.value)
    assert f"{measured:.4f}" in message and "0.8200" in message and "bootstrap.card_tolerance 0.01" in message
    assert "make bootstrap" in message


def test_the_recipe_holds_what_changes_the_weights_only() -> None:
    base = recipe_hash(recipe_of(_settings()))
    assert recipe_hash(recipe_of(_settings(TRAINING__DEVICE="cpu", TRAINING__THREADS="1"))) == base
    assert recipe_hash(recipe_of(_settings(TRAINING__NUM_CPUS="1"))) == base
    for key, value in [("TRAINING__SEED", "7"), ("TRAINING__LR0", "0.01"), ("BOOTSTRAP__EPOCHS", "5"),
                       ("BOOTSTRAP__SEED", "2"), ("MODEL__ARCHITECTURE", "yolov8s.yaml")]:  # fmt: skip
        assert recipe_hash(recipe_of(_settings(**{key: value}))) != base, key


def test_the_bootstrap_runs_every_epoch_whatever_the_loop_stops_early_on() -> None:
    """Early stopping made the card's run (36 epochs) and the seeds' (46, 49) different recipes in effect."""
    for patience in ("10", "0", "3"):
        settings = _settings(TRAINING__PATIENCE=patience, BOOTSTRAP__EPOCHS="7")
        training = bootstrap_training(settings)
        assert (training.patience, training.epochs) == (0, 7)
        assert recipe_of(settings)["training"]["patience"] == 0
    assert recipe_hash(recipe_of(_settings(TRAINING__PATIENCE="3"))) == recipe_hash(recipe_of(_settings()))


def test_recipe_differences_name_the_keys(shipped: Path) -> None:
    card = shipped_card(shipped)
    assert card is not None
    other = recipe_of(_settings(BOOTSTRAP__SEED="2", BOOTSTRAP__IMAGES="100"))
    assert card.recipe_differences(other) == ["images", "seed"]
    assert card.recipe_differences(card.recipe) == ["none"]


def test_the_card_page_shows_scores_per_class_and_the_recipe(shipped: Path) -> None:
    card = shipped_card(shipped)
    assert card is not None
    page = card_markdown(card)
    assert "Gold mAP50 **0.820** (int8 file: 0.817)" in page
    assert "| circle | 0.900 |" in page and "| square | 0.740 |" in page
    assert f"`{card.recipe_hash}`" in page and "| `epochs` | `50` |" in page
