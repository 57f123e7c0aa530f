"""Hyperparameter search with Ray Tune over lr0, weight decay and augmentation strength."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visionloop.core.ray_runtime import import_ray
from visionloop.core.settings import AugmentationSettings, TrainingSettings
from visionloop.learning.training import train

# Augmentation strength scales every augmentation knob together: one axis the search can move along.
SCALED_AUGMENTATIONS = ("degrees", "hsv_h", "hsv_s", "hsv_v", "scale")


def apply_trial(base: TrainingSettings, config: dict[str, float]) -> TrainingSettings:
    aug = base.augmentation
    strength = float(config.get("aug_strength", 1.0))
    scaled = {
        name: min(getattr(aug, name) * strength, 180.0 if name == "degrees" else 1.0) for name in SCALED_AUGMENTATIONS
    }
    return base.model_copy(
        update={
            "lr0": float(config.get("lr0", base.lr0)),
            "weight_decay": float(config.get("weight_decay", base.weight_decay)),
            "augmentation": AugmentationSettings(**{**aug.model_dump(), **scaled}),
        }
    )


@dataclass(frozen=True)
class TrialResult:
    config: dict[str, float]
    map50: float
    map50_95: float


def _trainable(config: dict[str, Any]) -> None:
    from ray import tune

    settings: TrainingSettings = config["_training"]
    trial = {k: v for k, v in config.items() if not k.startswith("_")}
    work = Path(config["_work"]) / tune.get_context().get_trial_id()
    result = train(
        config["_base"], Path(config["_data"]), apply_trial(settings, trial), work, Path(config["_ultralytics"])
    )
    tune.report(
        {"map50": float(result.metrics.get("map50", 0.0)), "map50_95": float(result.metrics.get("map50_95", 0.0))}
    )


def run_tune(
    base_model: str | Path,
    data_yaml: Path,
    training: TrainingSettings,
    trials: int,
    work: Path,
    ultralytics_dir: Path,
    seed: int = 0,
) -> list[TrialResult]:
    """Run ``trials`` trainings with sampled hyperparameters (one at a time: each uses the whole machine)."""
    ray = import_ray()
    from ray import tune

    if not ray.is_initialized():
        ray.init(address="local", include_dashboard=False, logging_level="warning", log_to_driver=False)
    space: dict[str, Any] = {
        "lr0": tune.loguniform(2e-4, 2e-2),
        "weight_decay": tune.loguniform(1e-5, 1e-3),
        "aug_strength": tune.uniform(0.3, 1.5),
        "_training": training,
        "_base": str(base_model),
        "_data": str(data_yaml.resolve()),
        "_work": str(work.resolve()),
        "_ultralytics": str(ultralytics_dir.resolve()),
    }
    tuner = tune.Tuner(
        tune.with_resources(_trainable, {"cpu": max(training.num_cpus, 1.0), "gpu": training.num_gpus}),
        param_space=space,
        tune_config=tune.TuneConfig(
            metric="map50",
            mode="max",
            num_samples=trials,
            max_concurrent_trials=1,
            search_alg=tune.search.BasicVariantGenerator(random_state=seed),
        ),
        run_config=tune.RunConfig(storage_path=str((work / "ray-results").resolve()), name="tune", verbose=0),
    )
    grid = tuner.fit()
    out = []
    for index in range(len(grid)):
        result = grid[index]
        if result.error or result.config is None or result.metrics is None:
            raise RuntimeError(f"tuning trial {index} failed: {result.error}")
        config = {k: float(v) for k, v in result.config.items() if not k.startswith("_")}
        out.append(TrialResult(config, float(result.metrics["map50"]), float(result.metrics["map50_95"])))
    return sorted(out, key=lambda r: r.map50, reverse=True)
