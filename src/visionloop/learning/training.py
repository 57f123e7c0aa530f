"""Training and fine-tuning with Ultralytics, offline, with progress and an ETA; optionally as a Ray task."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visionloop.core.errors import VisionloopError
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.settings import TrainingSettings

log = logging.getLogger(__name__)
EpochCallback = Callable[[int, int, dict[str, float]], None]


class TrainingError(VisionloopError):
    """Training could not start or finish; the message says why."""


@dataclass(frozen=True)
class TrainResult:
    weights: Path
    epochs_run: int
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "0" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("training.device is 'cuda' but torch sees no GPU; use 'auto' or 'cpu'")
        return "0"
    return device


def ultralytics_train_args(settings: TrainingSettings, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our settings in Ultralytics' words."""
    aug = settings.augmentation
    device = resolve_device(settings.device)
    args: dict[str, Any] = {
        "epochs": settings.epochs,
        "imgsz": settings.imgsz,
        "batch": settings.batch,
        "optimizer": settings.optimizer,
        "lr0": settings.lr0,
        "lrf": settings.lrf,
        "cos_lr": settings.schedule == "cosine",
        "warmup_epochs": settings.warmup_epochs,
        "weight_decay": settings.weight_decay,
        "dropout": settings.dropout,
        "patience": settings.patience or 10_000,
        "device": device,
        "workers": settings.workers,
        "seed": settings.seed,
        "deterministic": True,
        "fliplr": aug.fliplr,
        "flipud": aug.flipud,
        "degrees": aug.degrees,
        "hsv_h": aug.hsv_h,
        "hsv_s": aug.hsv_s,
        "hsv_v": aug.hsv_v,
        "scale": aug.scale,
        "mosaic": aug.mosaic,
        "close_mosaic": aug.close_mosaic,
        # The AMP check downloads weights on CUDA; plots pull fonts and cost time on CPU.
        "amp": False,
        "plots": False,
        "verbose": False,
        "exist_ok": True,
    }
    args.update(overrides or {})
    return args


def _epoch_metrics(trainer: Any) -> dict[str, float]:
    metrics = {k: float(v) for k, v in (trainer.metrics or {}).items() if isinstance(v, int | float)}
    return {
        "map50": metrics.get("metrics/mAP50(B)", 0.0),
        "map50_95": metrics.get("metrics/mAP50-95(B)", 0.0),
        "precision": metrics.get("metrics/precision(B)", 0.0),
        "recall": metrics.get("metrics/recall(B)", 0.0),
    }


def _checked_base(base_model: str | Path, data_yaml: Path) -> str:
    if not data_yaml.is_file():
        raise TrainingError(f"no data.yaml at '{data_yaml}'")
    base = str(base_model)
    if base.endswith(".pt") and not Path(base).is_file():
        raise TrainingError(f"weights file '{base}' does not exist")
    if not base.endswith((".pt", ".yaml", ".yml")):
        raise TrainingError(f"base model '{base}' must be a .pt weights file or an architecture .yaml")
    return base


def train(
    base_model: str | Path,
    data_yaml: Path,
    settings: TrainingSettings,
    out_dir: Path,
    ultralytics_dir: Path,
    on_epoch: EpochCallback | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainResult:
    """Train from a model yaml (from scratch) or fine-tune from a weights file; returns the best weights.

    ``base_model``: an Ultralytics architecture name ('yolov8n.yaml') or a path to a .pt file. Nothing is downloaded.
    """
    prepare_ultralytics(ultralytics_dir)
    from ultralytics import YOLO  # type: ignore[attr-defined]

    model = YOLO(_checked_base(base_model, data_yaml), task="detect")
    history: list[dict[str, float]] = []
    started = time.monotonic()

    closing: dict[str, float] = {}
    stopped = [False]  # the last epoch has run: the next call is Ultralytics' closing validation of the best weights
    epochs_from = [started]  # when the first epoch began (data set caching and set-up come before)

    def epoch_end(trainer: Any) -> None:
        row = {"epoch": float(trainer.epoch + 1), **_epoch_metrics(trainer)}
        if stopped[0] or trainer.epoch + 1 > trainer.epochs:
            closing.update(row)
            return
        history.append(row)
        elapsed = time.monotonic() - started
        pace = (time.monotonic() - epochs_from[0]) / len(history)
        if settings.max_seconds and elapsed + pace > settings.max_seconds:
            trainer.stop = True  # another epoch at this pace would end past the budget
            log.info("training stops after %d of %d epochs: %.0f s of a %.0f s budget", len(history),
                     trainer.epochs, elapsed, settings.max_seconds)  # fmt: skip
        stopped[0] = bool(trainer.stop)
        if on_epoch:
            on_epoch(int(trainer.epoch + 1), int(trainer.epochs), row)

    def use_every_core(trainer: Any) -> None:
        # Ultralytics sets torch to cores - 1 threads on CPU (for loader workers); with workers=0 on a small box
        # that leaves a core idle, so give torch all of them.
        if str(trainer.device) == "cpu":
            import torch

            torch.set_num_threads(settings.threads or os.cpu_count() or 1)

    model.add_callback("on_fit_epoch_end", epoch_end)
    model.add_callback("on_train_start", lambda _: epochs_from.__setitem__(0, time.monotonic()))
    model.add_callback("on_pretrain_routine_end", use_every_core)
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ultralytics_train_args(settings, overrides)
    try:
        model.train(data=str(data_yaml.resolve()), project=str(out_dir.resolve()), name="run", **args)
    except (FileNotFoundError, RuntimeError, ValueError, SyntaxError) as exc:
        raise TrainingError(f"training on '{data_yaml}' failed: {exc}") from exc
    weights_dir = out_dir / "run" / "weights"
    best = weights_dir / "best.pt" if (weights_dir / "best.pt").is_file() else weights_dir / "last.pt"
    if not best.is_file():
        raise TrainingError(f"training finished without writing weights under '{weights_dir}'")
    final = out_dir / "model.pt"
    shutil.copyfile(best, final)
    return TrainResult(
        weights=final,
        epochs_run=len(history),
        seconds=time.monotonic() - started,
        metrics=closing or (history[-1] if history else {}),
        history=history,
    )


def train_on_ray(
    base_model: str | Path,
    data_yaml: Path,
    settings: TrainingSettings,
    out_dir: Path,
    ultralytics_dir: Path,
    overrides: dict[str, Any] | None = None,
) -> TrainResult:
    """The same training as a Ray task with the configured CPUs/GPUs, so a cluster can place it on a GPU node.

    Paths must be visible to the node that runs it (shared storage on a cluster).
    """
    from visionloop.core.ray_runtime import import_ray

    ray = import_ray()
    remote = ray.remote(num_cpus=settings.num_cpus, num_gpus=settings.num_gpus, max_retries=0)(train)
    result: TrainResult = ray.get(
        remote.remote(base_model, data_yaml, settings, out_dir, ultralytics_dir, None, overrides)
    )
    return result
