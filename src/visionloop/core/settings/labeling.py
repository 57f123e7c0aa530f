"""Settings of labeling: frame selection for active learning and the Label Studio sync."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from visionloop.core.settings.base import StrictModel


class LabelingSettings(StrictModel):
    enabled: bool = Field(
        default=True, description="Select frames for labeling and run the Label Studio sync with the service."
    )
    label_studio_url: str | None = Field(
        default=None,
        description="Label Studio to use; empty starts a local one (its own venv under ~/.cache/visionloop) on "
        "127.0.0.1:label_studio_port with its data under <var_dir>/label-studio.",
    )
    label_studio_port: int = Field(default=8080, gt=0, lt=65536, description="Port of the local Label Studio.")
    label_studio_token: SecretStr | None = Field(
        default=None, description="API token of an external Label Studio (the local one has its own)."
    )
    project_title: str = Field(default="visionloop review", min_length=1, description="Label Studio project.")
    sampler_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "least_confidence": 1.0,
            "margin": 1.0,
            "entropy": 1.0,
            "confidence_band": 1.0,
            "flicker": 1.0,
        },
        description="Weights of the uncertainty samplers mixed by the composite sampler (novelty is the diversity "
        "factor now; listed here it also joins the mix). flicker reads the camera's tracker (tracking.enabled).",
    )
    aggregate: Literal["max", "mean", "sum", "soft_count"] = Field(
        default="soft_count",
        description="How per-box doubts make a frame's: soft_count (1 - exp(-sum/1.5)) ranks a frame with several "
        "doubtful objects above one with a single one; max looks at the worst box only.",
    )
    diversity: float = Field(
        default=1.0,
        ge=0,
        description="Exponent of the distance-to-selected-frames factor (0: off); k-center greedy on a pool.",
    )
    class_balance: float = Field(
        default=1.0, ge=0, description="Exponent of the rarity of a frame's predicted classes among selected (0: off)."
    )
    memory_size: int = Field(default=256, gt=0, description="Selected frames remembered for diversity and balance.")
    diversity_scale: float = Field(
        default=0.5, gt=0, description="Embedding distance at which a frame counts as wholly new."
    )
    select_threshold: float = Field(default=0.3, ge=0, le=1, description="Composite score a frame needs.")
    random_rate: float = Field(
        default=0.02, ge=0, le=1, description="Share of frames picked at random (control) when strata are off."
    )
    per_camera_per_minute: int = Field(default=30, gt=0, description="Most frames queued per camera per minute.")
    stratum_s: float = Field(
        default=5.0,
        ge=0,
        description="Labels spread over cameras and time: of each camera's frames in a window this long, only the "
        "stratum_frames most doubtful go to the labelers, when the window ends (0: every frame past the threshold "
        "goes at once).",
    )
    stratum_frames: int = Field(default=1, gt=0, description="Frames queued per camera per stratum window.")
    stratum_random: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="With strata, the share of camera windows (a coin flipped as each begins) that send one frame "
        "drawn uniformly from the window as the random control arm, instead of the most doubtful ones; random_rate "
        "then plays no part.",
    )
    per_class_per_hour: int = Field(default=500, gt=0, description="Most frames queued per predicted class per hour.")
    dedup_window_s: float = Field(default=60.0, gt=0, description="Near-duplicate memory per camera, seconds.")
    dedup_max_distance: int = Field(default=6, ge=0, le=64, description="Hash bits two frames may differ by.")
    dedup_box_iou: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="A near duplicate must also show the same objects: as many boxes, each matched to one of the "
        "same class at this IoU (0: the hash alone decides).",
    )
    max_deliveries: int = Field(default=5, gt=0, description="Import attempts before a frame is dead-lettered.")
    reclaim_idle_s: float = Field(default=30.0, gt=0, description="Reclaim review items pending this long.")
    reconcile_interval_s: float = Field(default=10.0, gt=0, description="How often all annotations are re-read.")
    dataset_name: str = Field(default="labels", description="Data set versions cut from labels are named so.")
    cut_every: int = Field(default=50, gt=0, description="Cut a new data set version every N new labels.")
    webhook_secret: SecretStr = Field(
        default=SecretStr("change-me-webhook"), description="Shared secret Label Studio sends with its webhooks."
    )
