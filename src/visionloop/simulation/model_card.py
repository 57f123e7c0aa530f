"""The card of the shipped bootstrap model: how it was made and what it scores, checked at install and rendered
for the documentation.

The card is the contract between the weights and the code that regenerates their gold set: at first start the
service scores the weights again and refuses them when the score moved more than ``bootstrap.card_tolerance``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from visionloop.learning.datasets import sha256_of


class GoldScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    map50: float = Field(description="mAP50 on the gold set (fp32 ONNX at the serving input size).")
    map50_95: float
    per_class_ap50: dict[str, float]
    images: int
    instances: int
    operating_threshold: float
    int8_map50: float | None = Field(default=None, description="The int8 file's gold mAP50, when there is one.")


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    weights_file: str
    weights_sha256: str
    weights_bytes: int
    recipe: dict[str, Any] = Field(description="What decides the weights (simulation.bootstrap.recipe_of).")
    recipe_hash: str
    class_names: list[str]
    gold: GoldScore
    epochs_run: int
    train_seconds: float
    machine: dict[str, Any]
    commit: str
    trained_at: str
    intended_use: str = (
        "A starting champion for the synthetic world's domain A: the demo, the benchmarks and the tests that need a "
        "trained model. It knows five drawn shapes, not real objects; real cameras need real weights or the loop."
    )

    def recipe_differences(self, recipe: dict[str, Any]) -> list[str]:
        """The recipe keys where ``recipe`` differs from the card's, for a message."""
        keys = sorted(set(self.recipe) | set(recipe))
        return [key for key in keys if self.recipe.get(key) != recipe.get(key)] or ["none"]


def machine_description() -> dict[str, Any]:
    """Where a model was trained: enough to explain its training time."""
    import torch
    import ultralytics

    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "ultralytics": ultralytics.__version__,
    }


def git_commit(root: Path) -> str:
    """The commit of ``root``'s checkout, '+dirty' when files differ from it; 'unknown' outside a checkout."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def card_of(meta: dict[str, Any], weights: Path, commit: str) -> ModelCard:
    """The card of a registered bootstrap version's weights (``meta`` is its registry meta; ``commit`` the checkout
    it was trained from)."""
    metrics = meta["metrics"]
    int8 = meta.get("int8_gold_map50", {}).get("int8")
    return ModelCard(
        name=f"visionloop bootstrap ({meta['architecture'].removesuffix('.yaml')}, {len(meta['class_names'])} classes)",
        weights_file=weights.name,
        weights_sha256=sha256_of(weights),
        weights_bytes=weights.stat().st_size,
        recipe=meta["recipe"],
        recipe_hash=meta["recipe_hash"],
        class_names=list(meta["class_names"]),
        gold=GoldScore(
            map50=metrics["map50"],
            map50_95=metrics["map50_95"],
            per_class_ap50={name: row["ap50"] for name, row in metrics["per_class"].items()},
            images=metrics["images"],
            instances=metrics["instances"],
            operating_threshold=metrics["operating_threshold"],
            int8_map50=None if int8 is None else float(int8),
        ),
        epochs_run=int(meta["epochs_run"]),
        train_seconds=float(meta["train_seconds"]),
        machine=machine_description(),
        commit=commit,
        trained_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(meta["created"])),
    )


def read_card(path: Path) -> ModelCard:
    return ModelCard.model_validate_json(path.read_text())


def write_card(card: ModelCard, path: Path) -> None:
    path.write_text(json.dumps(card.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")


def card_markdown(card: ModelCard) -> str:
    """The card as a documentation page."""
    recipe = "\n".join(f"| `{key}` | `{json.dumps(value)}` |" for key, value in sorted(card.recipe.items()))
    classes = "\n".join(f"| {name} | {card.gold.per_class_ap50[name]:.3f} |" for name in card.class_names)
    machine = ", ".join(f"{key} {value}" for key, value in card.machine.items() if value is not None)
    int8 = "" if card.gold.int8_map50 is None else f" (int8 file: {card.gold.int8_map50:.3f})"
    return f"""# Bootstrap model card

**{card.name}**, shipped as `{card.weights_file}` ({card.weights_bytes / 1e6:.1f} MB, sha256
`{card.weights_sha256[:16]}…`).

{card.intended_use}

## Score on gold

Gold mAP50 **{card.gold.map50:.3f}**{int8}, mAP50-95 {card.gold.map50_95:.3f}, on {card.gold.images} generated
images holding {card.gold.instances} objects, never trained on; operating threshold {card.gold.operating_threshold}.
At first start visionloop regenerates the gold set from the recipe, scores the weights again and refuses them when
the score differs from {card.gold.map50:.3f} by more than `bootstrap.card_tolerance`.

| class | AP50 |
|---|---|
{classes}

## How it was made

Trained {card.epochs_run} epochs in {card.train_seconds / 60:.1f} min on {machine}; commit `{card.commit}`,
{card.trained_at}. `make bootstrap` trains one from scratch with the same recipe; `make bench-bootstrap` trains it
with three other seeds and compares them with this card.

| recipe key | value |
|---|---|
{recipe}

Recipe hash `{card.recipe_hash}`: a configuration whose recipe hashes differently trains its own model instead.
"""
