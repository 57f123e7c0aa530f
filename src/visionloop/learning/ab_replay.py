"""The champion/shadow A/B, replayed from stored human-labelled frames.

Both models predict on the same frames in this process, taking turns frame by frame, through the evaluation's
predict path (ONNX Runtime, down to ``EVAL_CONF`` as mAP needs); each model's matches are computed once per frame
and cached (``learning.ab_stats.FrameMatches``). Taking turns keeps the latency guard fair: a busy spell of the
machine lands on both models' calls, where timing one model's whole run after the other's would charge it to one.

The decision rests on the frames neither model chose nor trained on: the random control arm (unbiased for the
traffic the cameras see now) plus every gold set's frames (the conditions the models must keep handling), pooled,
so ``ab.min_frames`` can be reached without spending most of a label budget on random frames. The random arm alone
and each gold set are reported too. The frames the uncertainty samplers picked are biased towards the champion's
failures, so they are reported apart ("biased arm"), and only those the challenger did not train on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.contracts import Detections
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.registry import ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.ab_decision import ABVerdict, Guards, run_ab
from visionloop.learning.ab_stats import FrameMatches, match_frame, paired_bootstrap
from visionloop.learning.arms import ArmSplit
from visionloop.learning.datasets import LabelledImage
from visionloop.learning.evaluation import EVAL_CONF, EVAL_IOU, ground_truth, read_bgr
from visionloop.learning.gold_gate import served_file
from visionloop.serving.backends import BackendOptions, InferenceBackend, create_backend


@dataclass(frozen=True)
class ModelReplay:
    matches: list[FrameMatches]
    latencies_ms: list[float]  # per frame (batch 1), the first (session warm-up) left out when there are others

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else 0.0


def _engine(model_path: Path, class_names: Sequence[str], imgsz: int) -> InferenceBackend:
    """The evaluation's predict path: ONNX Runtime, down to ``EVAL_CONF`` as mAP needs."""
    options = BackendOptions(
        model_path,
        imgsz=imgsz,
        conf_threshold=EVAL_CONF,
        iou_threshold=EVAL_IOU,
        max_detections=300,
        class_names=tuple(class_names),
    )
    return create_backend("onnxruntime", options)


def replay_models(
    model_paths: Sequence[Path], images: Sequence[LabelledImage], class_names: Sequence[str], imgsz: int
) -> list[ModelReplay]:
    """Predict frame by frame (batch 1) with every model in turn, the first to go rotating from frame to frame,
    timing each call; then match every frame once per model against its ground truth.

    Turns, not one model's whole run after the other's: a busy spell of the machine (another process working for a
    second) slows the calls of every model alike instead of making the one that ran then look slower.
    """
    if not images:
        return [ModelReplay([], []) for _ in model_paths]
    engines = [_engine(path, class_names, imgsz) for path in model_paths]
    predictions: list[list[Detections]] = [[] for _ in engines]
    latencies: list[list[float]] = [[] for _ in engines]
    for index, image in enumerate(images):
        frame = read_bgr(image.image)
        first = index % len(engines)
        for k in [*range(first, len(engines)), *range(first)]:
            started = time.perf_counter()
            predictions[k].extend(engines[k].predict([frame]).detections)
            latencies[k].append((time.perf_counter() - started) * 1000)
    truths = [ground_truth(image) for image in images]
    replays = []
    for predicted, timed in zip(predictions, latencies, strict=True):
        matches = [
            match_frame(truth.xyxy, truth.class_id, pred.xyxy, pred.confidence, pred.class_id)
            for truth, pred in zip(truths, predicted, strict=True)
        ]
        replays.append(ModelReplay(matches, timed[1:] if len(timed) > 1 else timed))
    return replays


def replay_model(
    model_path: Path, images: Sequence[LabelledImage], class_names: Sequence[str], imgsz: int
) -> ModelReplay:
    """One model alone, frame by frame, timing each frame (see :func:`replay_models`)."""
    return replay_models([model_path], images, class_names, imgsz)[0]


@dataclass(frozen=True)
class ABReplayResult:
    verdict: ABVerdict
    decision_frames: dict[str, Any]
    random_arm: dict[str, Any]
    gold_parts: dict[str, Any]
    biased: dict[str, Any]
    latency_ms: dict[str, float]
    gold: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.verdict.to_dict(),
            "random_arm_frames": self.decision_frames["random_arm"],
            "decision_frames": self.decision_frames,
            "random_arm": self.random_arm,
            "gold_sets_ab": self.gold_parts,
            "biased_arm": self.biased,
            "latency_ms": self.latency_ms,
            "gold": self.gold,
        }


def replay_ab(
    settings: Settings,
    champion: ModelVersion,
    shadow: ModelVersion,
    arms: ArmSplit,
    trained_on: set[str],
    gold: tuple[float, float, str | None],
    gold_frames: dict[str, list[LabelledImage]] | None = None,
) -> ABReplayResult:
    """Replay both models on the labelled frames and decide on the random arm plus the gold frames (pooled), with
    the latency and gold guards.

    ``gold``: (champion, shadow) mAP50 on the gold set where the shadow loses most, and that set's ref.
    ``gold_frames``: each gold set's images (ref -> images), pooled into the decision set.
    """
    from visionloop.core.model_setup import ultralytics_config_dir

    prepare_ultralytics(ultralytics_config_dir(settings))
    random = [image for _, image in arms.random]
    golds = gold_frames or {}
    pooled_gold = [image for images in golds.values() for image in images]
    biased = [image for _, image in arms.picked if image.image.stem not in trained_on]
    frames = random + pooled_gold + biased
    names = champion.class_names or shadow.class_names
    imgsz = settings.serving.imgsz
    champ, chall = replay_models([served_file(settings, m) for m in (champion, shadow)], frames, names, imgsz)
    n_random, n = len(random), len(random) + len(pooled_gold)
    guards = Guards(champ.p99_ms, chall.p99_ms, gold[0], gold[1])
    strata = [n_random, *(len(images) for images in golds.values())] if settings.ab.pooling == "sets" else None
    verdict = run_ab(champ.matches[:n], chall.matches[:n], guards, settings.ab, settings.serving.conf_threshold, strata)
    ab = settings.ab

    def bootstrap(start: int, stop: int) -> dict[str, Any]:
        a, b = champ.matches[start:stop], chall.matches[start:stop]
        return asdict(paired_bootstrap(a, b, ab.bootstrap_resamples, ab.confidence, ab.seed))

    parts, start = {}, n_random
    for ref, images in golds.items():
        parts[ref] = {"frames": len(images), "bootstrap": bootstrap(start, start + len(images))}
        start += len(images)
    return ABReplayResult(
        verdict=verdict,
        decision_frames={"random_arm": n_random, "gold": len(pooled_gold), "total": n, "pooling": settings.ab.pooling},
        random_arm={"frames": n_random, "bootstrap": bootstrap(0, n_random)},
        gold_parts=parts,
        biased={
            "frames": len(biased),
            "bootstrap": bootstrap(n, len(frames)),
            "note": "frames the uncertainty samplers picked (biased towards the champion's failures) that the "
            "challenger did not train on; reported, never decided on",
        },
        latency_ms={"champion_p99": champ.p99_ms, "shadow_p99": chall.p99_ms, "frames_timed": len(champ.latencies_ms)},
        gold={
            "guard_set": gold[2],
            "rule": "the gold set where the shadow loses most (min over sets of shadow - champion)",
            "champion_map50": gold[0],
            "shadow_map50": gold[1],
        },
    )
