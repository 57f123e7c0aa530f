"""The champion's accuracy report on the latest random-arm labels, overall and per camera.

The window's frames are replayed through the evaluation's predict path (ONNX Runtime, the champion's
``model.onnx``), matched with the A/B's matching (Ultralytics' validator at IoU 0.5) and scored by
:mod:`.accuracy_stats`. Predictions are cached per (model version, frame): a new label costs one prediction, a new
champion one pass over the window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from visionloop.core.contracts import Detections
from visionloop.core.errors import RegistryError
from visionloop.core.registry import ModelRegistry, ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.ab_stats import FrameMatches, match_frame
from visionloop.learning.evaluation import ground_truth, predict_all
from visionloop.learning.yolo_source import LabelledImage, read_images
from visionloop.monitoring.accuracy_index import RandomArmIndex
from visionloop.monitoring.accuracy_stats import CONFIDENCE, RESAMPLES, score_matches

ALL_SCOPE = "_all"
MATCH_IOU = 0.5  # learning.ab_stats matches at this IoU

Predictor = Callable[[Path, Sequence[LabelledImage], Sequence[str], int], list[Detections]]


def _onnx_predict(model: Path, images: Sequence[LabelledImage], names: Sequence[str], imgsz: int) -> list[Detections]:
    return predict_all(model, list(images), names, imgsz, "onnxruntime")


@dataclass(frozen=True)
class _Prediction:
    width: int
    height: int
    xyxy: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int64]


@dataclass
class PredictionCache:
    """Predictions per (model version, frame id), kept for the current window only; plus the last report."""

    predictions: dict[tuple[str, str], _Prediction] = field(default_factory=dict)
    predicted: int = 0  # frames run through a model, in total (tests and the report read it)
    signature: tuple[Any, ...] | None = None
    report: dict[str, Any] | None = None

    def keep_only(self, keys: set[tuple[str, str]]) -> None:
        self.predictions = {k: v for k, v in self.predictions.items() if k in keys}


def reference_of(model: ModelVersion) -> dict[str, Any]:
    """The champion's own accuracy where the registry recorded it: the mean of its gold sets' mAP50 (the loop's
    models carry them), else the gold score of a bootstrap model, else its validation split's; None if none."""
    meta = model.meta
    gold = meta.get("gold")
    if isinstance(gold, dict) and gold:
        scores = {str(k): float(v) for k, v in gold.items() if isinstance(v, int | float)}
        if scores:
            return {"map50": float(np.mean(list(scores.values()))), "source": "gold", "per_set": scores}
    metrics = meta.get("metrics") or {}
    if isinstance(metrics.get("map50"), int | float):
        return {"map50": float(metrics["map50"]), "source": "gold", "per_set": {}}
    val = (metrics.get("val") or {}).get("map50") if isinstance(metrics.get("val"), dict) else None
    if isinstance(val, int | float):
        return {"map50": float(val), "source": "val", "per_set": {}}
    return {"map50": None, "source": None, "per_set": {}}


def not_enough(frames: int, needed: int) -> dict[str, Any]:
    return {
        "status": "not_enough_labels",
        "frames": frames,
        "needed": needed,
        "message": f"not enough random-arm labels: {frames} of the {needed} needed",
    }


def _truth(image: LabelledImage, pred: _Prediction) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    labels, w, h = image.labels, pred.width, pred.height
    cx, cy, bw, bh = labels[:, 1] * w, labels[:, 2] * h, labels[:, 3] * w, labels[:, 4] * h
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) if len(labels) else np.zeros((0, 4))
    return xyxy.astype(np.float64), labels[:, 0].astype(np.int64)


def _predict_new(
    model: ModelVersion,
    images: list[LabelledImage],
    cache: PredictionCache,
    settings: Settings,
    predict: Predictor,
) -> tuple[int, list[str]]:
    """Run the model on the window's frames it has not seen (an unreadable one is reported and left out); returns
    how many it ran and the bad files."""
    unseen = [image.image for image in images if (model.version, image.image.stem) not in cache.predictions]
    if not unseen:
        return 0, []
    checked = read_images(unseen, max(len(model.class_names), 1), check_pixels=True)
    fresh = checked.images
    detections = predict(model.onnx_path, fresh, model.class_names, settings.serving.imgsz)
    for image, det in zip(fresh, detections, strict=True):
        truth = ground_truth(image)  # reads the frame once for its size; boxes are recomputed from labels later
        cache.predictions[(model.version, image.image.stem)] = _Prediction(
            truth.width,
            truth.height,
            np.asarray(det.xyxy, np.float32),
            np.asarray(det.confidence, np.float32),
            np.asarray(det.class_id, np.int64),
        )
    cache.predicted += len(fresh)
    return len(fresh), [f"{path.name}: {reason}" for path, reason in checked.bad]


def _champion(settings: Settings) -> ModelVersion | None:
    try:
        return ModelRegistry(settings.var.models).champion()
    except RegistryError:
        return None


def accuracy_report(
    settings: Settings,
    cache: PredictionCache | None = None,
    *,
    resamples: int = RESAMPLES,
    predict: Predictor | None = None,
    index: RandomArmIndex | None = None,
) -> dict[str, Any]:
    """The champion's accuracy on the latest random-arm labels, overall and per camera (JSON-ready).

    Below ``drift.min_accuracy_frames`` a scope says "not enough labels" (how many it has and needs), never a
    number. With ``cache`` an unchanged window returns the previous report and a changed one predicts only its new
    frames.
    """
    from visionloop.core.model_setup import ultralytics_config_dir
    from visionloop.core.offline import prepare_ultralytics

    cache = cache if cache is not None else PredictionCache()
    index = index or RandomArmIndex(settings.var.labels_incoming)
    drift = settings.drift
    model = _champion(settings)
    if model is None:
        return {"status": "no_champion", "message": "no champion in the registry", "computed_at": time.time()}
    window = index.latest(drift.accuracy_window)
    signature = (model.version, resamples, tuple((f.frame_id, f.stamp) for f in window))
    if cache.signature == signature and cache.report is not None:
        return {**cache.report, "predicted_now": 0}
    prepare_ultralytics(ultralytics_config_dir(settings))
    report = read_images([f.image for f in window], max(len(model.class_names), 1), check_pixels=False)
    predicted, unreadable = _predict_new(model, report.images, cache, settings, predict or _onnx_predict)
    images = [image for image in report.images if (model.version, image.image.stem) in cache.predictions]
    cache.keep_only({(model.version, image.image.stem) for image in images})
    cameras = {f.frame_id: f.camera_id for f in window}
    scopes: dict[str, list[FrameMatches]] = {ALL_SCOPE: []}
    for image in images:
        pred = cache.predictions[(model.version, image.image.stem)]
        xyxy, classes = _truth(image, pred)
        matched = match_frame(xyxy, classes, pred.xyxy, pred.confidence, pred.class_id)
        scopes[ALL_SCOPE].append(matched)
        camera = cameras.get(image.image.stem)
        if camera:
            scopes.setdefault(camera, []).append(matched)
    out = {
        "model_version": model.version,
        "computed_at": time.time(),
        "window": drift.accuracy_window,
        "min_frames": drift.min_accuracy_frames,
        "conf_threshold": settings.serving.conf_threshold,
        "iou": MATCH_IOU,
        "confidence": CONFIDENCE,
        "resamples": resamples,
        "seed": settings.ab.seed,
        "reference": reference_of(model),
        "predicted_now": predicted,
        "bad_frames": ([f"{path.name}: {reason}" for path, reason in report.bad] + unreadable)[:20],
        **_scope_reports(scopes, settings, resamples),
    }
    cache.signature, cache.report = signature, out
    return out


def _scope_reports(scopes: dict[str, list[FrameMatches]], settings: Settings, resamples: int) -> dict[str, Any]:
    needed = settings.drift.min_accuracy_frames

    done: dict[tuple[int, ...], dict[str, Any]] = {}  # one camera only: its frames are the overall's, score once

    def one(matches: list[FrameMatches]) -> dict[str, Any]:
        if len(matches) < needed:
            return not_enough(len(matches), needed)
        key = tuple(id(m) for m in matches)
        if key not in done:
            scored = score_matches(matches, settings.serving.conf_threshold, resamples, settings.ab.seed)
            done[key] = {"status": "ok", **scored}
        return done[key]

    overall = one(scopes[ALL_SCOPE])
    return {
        "status": overall["status"],
        "frames": overall["frames"],
        "needed": needed,
        "message": overall.get("message", f"accuracy on the latest {overall['frames']} random-arm labels"),
        "overall": overall,
        "per_camera": {camera: one(m) for camera, m in sorted(scopes.items()) if camera != ALL_SCOPE},
    }
