"""The champion/shadow A/B, replayed from stored human-labelled frames.

Both models predict on the same frames in this process, one after the other, through the evaluation's predict
path (ONNX Runtime, down to ``EVAL_CONF`` as mAP needs); each model's matches are computed once per frame and
cached (``learning.ab_stats.FrameMatches``). The decision rests on the frames neither model chose nor trained on:
the random control arm (unbiased for the traffic the cameras see now) plus every gold set's frames (the conditions
the models must keep handling), pooled, so ``ab.min_frames`` can be reached without spending most of a label budget
on random frames. The random arm alone and each gold set are reported too. The frames the uncertainty samplers
picked are biased towards the champion's failures, so they are reported apart ("biased arm"), and only those the
challenger did not train on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from visionloop.core.offline import prepare_ultralytics
from visionloop.core.registry import ModelVersion
from visionloop.core.settings import Settings
from visionloop.learning.ab_decision import ABVerdict, Guards, run_ab
from visionloop.learning.ab_stats import FrameMatches, match_frame, paired_bootstrap
from visionloop.learning.arms import ArmSplit
from visionloop.learning.datasets import LabelledImage
from visionloop.learning.evaluation import ground_truth, predict_all


@dataclass(frozen=True)
class ModelReplay:
    matches: list[FrameMatches]
    latencies_ms: list[float]  # per frame (batch 1), the first (session warm-up) left out when there are others

    @property
    def p99_ms(self) -> float:
        return float(np.percentile(self.latencies_ms, 99)) if self.latencies_ms else 0.0


def replay_model(
    model_path: Path, images: Sequence[LabelledImage], class_names: Sequence[str], imgsz: int
) -> ModelReplay:
    """Predict frame by frame, timing each, and match every frame once against its ground truth."""
    if not images:
        return ModelReplay([], [])
    latencies: list[float] = []
    last = [time.perf_counter()]

    def tick(frames: int) -> None:
        now = time.perf_counter()
        latencies.append((now - last[0]) * 1000 / max(frames, 1))
        last[0] = now

    predictions = predict_all(model_path, list(images), class_names, imgsz, "onnxruntime", progress=tick, batch=1)
    matches = []
    for image, pred in zip(images, predictions, strict=True):
        truth = ground_truth(image)
        matches.append(match_frame(truth.xyxy, truth.class_id, pred.xyxy, pred.confidence, pred.class_id))
    return ModelReplay(matches, latencies[1:] if len(latencies) > 1 else latencies)


@dataclass(frozen=True)
class ABReplayResult:
    verdict: ABVerdict
    decision_frames: dict[str, int]
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
    champ = replay_model(champion.onnx_path, frames, names, imgsz)
    chall = replay_model(shadow.onnx_path, frames, names, imgsz)
    n_random, n = len(random), len(random) + len(pooled_gold)
    guards = Guards(champ.p99_ms, chall.p99_ms, gold[0], gold[1])
    verdict = run_ab(champ.matches[:n], chall.matches[:n], guards, settings.ab, settings.serving.conf_threshold)
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
        decision_frames={"random_arm": n_random, "gold": len(pooled_gold), "total": n},
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
