"""Explanations point at the object they explain: the pointing game on the synthetic world, with a detector trained
here for about a minute (benchmarks/explain.py's recipe: large objects on plain backgrounds, 160 px, trained on the
CPU with a fixed seed and thread count, so every machine trains the same model).

The acceptance test of issue 12: the pixel of highest attribution falls on the explained object's own pixels (its
mask, not just its box). A hit rate measured here is a sample: the test asserts its 95% Wilson interval's lower
bound, on enough detections that this says something, against a bar far above chance. The target itself (>= 0.8)
is tracked by the benchmark (``python -m benchmarks.explain --recipe``), which reports the rate against it. The
frames of the game come from a seed the detector never trained on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.explain import (
    EASY,
    GAME_SEED,
    RECIPE_SIZE,
    matched_detections,
    pointing_game,
    summarise,
    train_recipe_detector,
)
from tests.conftest import make_settings
from visionloop.core.explanations import ExplainRequest
from visionloop.core.imaging import encode_jpeg
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.registry import ModelRegistry
from visionloop.core.settings import ExplainSettings
from visionloop.explaining.explainer import RawDetector, load_detector, make_score_fn
from visionloop.explaining.worker import ExplainWorker
from visionloop.simulation.world import CLASS_NAMES
from visionloop.simulation.world.scene import render_scene
from visionloop.simulation.world.yolo_export import scene_rng

pytestmark = pytest.mark.integration
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def trained_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("explain-recipe")
    return train_recipe_detector(work, work / "ultralytics")


@pytest.fixture(scope="module")
def detector(trained_onnx: Path) -> RawDetector:
    return load_detector(trained_onnx, RECIPE_SIZE, threads=2)


# Measured on the shared 2-core machine (the pinned recipe, trained in 5 min under load): 80 detections in 53 frames,
# hit rate 0.76 (61/80), 95% Wilson interval [0.66, 0.84]; a peak drawn at random lands on the object 0.065 of the
# time (on it within its box: 0.55; the peaks fell in the box 0.96). About 1.8 s per explanation: 2.5 min for the game.
DETECTIONS = 80
LEAST_HIT_RATE = 0.5  # the bar for the interval's lower bound: most peaks on the object, whatever the chance level
CHANCE_MARGIN = 0.3  # and that far above the chance that a peak drawn at random lands on the object
HIDING_CHECKS, HIDING_LEAST = 10, 8  # measured: 10 of 10 (28 of the first 30)


@pytest.mark.timeout(1200)  # the module's training runs in this test's setup: minutes on two busy cores
def test_pointing_game(detector: RawDetector) -> None:
    """The hit rate's lower 95% bound clears 0.5 and chance by a wide margin. Not the 0.8 target: with 80
    detections a true rate of 0.8 would fail a bound of 0.8 most of the time; the benchmark tracks the target."""
    settings = ExplainSettings()  # the shipped max_evals, grey mask and IoU match
    started = time.perf_counter()
    trials = pointing_game(detector, EASY, RECIPE_SIZE, settings, detections=DETECTIONS)
    summary = {**summarise(trials), "max_evals": settings.max_evals, "wall_s": round(time.perf_counter() - started, 1)}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "explain_pointing_game.json").write_text(json.dumps(summary, indent=2))
    print(f"\npointing game: {summary}")
    assert len(trials) == DETECTIONS, f"the detector matched only {len(trials)} ground-truth objects in 200 frames"
    low, _ = summary["hit_rate_ci95"]
    bar = max(LEAST_HIT_RATE, summary["chance_in_frame"] + CHANCE_MARGIN)
    assert low >= bar, f"hit rate {summary['hit_rate']:.2f}, 95% CI lower bound {low:.2f} < {bar:.2f}: {summary}"


def test_hiding_the_object_lowers_its_score(detector: RawDetector) -> None:
    """Greying out the object's own pixels costs its detection most of its score, and more than greying out as many
    pixels elsewhere: for most (not every) detection, since a detector may also read an object's surroundings."""
    settings = ExplainSettings()
    outcomes: list[tuple[int, float, float, float]] = []
    for index in range(80):
        scene = render_scene(scene_rng(GAME_SEED + 1, index), EASY, RECIPE_SIZE, RECIPE_SIZE)
        for box, class_id, truth in matched_detections(detector, scene):
            score = make_score_fn(detector, tuple(box), class_id, settings.iou_match, settings.batch_size)
            hidden = scene.image.copy()
            hidden[scene.masks[truth]] = settings.mask_value
            elsewhere = scene.image.copy()
            away = np.roll(scene.masks[truth], (RECIPE_SIZE // 2, RECIPE_SIZE // 2), axis=(0, 1))
            elsewhere[away & ~scene.masks[truth]] = settings.mask_value  # as many pixels, somewhere else
            shown, masked, other = score(np.stack([scene.image, hidden, elsewhere]))[:, 0]
            outcomes.append((index, float(shown), float(masked), float(other)))
        if len(outcomes) >= HIDING_CHECKS:
            break
    assert len(outcomes) >= HIDING_CHECKS, f"only {len(outcomes)} matched detections in 80 frames"
    lowered = [o for o in outcomes[:HIDING_CHECKS] if o[2] < o[1] / 2 and o[3] > o[2]]
    columns = "(frame, shown, hidden, elsewhere)"
    assert len(lowered) >= HIDING_LEAST, f"{len(lowered)} of {HIDING_CHECKS} lowered; {columns}: {outcomes}"


def test_worker_explains_a_registered_model(
    trained_onnx: Path, detector: RawDetector, tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    registry = ModelRegistry(tmp_path / "var" / "models")
    version = registry.register(trained_onnx, None, {"imgsz": RECIPE_SIZE, "class_names": list(CLASS_NAMES)})
    scenes = (render_scene(scene_rng(GAME_SEED + 2, i), EASY, RECIPE_SIZE, RECIPE_SIZE) for i in range(40))
    scene, found = next((s, m) for s in scenes if (m := matched_detections(detector, s)))
    box, class_id, _ = found[0]
    x1, y1, x2, y2 = (float(v) for v in box)
    image = encode_jpeg(scene.image, 95)
    fields = ExplainRequest(version.version, "frame-1", 0, (x1, y1, x2, y2), class_id, image).to_fields()
    worker = ExplainWorker(make_settings(tmp_path / "var", REDIS__URL=redis_server.url), redis_server.url, warm=False)
    try:
        answer = worker.handle({k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()})
    finally:
        worker.stop()
    assert answer["state"] == "done", answer
    assert answer["model_version"] == version.version and answer["evals"] > 100 and answer["score"] > 0
    assert 0 <= answer["peak"][0] < RECIPE_SIZE and 0 <= answer["peak"][1] < RECIPE_SIZE
