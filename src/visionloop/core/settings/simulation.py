"""Settings of the synthetic world and the bootstrap model trained on it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from visionloop.core.settings.base import StrictModel


class WorldSettings(StrictModel):
    domains_file: Path = Field(
        default=Path("configs/domains.yaml"),
        description="YAML of the synthetic world's domains (relative paths: to the project root).",
    )
    image_size: tuple[int, int] = Field(default=(320, 320), description="Height, width of generated still images.")
    video_size: tuple[int, int] = Field(default=(360, 640), description="Height, width of generated videos.")


class BootstrapSettings(StrictModel):
    domain: str = Field(default="A", description="Domain the bootstrap model learns.")
    seed: int = Field(default=1, description="Seed of the bootstrap world.")
    images: int = Field(default=800, gt=0, description="Images generated for the bootstrap data set.")
    gold_images: int = Field(default=200, gt=0, description="Images in the gold holdout set (never trained on).")
    epochs: int = Field(
        default=50,
        gt=0,
        description="Bootstrap training epochs. 30 met the 0.80 gold target by luck: training seed 0 gave 0.820, seed "
        "1 0.757; 50 gave seed 1 0.851.",
    )
    target_map50: float = Field(default=0.80, ge=0, le=1, description="mAP50 the bootstrap must reach on gold.")
    use_shipped: bool = Field(
        default=True,
        description="Install the bootstrap model shipped with visionloop (checked against its card on the gold set "
        "regenerated from its recipe) instead of training one, when its recipe is this one.",
    )
    card_tolerance: float = Field(
        default=0.01,
        gt=0,
        le=0.2,
        description="Largest gold mAP50 difference from its card the shipped model may show; beyond it, start fails.",
    )
