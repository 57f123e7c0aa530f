"""A challenger's recipe: which labels are new, the job key that names one training, and the training set.

The training set replays part of the champion's own training data beside every picked (non-random) human label:
fine-tuning on the new labels alone forgets the old domain (DESIGN.md section 5 measured -0.15 mAP50 on it), and
the random control arm stays out so it can judge the challenger without bias.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.errors import VisionloopError
from visionloop.core.registry import ModelRegistry, ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.arms import ArmSplit, counts_by_sampler, picked_stems, split_by_arm
from visionloop.learning.datasets import SPLITS, DatasetError, DatasetStore, DatasetVersion, LabelledImage
from visionloop.learning.evaluation import split_images
from visionloop.learning.training import EpochCallback, TrainResult, train, train_on_ray

log = logging.getLogger(__name__)

JOB_META = "loop_job"  # registry and data set meta: the job key a version was made by
LABELS_META = "labels_dataset_version"  # registry meta: the labels version a loop-trained model learnt from


class ChallengerError(VisionloopError):
    """A challenger cannot be built; the message says what to fix."""


def job_key(settings: Settings, champion: str, labels_ref: str) -> str:
    """Deterministic name of one fine-tuning: same champion, same labels, same recipe -> same key.

    A restarted worker recomputes it and finds the version it may already have registered.
    """
    recipe: dict[str, Any] = {
        "champion": champion,
        "labels": labels_ref,
        "epochs": settings.loop.epochs,
        "replay_images": settings.loop.replay_images,
        "label_repeats": settings.loop.label_repeats,
        "pseudo_labels": settings.loop.pseudo_labels,
        "pseudo_keep": settings.loop.pseudo_keep,
        "pseudo_ignore": settings.loop.pseudo_ignore,
        "pseudo_flip_agree": settings.loop.pseudo_flip_agree,
        "bn_adapt": settings.loop.bn_adapt,
        "freeze": settings.loop.freeze,
        "training_dataset": settings.loop.training_dataset,
        "training": settings.training.model_dump(mode="json"),
        "imgsz": settings.serving.imgsz,
    }
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return f"loop-{digest}"


def find_job_version(registry: ModelRegistry, key: str) -> ModelVersion | None:
    """The registry version a job registered, if any (the oldest, should a bug ever have made two)."""
    return next((v for v in registry.versions() if v.meta.get(JOB_META) == key), None)


def _labels_version(store: DatasetStore, ref: str | None) -> DatasetVersion | None:
    if not ref:
        return None
    try:
        return store.get(ref)
    except DatasetError:
        log.warning("labels version %s is gone; counting every label as new", ref)
        return None


def baseline_labels(registry: ModelRegistry, champion: ModelVersion) -> str | None:
    """The labels version new labels are counted against: the newest challenger fine-tuned from this champion
    (whatever became of it: retrying a rejected one on the same labels would give the same model), else the labels
    the champion itself learnt from (None for a model trained outside the loop, such as the bootstrap)."""
    children = [v for v in registry.versions() if v.meta.get("parent") == champion.version and v.meta.get(JOB_META)]
    if children:
        return str(children[-1].meta.get(LABELS_META) or "") or None
    ref = champion.meta.get(LABELS_META)
    return str(ref) if ref else None


def new_label_count(store: DatasetStore, labels: DatasetVersion, baseline_ref: str | None) -> int:
    """Picked (non-random) labelled frames of ``labels`` not already in the baseline labels version."""
    baseline = _labels_version(store, baseline_ref)
    known = picked_stems(baseline) if baseline is not None else set()
    return len(picked_stems(labels) - known)


def champion_weights(champion: ModelVersion) -> Path:
    if not champion.torch_path.is_file():
        raise ChallengerError(
            f"champion {champion.version} has no model.pt (an ONNX-only model cannot be fine-tuned): register a "
            "champion with its Ultralytics weights ('visionloop bootstrap' or 'visionloop train')"
        )
    return champion.torch_path


def _replay(store: DatasetStore, champion: ModelVersion, budget: int, seed: int) -> dict[str, list[LabelledImage]]:
    """Up to ``budget`` images of the champion's training data, a seeded sample, each in the split it had."""
    ref = champion.meta.get("dataset_version")
    if not ref or budget <= 0:
        return {}
    try:
        source = store.get(str(ref))
    except DatasetError:
        log.warning("champion %s's training data %s is gone; fine-tuning without replay", champion.version, ref)
        return {}
    pool: list[tuple[str, LabelledImage]] = []
    for split in ("train", "val"):
        try:
            images, _ = split_images(source.data_yaml, split)
        except DatasetError:
            continue
        pool.extend((split, image) for image in images if "__copy" not in image.image.stem)
    pool.sort(key=lambda item: (item[0], item[1].image.name))
    picked = np.random.default_rng(seed).permutation(len(pool))[:budget]
    out: dict[str, list[LabelledImage]] = {}
    for index in sorted(int(i) for i in picked):
        split, image = pool[index]
        out.setdefault(split, []).append(image)
    return out


def training_set_for_job(store: DatasetStore, name: str, key: str) -> DatasetVersion | None:
    return next((v for v in reversed(store.versions(name)) if v.manifest.get(JOB_META) == key), None)


def build_training_set(
    store: DatasetStore,
    settings: Settings,
    champion: ModelVersion,
    labels: DatasetVersion,
    key: str,
    arms: ArmSplit | None = None,
) -> DatasetVersion:
    """Replay + every picked label of ``labels`` (in the split it has there); never a random-arm frame.

    The version made by an earlier attempt at the same job is reused (versions are immutable).
    """
    existing = training_set_for_job(store, settings.loop.training_dataset, key)
    if existing is not None:
        return existing
    arms = arms or split_by_arm(labels)
    class_names = [str(n) for n in labels.manifest["class_names"]]
    if champion.class_names and champion.class_names != class_names:
        raise ChallengerError(
            f"labels {labels.ref} name classes {class_names}, champion {champion.version} {champion.class_names}: "
            "a fine-tuned head would mislabel them"
        )
    splits: dict[str, list[LabelledImage]] = {split: [] for split in SPLITS}
    for split, images in _replay(store, champion, settings.loop.replay_images, settings.training.seed).items():
        splits[split].extend(images)
    replayed = sum(len(v) for v in splits.values())
    for split, image in arms.picked:
        splits[split].append(image)
    repeats = {image.image: settings.loop.label_repeats for split, image in arms.picked if split == "train"}
    meta = {
        "source": "loop",
        JOB_META: key,
        "champion": champion.version,
        "replay_from": champion.meta.get("dataset_version"),
        "replay_images": replayed,
        LABELS_META: labels.ref,
        "label_counts": counts_by_sampler(labels),
        "random_arm_excluded": len(arms.random),
        "label_repeats": settings.loop.label_repeats,
    }
    return store.create(settings.loop.training_dataset, splits, class_names, meta=meta, repeats=repeats)


def trained_stems(training_set: DatasetVersion) -> set[str]:
    """Stems of the images a challenger learnt from (the train split of its training set)."""
    return {Path(rel).stem for rel in training_set.manifest["files"] if rel.startswith("images/train/")}


def fine_tune(
    settings: Settings,
    champion: ModelVersion,
    data_yaml: Path,
    out_dir: Path,
    on_epoch: EpochCallback | None = None,
    budget_s: float = 0.0,
) -> TrainResult:
    """Fine-tune from the champion's weights: as a Ray task (``training.num_cpus``/``num_gpus``) when Ray is up,
    in this process otherwise (``visionloop loop run`` without the service; only then is ``on_epoch`` called).
    ``budget_s``: the run's time budget (``training.max_seconds``; 0: none)."""
    from visionloop.core.model_setup import ultralytics_config_dir
    from visionloop.core.ray_runtime import import_ray

    weights = champion_weights(champion)
    training = settings.training.model_copy(update={"epochs": settings.loop.epochs, "max_seconds": budget_s})
    ultralytics_dir = ultralytics_config_dir(settings)
    overrides = {"freeze": settings.loop.freeze} if settings.loop.freeze else None
    if import_ray().is_initialized():
        return train_on_ray(weights, data_yaml, training, out_dir, ultralytics_dir, overrides)
    return train(weights, data_yaml, training, out_dir, ultralytics_dir, on_epoch=on_epoch, overrides=overrides)
