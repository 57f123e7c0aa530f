"""Settings of learning: models visionloop builds, training, data set versions, the loop, the A/B."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from visionloop.core.settings.base import StrictModel


class ModelSettings(StrictModel):
    architecture: str = Field(
        default="yolov8n.yaml",
        description="Ultralytics model yaml used when visionloop builds a model from scratch (no download).",
    )
    class_names: list[str] = Field(
        default_factory=lambda: ["circle", "square", "triangle", "star", "cross"],
        min_length=1,
        description="Class names, in class-id order, of models visionloop builds itself.",
    )


class AugmentationSettings(StrictModel):
    fliplr: float = Field(default=0.5, ge=0, le=1, description="Chance of a horizontal flip.")
    flipud: float = Field(default=0.0, ge=0, le=1, description="Chance of a vertical flip.")
    degrees: float = Field(default=10.0, ge=0, le=180, description="Random rotation range, +/- degrees.")
    hsv_h: float = Field(default=0.015, ge=0, le=1, description="Hue jitter (fraction).")
    hsv_s: float = Field(default=0.5, ge=0, le=1, description="Saturation jitter (fraction).")
    hsv_v: float = Field(default=0.4, ge=0, le=1, description="Brightness (value) jitter (fraction).")
    scale: float = Field(default=0.4, ge=0, le=1, description="Random scale jitter (+/- fraction).")
    mosaic: float = Field(default=1.0, ge=0, le=1, description="Chance of a 4-image mosaic.")
    close_mosaic: int = Field(default=5, ge=0, description="Turn mosaic off for the last N epochs.")


class TrainingSettings(StrictModel):
    epochs: int = Field(default=30, gt=0, description="Training epochs.")
    max_seconds: float = Field(
        default=0,
        ge=0,
        description="Time budget of one training run: no epoch starts that would end past it, at the pace of the "
        "epochs so far (the first always runs; 0: every epoch). The loop sets it from loop.train_budget_s.",
    )
    imgsz: int = Field(default=320, ge=32, description="Training image size (long side, multiple of 32).")
    batch: int = Field(default=16, gt=0, description="Images per training batch.")
    optimizer: Literal["SGD", "Adam", "AdamW", "auto"] = Field(default="AdamW", description="Optimizer.")
    lr0: float = Field(default=0.002, gt=0, description="Initial learning rate.")
    lrf: float = Field(default=0.05, gt=0, le=1, description="Final learning rate as a fraction of lr0.")
    schedule: Literal["cosine", "linear"] = Field(default="cosine", description="Learning-rate schedule.")
    warmup_epochs: float = Field(default=2.0, ge=0, description="Warm-up epochs.")
    weight_decay: float = Field(default=0.0005, ge=0, description="Weight decay.")
    dropout: float = Field(
        default=0.0, ge=0, lt=1, description="Dropout, where the head supports it (Ultralytics classify heads)."
    )
    patience: int = Field(default=10, ge=0, description="Early stopping: epochs without improvement (0 = off).")
    device: str = Field(default="auto", description="'auto' (GPU if present), 'cpu', 'cuda' or a GPU index.")
    workers: int = Field(default=0, ge=0, description="Data loader workers (Ultralytics uses 0 on CPU).")
    threads: int | None = Field(default=None, gt=0, description="Torch threads for CPU training (default: every core).")
    seed: int = Field(default=0, description="Training seed.")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs a training Ray task asks for.")
    num_cpus: float = Field(
        default=0.5,
        ge=0,
        description="CPUs a training Ray task reserves. Torch uses every core whatever the reservation; it is kept "
        "below 1 so a challenger can train beside the champion and shadow replicas on a 2-core machine.",
    )
    augmentation: AugmentationSettings = Field(
        default_factory=AugmentationSettings, description="Augmentation strengths."
    )


class DataSettings(StrictModel):
    split: tuple[float, float, float] = Field(
        default=(0.7, 0.2, 0.1), description="Train/val/test fractions of a new data set version."
    )
    skip_bad_files: bool = Field(
        default=False,
        description="Skip images with missing, malformed or out-of-range labels (counted) instead of failing.",
    )
    oversample_rare: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Duplicate training images of classes rarer than this fraction of the most common class "
        "until they reach it (0 = off).",
    )


class LoopSettings(StrictModel):
    """The learning loop: new labels -> challenger -> shadow -> A/B decision -> (auto-)promotion."""

    enabled: bool = Field(default=True, description="Run the loop worker with the service.")
    min_new_labels: int = Field(
        default=50, gt=0, description="Human labels (uncertainty arm) new since the last challenger before training."
    )
    epochs: int = Field(default=10, gt=0, description="Fine-tuning epochs of a challenger (from the champion).")
    train_budget_s: float = Field(
        default=1200,
        ge=0,
        description="Training time of one cycle, teacher and student together: the teacher may use half when a "
        "student follows, the student what is left (0: no budget; epochs alone decide).",
    )
    replay_images: int = Field(
        default=800,
        ge=0,
        description="Images of the champion's own training data mixed into fine-tuning (replay keeps the old "
        "domain from being forgotten); 0 trains on the new labels alone. On shift C, 400 left forgetting 0.069 "
        "(the gate rejected the cycle) and 800 (all 720 of the bootstrap's) -0.004 (promoted).",
    )
    label_repeats: int = Field(
        default=3,
        ge=1,
        description="Times each human label appears in a challenger's training set: a few hundred labels beside "
        "the replay would otherwise be a small share of every epoch.",
    )
    pool_every_s: float = Field(
        default=1.0, gt=0, description="The unlabelled pool keeps one frame per camera this often (capture time)."
    )
    pool_frames: int = Field(
        default=2000,
        ge=0,
        description="Frames the unlabelled pool keeps (the oldest go first); 0: no pool, so no pseudo-labels and no "
        "batch-norm re-estimation.",
    )
    pseudo_labels: int = Field(
        default=600,
        ge=0,
        description="Pool frames a teacher (the champion fine-tuned on the human labels) labels for the challenger "
        "(0: the challenger learns from human labels alone, in one training instead of two).",
    )
    pseudo_keep: float = Field(
        default=0.5, gt=0, le=1, description="The teacher's confidence from which a box becomes a pseudo-label."
    )
    pseudo_ignore: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="From this confidence up to pseudo_keep, a box's region is painted out of the pseudo-labelled "
        "frame (neither object nor background for the student); at or above pseudo_keep there is no such band.",
    )
    pseudo_flip_agree: bool = Field(
        default=True, description="A pseudo-label must also be found in the mirrored frame (test-time augmentation)."
    )
    bn_adapt: bool = Field(
        default=False,
        description="Re-estimate the challenger's batch-norm statistics on the unlabelled pool after training.",
    )
    freeze: int = Field(
        default=10,
        ge=0,
        description="Layers of the backbone frozen while fine-tuning (Ultralytics freeze; 0: none). Freezing keeps "
        "what the champion knew: on shift B it cut forgetting from 0.025 to 0.0002 on A gold at nearly the same gain.",
    )
    max_gold_regression: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Sanity gate: a candidate whose gold mAP50 is more than this below the champion's on any gold "
        "set never becomes the shadow.",
    )
    gold_datasets: list[str] = Field(
        default_factory=list,
        description="Gold data sets (refs) the gate and the A/B use; empty: every data set named '*-gold'.",
    )
    labels_dataset: str = Field(
        default="labels",
        description="Data set whose versions hold the human labels, the one the labeling worker cuts: left out, it "
        "follows labeling.dataset_name (its one source); set, it must equal it.",
    )
    training_dataset: str = Field(
        default="challenger", description="Name of the training set versions the loop builds."
    )
    auto_promote: bool = Field(default=False, description="Promote the shadow when the A/B decides PROMOTE.")
    poll_interval_s: float = Field(default=2.0, gt=0, description="How often the worker reads the events stream.")


class ABSettings(StrictModel):
    """The champion/challenger A/B on human-labelled shadow frames (learning.ab_stats, learning.ab_decision)."""

    min_gain: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Promote only when the lower bound of the CI of the mAP50 difference (challenger - champion) "
        "exceeds this.",
    )
    min_frames: int = Field(
        default=200,
        ge=1,
        description="Labelled frames the A/B needs before it may decide. Power note: paired design (both models "
        "on the same frames), exact McNemar on per-frame outcomes; assuming 25% of frames discordant (one model "
        "right, the other wrong) split 17.5% / 7.5% in the challenger's favour (a net 10 points), alpha 0.05 "
        "two-sided and power 0.8 need (1.96 sqrt(0.25) + 0.84 sqrt(0.25 - 0.01))^2 / 0.01 = 194 frames "
        "(Connor 1987; learning.ab_stats.mcnemar_sample_size), rounded up to 200.",
    )
    pooling: Literal["sets", "frames"] = Field(
        default="sets",
        description="How the decision set's evaluation sets (the site's random arm, each gold set) are pooled: "
        "'sets' weighs each set the same (the mean of their mAP50 differences, resampled within each set), "
        "'frames' scores all frames as one set (the gold sets' frames then outweigh the site's few random ones).",
    )
    bootstrap_resamples: int = Field(
        default=2000, ge=1000, le=100_000, description="Paired bootstrap resamples of the frames."
    )
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1, description="Confidence level of the percentile CI of the mAP50 difference."
    )
    max_latency_ratio: float = Field(
        default=1.5,
        gt=0,
        le=100,
        description="Latency guard: the challenger's p99 latency may be at most this times the champion's.",
    )
    max_gold_regression: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Gold guard: the challenger's gold-set mAP50 may be at most this below the champion's.",
    )
    seed: int = Field(default=0, ge=0, description="Seed of the bootstrap's random generator (reproducible CIs).")
