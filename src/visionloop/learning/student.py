"""A challenger's second stage: the teacher (the champion fine-tuned on the human labels) labels the unlabelled
pool, and the student (the champion again) learns from both, so a few hundred human labels carry a site's thousands
of frames (learning.adaptation says how the pseudo-labels are filtered). Optionally the student's batch-norm
statistics are then re-estimated on the pool.

The pseudo-labels become a data set version of their own (``<loop.training_dataset>-pseudo``), named by the job
key, so a challenger's lineage says exactly what it learnt from and a restarted job reuses them.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from visionloop.core.offline import prepare_ultralytics
from visionloop.core.registry import ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.adaptation import PseudoLabelRecipe, pseudo_label, reestimate_batchnorm
from visionloop.learning.datasets import DatasetStore, DatasetVersion
from visionloop.learning.export import export_onnx
from visionloop.learning.training import EpochCallback, TrainResult

log = logging.getLogger(__name__)
PSEUDO_META = "pseudo_labels"  # registry meta: the pseudo-label version a challenger learnt from, and its counts


AVOID_S = 1.0  # pool frames this close in time to a frame to avoid are left out (neighbouring frames look alike)


def capture_ms(stem: str, first: bool = False) -> int | None:
    """The capture time (ms) in a frame id ``<camera>-<seq>-<ms>``, or (``first``) in a pool frame's name
    ``<ms>-<seq>``."""
    part = stem.split("-")[0 if first else -1]
    return int(part) if part.isdigit() else None


def pool_sample(root: Path, count: int, avoid: Collection[str] = ()) -> list[Path]:
    """``count`` frames of the unlabelled pool spread evenly over its time span (all of them when it holds fewer),
    none within AVOID_S of a frame named in ``avoid`` (frame ids: the random arm stays unseen, even unlabelled)."""
    frames = sorted(root.glob("*/*.jpg"), key=lambda p: p.name) if root.is_dir() else []
    avoided = sorted(ms for ms in (capture_ms(stem) for stem in avoid) if ms is not None)
    if avoided:
        times = np.array(avoided, np.int64)

        def near(frame: Path) -> bool:
            ms = capture_ms(frame.stem, first=True)
            if ms is None:
                return False
            at = int(np.searchsorted(times, ms))
            return any(abs(int(times[i]) - ms) <= AVOID_S * 1000 for i in (at - 1, at) if 0 <= i < len(times))

        frames = [frame for frame in frames if not near(frame)]
    if count <= 0 or not frames:
        return []
    if len(frames) <= count:
        return frames
    step = len(frames) / count
    return [frames[int(i * step)] for i in range(count)]


def pseudo_set_for_job(store: DatasetStore, name: str, key: str) -> DatasetVersion | None:
    return next((v for v in reversed(store.versions(name)) if v.manifest.get("loop_job") == key), None)


def pseudo_labelled_set(
    settings: Settings,
    store: DatasetStore,
    teacher: TrainResult,
    class_names: list[str],
    key: str,
    frames: list[Path],
    work: Path,
) -> DatasetVersion:
    """The teacher's labels for ``frames`` as a data set version (the one of an earlier attempt of ``key`` reused)."""
    name = f"{settings.loop.training_dataset}-pseudo"
    existing = pseudo_set_for_job(store, name, key)
    if existing is not None:
        return existing
    loop = settings.loop
    onnx = export_onnx(teacher.weights, settings.serving.imgsz, work / "teacher.onnx")
    recipe = PseudoLabelRecipe(loop.pseudo_keep, loop.pseudo_ignore, loop.pseudo_flip_agree)
    with tempfile.TemporaryDirectory(prefix="pseudo-", dir=work) as tmp:
        report = pseudo_label(onnx, frames, class_names, settings.serving.imgsz, recipe, Path(tmp))
        meta = {"source": "pseudo-labels", "loop_job": key, "boxes": report.boxes, "ignored": report.ignored,
                "disagreed": report.disagreed, "recipe": recipe.__dict__}  # fmt: skip
        return store.create(name, {"train": report.images}, class_names, meta=meta)


def student_data_yaml(training_set: DatasetVersion, pseudo: DatasetVersion, out: Path) -> Path:
    """Both versions' training images as one training set; the human labels' validation split."""
    data = yaml.safe_load(training_set.data_yaml.read_text())
    root = Path(data["path"])
    data["train"] = [str(root / data["train"]), str(pseudo.path / "images" / "train")]
    data["val"] = str(root / data["val"])
    data["path"] = str(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


FineTune = Callable[[Settings, ModelVersion, Path, Path, EpochCallback | None, float], TrainResult]


def teacher_budget_s(settings: Settings) -> float:
    """The teacher's share of ``loop.train_budget_s``: half when a student will follow (pseudo-labels on, frames in
    the pool), all of it otherwise; 0 when there is no budget."""
    loop = settings.loop
    student_follows = loop.pseudo_labels > 0 and any(settings.var.unlabelled.glob("*/*.jpg"))
    return loop.train_budget_s / 2 if student_follows else loop.train_budget_s


def student_budget_s(settings: Settings, teacher: TrainResult) -> float:
    """What the teacher left of ``loop.train_budget_s`` (at least a second, so the student runs its first epoch)."""
    budget = settings.loop.train_budget_s
    return max(budget - teacher.seconds, 1.0) if budget else 0.0


def train_student(
    settings: Settings,
    store: DatasetStore,
    champion: ModelVersion,
    training_set: DatasetVersion,
    teacher: TrainResult,
    key: str,
    work: Path,
    fine_tune: FineTune,
    on_epoch: EpochCallback | None = None,
    avoid: Collection[str] = (),
) -> tuple[TrainResult, dict[str, Any]]:
    """The challenger: the teacher itself when the pool is empty or pseudo-labels are off, else a student trained on
    the human labels and the teacher's pseudo-labels; batch-norm re-estimated when ``loop.bn_adapt``. Returns it
    and what it learnt from, for the registry. ``avoid``: frame ids (the random arm) whose neighbours in time stay
    out of the pool sample, so the A/B's unbiased frames are not even seen unlabelled."""
    from visionloop.core.model_setup import ultralytics_config_dir

    prepare_ultralytics(ultralytics_config_dir(settings))  # the loop worker's process may not have yet
    loop = settings.loop
    class_names = [str(n) for n in training_set.manifest["class_names"]]
    frames = pool_sample(settings.var.unlabelled, loop.pseudo_labels, avoid)
    meta: dict[str, Any] = {"pool_frames": len(frames)}
    result = teacher
    if frames and loop.pseudo_labels:
        pseudo = pseudo_labelled_set(settings, store, teacher, class_names, key, frames, work)
        meta[PSEUDO_META] = {"version": pseudo.ref, "frames": len(frames), "boxes": pseudo.manifest.get("boxes"),
                             "ignored": pseudo.manifest.get("ignored")}  # fmt: skip
        student = fine_tune(settings, champion, student_data_yaml(training_set, pseudo, work / "student-data"),
                            work / "student", on_epoch, student_budget_s(settings, teacher))  # fmt: skip
        result = replace(student, seconds=teacher.seconds + student.seconds)
    if loop.bn_adapt and loop.pool_frames:
        bn_frames = pool_sample(settings.var.unlabelled, loop.pool_frames, avoid)
        if bn_frames:
            weights = reestimate_batchnorm(result.weights, bn_frames, settings.serving.imgsz, work / "bn" / "model.pt")
            result = replace(result, weights=weights)
            meta["bn_adapt_frames"] = len(bn_frames)
    return result, meta
