"""Rolling accuracy of the current champion against human labels, on the random control arm only.

Drift statistics say the traffic changed; only human labels say whether the champion got worse (confidence cannot
see the objects it misses). The frames of the random arm were picked at random, not where the champion looked
unsure, so they estimate its accuracy on the traffic the cameras send now without bias. The latest
``drift.accuracy_window`` of them are replayed through the evaluation's predict path (ONNX Runtime, the champion's
``model.onnx``), matched with the A/B's cached matching (Ultralytics' validator at IoU 0.5) and scored: mAP50, and
precision and recall at the serving threshold, each with a seeded bootstrap CI over frames (boxes of one frame are
not independent, so frames are the unit resampled). Predictions are cached per (model version, frame): a new label
costs one prediction, a new champion one pass over the window.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import redis

from visionloop.core.contracts import Detections
from visionloop.core.errors import RegistryError
from visionloop.core.registry import ModelRegistry, ModelVersion
from visionloop.core.settings import Settings
from visionloop.core.streams import ACCURACY_STATE_FIELD, StreamNames
from visionloop.learning.ab_stats import FrameMatches, map50, match_frame
from visionloop.learning.arms import META_DIR, RANDOM_ARM, SAMPLER_FIELD
from visionloop.learning.evaluation import ground_truth, predict_all
from visionloop.learning.yolo_source import LabelledImage, read_images

log = logging.getLogger(__name__)

CAMERA_FIELD = "camera_id"

ALL_SCOPE = "_all"
CONFIDENCE = 0.95
RESAMPLES = 500  # bootstrap resamples of frames: ~1-5 s at 200 frames (Ultralytics AP), only when the window changed
MATCH_IOU = 0.5  # learning.ab_stats matches at this IoU
METRICS = ("map50", "precision", "recall")

Predictor = Callable[[Path, Sequence[LabelledImage], Sequence[str], int], list[Detections]]


def _onnx_predict(model: Path, images: Sequence[LabelledImage], names: Sequence[str], imgsz: int) -> list[Detections]:
    return predict_all(model, list(images), names, imgsz, "onnxruntime")


def parse_frame_id(frame_id: str) -> tuple[str | None, float | None]:
    """(camera id, capture time in s) of a ``FrameResult.frame_id`` ('<camera>-<seq>-<ms>'); Nones otherwise."""
    parts = frame_id.rsplit("-", 2)
    if len(parts) == 3 and parts[0] and parts[1].isdigit() and parts[2].isdigit():
        return parts[0], int(parts[2]) / 1000
    return None, None


@dataclass(frozen=True)
class LabelledFrame:
    """A random-arm frame the harvester wrote: its files, camera and when it was captured (or labelled)."""

    frame_id: str
    camera_id: str | None
    captured: float
    image: Path
    label: Path
    stamp: tuple[int, int, int]  # the label file's (mtime ns, inode, size): a relabel changes it


def _stamp(stat: os.stat_result) -> tuple[int, int, int]:
    """What changes when a file is rewritten, in place or (as the harvester does) by a rename."""
    return stat.st_mtime_ns, stat.st_ino, stat.st_size


@dataclass
class _MetaEntry:
    stamp: tuple[int, int, int]
    sampler: str
    camera_id: str | None


class RandomArmIndex:
    """The random arm's frames in the incoming folder; each meta file is read once (again only if rewritten)."""

    def __init__(self, incoming: Path) -> None:
        self.incoming = incoming
        self._meta: dict[str, _MetaEntry] = {}

    def _entry(self, frame_id: str, path: Path, stamp: tuple[int, int, int]) -> _MetaEntry:
        known = self._meta.get(frame_id)
        if known is not None and known.stamp == stamp:
            return known
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        meta = meta if isinstance(meta, dict) else {}
        camera = meta.get(CAMERA_FIELD)
        entry = _MetaEntry(stamp, str(meta.get(SAMPLER_FIELD) or ""), str(camera) if camera else None)
        self._meta[frame_id] = entry
        return entry

    def latest(self, limit: int) -> list[LabelledFrame]:
        """The ``limit`` most recently captured random-arm frames that have both an image and a label file."""
        meta_dir = self.incoming / META_DIR
        if not meta_dir.is_dir():
            return []
        frames: list[LabelledFrame] = []
        with os.scandir(meta_dir) as entries:
            for item in entries:
                if not item.name.endswith(".json"):
                    continue
                frame_id = item.name[: -len(".json")]
                with contextlib.suppress(OSError):
                    entry = self._entry(frame_id, Path(item.path), _stamp(item.stat()))
                    if entry.sampler == RANDOM_ARM:
                        found = self._frame(frame_id, entry)
                        if found is not None:
                            frames.append(found)
        frames.sort(key=lambda f: (f.captured, f.frame_id))
        return frames[-limit:] if limit > 0 else []

    def _frame(self, frame_id: str, entry: _MetaEntry) -> LabelledFrame | None:
        image = self.incoming / "images" / f"{frame_id}.jpg"
        label = self.incoming / "labels" / f"{frame_id}.txt"
        try:
            label_stat = label.stat()
        except OSError:
            return None
        if not image.is_file():
            return None
        camera, captured = parse_frame_id(frame_id)
        when = captured if captured is not None else label_stat.st_mtime
        return LabelledFrame(frame_id, entry.camera_id or camera, when, image, label, _stamp(label_stat))


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


def _interval(estimate: float | None, samples: npt.NDArray[np.float64]) -> dict[str, float | None]:
    finite = samples[np.isfinite(samples)]
    if estimate is None or not len(finite):
        return {"estimate": estimate, "low": None, "high": None}
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(finite, [tail, 1 - tail])
    # A percentile interval need not contain the estimate (a skewed statistic); widen it to do so.
    return {"estimate": estimate, "low": float(min(low, estimate)), "high": float(max(high, estimate))}


def _ratio(num: npt.NDArray[np.int64], den: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def score_matches(matches: Sequence[FrameMatches], threshold: float, resamples: int, seed: int) -> dict[str, Any]:
    """mAP50, and precision and recall at ``threshold``, each with a percentile bootstrap CI over frames (the same
    resampled frames for all three). Precision without a kept prediction, recall without a box: None."""
    n = len(matches)
    kept = np.array([int((m.confidence >= threshold).sum()) for m in matches], np.int64)
    hits = np.array([int(m.tp[m.confidence >= threshold].sum()) for m in matches], np.int64)
    boxes = np.array([len(m.target_class) for m in matches], np.int64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n)) if n else np.zeros((0, 0), np.int64)
    maps = np.array([map50(matches, row) for row in draws], np.float64)
    precisions = _ratio(hits[draws].sum(axis=1), kept[draws].sum(axis=1))
    recalls = _ratio(hits[draws].sum(axis=1), boxes[draws].sum(axis=1))
    precision = float(hits.sum() / kept.sum()) if kept.sum() else None
    recall = float(hits.sum() / boxes.sum()) if boxes.sum() else None
    return {
        "frames": n,
        "instances": int(boxes.sum()),
        "predictions_kept": int(kept.sum()),
        "map50": _interval(map50(matches) if boxes.sum() else None, maps),
        "precision": _interval(precision, precisions),
        "recall": _interval(recall, recalls),
    }


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


class AccuracyMonitor:
    """Keeps the prediction cache between evaluations, stores each report in the drift-state hash and sets the
    accuracy gauges when it runs inside Ray (the drift monitor actor calls :meth:`update` periodically)."""

    def __init__(
        self,
        settings: Settings,
        resamples: int = RESAMPLES,
        predict: Predictor | None = None,
    ) -> None:
        self._settings = settings
        self._resamples = resamples
        self._predict = predict
        self.cache = PredictionCache()
        self._index = RandomArmIndex(settings.var.labels_incoming)
        self._gauges: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None

    def update(self, store: Any = None) -> dict[str, Any]:
        """Recompute (cheap when nothing changed), store in Redis (``store``: a redis client) and set gauges."""
        report = accuracy_report(
            self._settings, self.cache, resamples=self._resamples, predict=self._predict, index=self._index
        )
        self.last = report
        if store is not None:
            key = StreamNames(self._settings.redis.stream_prefix).drift_state
            try:
                store.hset(key, ACCURACY_STATE_FIELD, json.dumps(report, separators=(",", ":")))
            except (redis.RedisError, OSError) as exc:  # Redis away: the gauges and the next round still work
                log.warning("accuracy report not stored: %s", exc)
        self._set_gauges(report)
        return report

    def _metrics(self) -> dict[str, Any] | None:
        if self._gauges is None:
            try:
                import ray
                from ray.util import metrics

                if not ray.is_initialized():
                    return None
                self._gauges = {
                    "accuracy": metrics.Gauge(
                        "visionloop_accuracy",
                        "Champion accuracy on the random-arm human labels (estimate and 95% CI bounds).",
                        tag_keys=("metric", "bound"),
                    ),
                    "frames": metrics.Gauge("visionloop_accuracy_frames", "Random-arm labelled frames scored."),
                    "reference": metrics.Gauge(
                        "visionloop_accuracy_reference",
                        "The champion's own mAP50 (gold sets) accuracy is compared with.",
                        tag_keys=("metric",),
                    ),
                }
            except Exception as exc:  # no Ray, or no metrics agent: reports still go to Redis
                log.debug("accuracy gauges unavailable: %s", exc)
                return None
        return self._gauges

    def _set_gauges(self, report: dict[str, Any]) -> None:
        gauges = self._metrics()
        if gauges is None:
            return
        gauges["frames"].set(float(report.get("frames") or 0))
        reference = (report.get("reference") or {}).get("map50")
        if reference is not None:
            gauges["reference"].set(float(reference), tags={"metric": "map50"})
        overall = report.get("overall") or {}
        for metric in METRICS:
            values = overall.get(metric) or {} if overall.get("status") == "ok" else {}
            for bound in ("estimate", "low", "high"):
                value = values.get(bound)
                # NaN while there is no number (too few labels): a stale value must not keep an alert firing.
                number = float(value) if value is not None and math.isfinite(value) else math.nan
                gauges["accuracy"].set(number, tags={"metric": metric, "bound": bound})
