"""The champion/shadow A/B, replayed from stored human-labelled frames.

Both models predict on the same frames in this process, one after the other, through the evaluation's predict
path (ONNX Runtime, down to ``EVAL_CONF`` as mAP needs); each model's matches are computed once per frame and
cached (``learning.ab_stats.FrameMatches``). The decision rests on the random control arm (frames picked at random,
never trained on: unbiased) and the gold sets. The frames the uncertainty samplers picked are biased towards the
champion's failures, so they are reported apart ("biased arm"), and only those the challenger did not train on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from learning.ab_decision import ABVerdict, Guards, run_ab
from learning.ab_stats import FrameMatches, match_frame, paired_bootstrap
from learning.arms import ArmSplit
from learning.datasets import LabelledImage
from learning.evaluation import ground_truth, predict_all
from visionloop.offline import prepare_ultralytics
from visionloop.registry import ModelVersion
from visionloop.settings import Settings


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
    random_frames: int
    biased: dict[str, Any]
    latency_ms: dict[str, float]
    gold: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.verdict.to_dict(),
            "random_arm_frames": self.random_frames,
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
) -> ABReplayResult:
    """Replay both models on the labelled frames and decide on the random arm plus the gold guard.

    ``gold``: (champion, shadow) mAP50 on the gold set where the shadow loses most, and that set's ref.
    """
    from visionloop.model_setup import ultralytics_config_dir

    prepare_ultralytics(ultralytics_config_dir(settings))
    random = [image for _, image in arms.random]
    biased = [image for _, image in arms.picked if image.image.stem not in trained_on]
    frames = random + biased
    names = champion.class_names or shadow.class_names
    imgsz = settings.serving.imgsz
    champ = replay_model(champion.onnx_path, frames, names, imgsz)
    chall = replay_model(shadow.onnx_path, frames, names, imgsz)
    n = len(random)
    guards = Guards(champ.p99_ms, chall.p99_ms, gold[0], gold[1])
    verdict = run_ab(champ.matches[:n], chall.matches[:n], guards, settings.ab, settings.serving.conf_threshold)
    ab = settings.ab
    boot = paired_bootstrap(champ.matches[n:], chall.matches[n:], ab.bootstrap_resamples, ab.confidence, ab.seed)
    return ABReplayResult(
        verdict=verdict,
        random_frames=n,
        biased={
            "frames": len(biased),
            "bootstrap": asdict(boot),
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
