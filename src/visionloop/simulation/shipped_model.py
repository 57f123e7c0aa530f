"""The bootstrap model shipped with visionloop (installed at first start by simulation.bootstrap instead of training
one for ten minutes): where it lies, its checks, and how a maintainer ships a new one.

Installing checks it twice: the weights against the card's sha256 (a damaged file is never loaded), and their gold
mAP50 on the gold set regenerated from the card's recipe against the card's figure (the world generator, the export
or the evaluation changed since it was trained). Either failing is a clear error, never a silently weaker champion.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from visionloop.core.errors import VisionloopError
from visionloop.core.registry import TORCH_FILE, ModelVersion
from visionloop.core.settings import PROJECT_ROOT
from visionloop.learning.datasets import sha256_of
from visionloop.simulation.model_card import ModelCard, card_of, git_commit, read_card, write_card

SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
WEIGHTS_FILE = "bootstrap.pt"
CARD_FILE = "bootstrap-card.json"


class ShippedModelMismatch(VisionloopError):
    """The shipped bootstrap model does not match its card; it is not installed."""


def shipped_card(directory: Path = SHIPPED_DIR) -> ModelCard | None:
    """The shipped model's card; None when this installation ships none."""
    card = directory / CARD_FILE
    if not card.is_file() or not (directory / WEIGHTS_FILE).is_file():
        return None
    return read_card(card)


def check_weights(card: ModelCard, weights: Path) -> None:
    actual = sha256_of(weights)
    if actual != card.weights_sha256:
        raise ShippedModelMismatch(
            f"the shipped bootstrap weights {weights} have sha256 {actual[:16]}…, their card says "
            f"{card.weights_sha256[:16]}…: the file is damaged or was replaced; reinstall visionloop, or set "
            "bootstrap.use_shipped: false and run 'visionloop bootstrap' to train one"
        )


def check_score(card: ModelCard, map50: float, tolerance: float) -> None:
    if abs(map50 - card.gold.map50) > tolerance:
        raise ShippedModelMismatch(
            f"the shipped bootstrap model scores gold mAP50 {map50:.4f} on the gold set regenerated from its recipe; "
            f"its card says {card.gold.map50:.4f} (difference {map50 - card.gold.map50:+.4f}, more than "
            f"bootstrap.card_tolerance {tolerance}). The world generator, the export or the evaluation changed "
            "since it was trained: run 'make bootstrap' to train one for this code (and 'visionloop bootstrap "
            "--ship' to renew the shipped one), or set bootstrap.use_shipped: false"
        )


def ship(version: ModelVersion, directory: Path = SHIPPED_DIR) -> ModelCard:
    """Write a registered bootstrap version's weights and card as the shipped model (a maintainer's step)."""
    if version.meta.get("source") != "bootstrap" or "shipped" in version.meta:
        raise VisionloopError(f"{version.version} is not a bootstrap model trained here: only those are shipped")
    commit = git_commit(PROJECT_ROOT)  # before the shipped files change (they are tracked: it would read dirty)
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    shutil.copyfile(version.path / TORCH_FILE, weights)
    card = card_of(version.meta, weights, commit)
    write_card(card, directory / CARD_FILE)
    return card
