"""K-fold cross-validation for small label sets: train K models, each scored on the fold it never saw."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from visionloop.core.settings import TrainingSettings
from visionloop.learning.datasets import LabelledImage, stratified_split
from visionloop.learning.evaluation import evaluate
from visionloop.learning.export import export_onnx
from visionloop.learning.training import train


@dataclass(frozen=True)
class FoldResult:
    fold: int
    train_images: int
    val_images: int
    map50: float
    map50_95: float


def k_folds(images: Sequence[LabelledImage], k: int, seed: int) -> list[list[LabelledImage]]:
    """K folds, stratified like the data set splits (each fold gets its share of every class)."""
    if k < 2:
        raise ValueError("k-fold needs k >= 2")
    if len(images) < k:
        raise ValueError(f"{len(images)} images cannot make {k} folds")
    folds: list[list[LabelledImage]] = [[] for _ in range(k)]
    # Peel one fold at a time off the remainder with a stratified split of the right size.
    remaining = list(images)
    for index in range(k - 1):
        share = 1.0 / (k - index)
        split = stratified_split(remaining, (share, 1.0 - share, 0.0), seed + index)
        folds[index], remaining = split["train"], split["val"]
    folds[-1] = remaining
    return folds


def _write_lists(
    work: Path, fold: int, train_items: list[LabelledImage], val_items: list[LabelledImage], names: Sequence[str]
) -> Path:
    folder = work / f"fold{fold}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.txt").write_text("\n".join(str(i.image.resolve()) for i in train_items) + "\n")
    (folder / "val.txt").write_text("\n".join(str(i.image.resolve()) for i in val_items) + "\n")
    data = {"path": str(folder.resolve()), "train": "train.txt", "val": "val.txt", "names": dict(enumerate(names))}
    (folder / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder / "data.yaml"


def cross_validate(
    base_model: str | Path,
    images: Sequence[LabelledImage],
    names: Sequence[str],
    k: int,
    training: TrainingSettings,
    work: Path,
    ultralytics_dir: Path,
    imgsz: int,
    operating_threshold: float,
    on_fold: Callable[[FoldResult], None] | None = None,
) -> dict[str, object]:
    folds = k_folds(images, k, training.seed)
    results = []
    for index, held_out in enumerate(folds):
        train_items = [item for j, fold in enumerate(folds) if j != index for item in fold]
        data_yaml = _write_lists(work, index, train_items, held_out, names)
        trained = train(base_model, data_yaml, training, work / f"fold{index}" / "run", ultralytics_dir)
        onnx = export_onnx(trained.weights, imgsz, trained.weights.with_suffix(".onnx"))
        scored = evaluate(onnx, data_yaml, "val", operating_threshold, imgsz, ultralytics_dir, class_names=names)
        result = FoldResult(index, len(train_items), len(held_out), scored.map50, scored.map50_95)
        results.append(result)
        if on_fold:
            on_fold(result)
    maps = [r.map50 for r in results]
    return {
        "k": k,
        "folds": [r.__dict__ for r in results],
        "map50_mean": float(np.mean(maps)),
        "map50_std": float(statistics.pstdev(maps)),
        "map50_95_mean": float(np.mean([r.map50_95 for r in results])),
    }
