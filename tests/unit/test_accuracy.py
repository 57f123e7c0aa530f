"""Rolling accuracy on the random control arm: only random-arm frames count, a number only from enough labels,
bootstrap CIs around the estimate, predictions cached per (model version, frame), and the real ONNX champion."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import redis

from tests.conftest import make_settings
from visionloop.core.contracts import Detections
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.registry import ModelVersion
from visionloop.core.settings import Settings
from visionloop.core.streams import ACCURACY_STATE_FIELD, StreamNames
from visionloop.learning.yolo_source import LabelledImage
from visionloop.monitoring.accuracy import (
    AccuracyMonitor,
    PredictionCache,
    accuracy_report,
    parse_frame_id,
    reference_of,
)
from visionloop.simulation.world import CLASS_NAMES, load_domains, render_scene

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = load_domains(ROOT / "configs" / "domains.yaml")["A"]
T0_MS = 1_700_000_000_000


def write_frame(incoming: Path, camera: str, seq: int, sampler: str = "random", seed: int = 0) -> str:
    """One labelled frame as the harvester leaves it: meta (written first), the image, the YOLO label."""
    frame_id = f"{camera}-{seq}-{T0_MS + seq * 1000}"
    scene = render_scene(np.random.default_rng([seed, seq]), DOMAIN, 160, 160)
    for sub in ("meta", "images", "labels"):
        (incoming / sub).mkdir(parents=True, exist_ok=True)
    meta = {"sampler": sampler, "task_id": seq, "camera_id": camera, "model_version": "v1"}
    (incoming / "meta" / f"{frame_id}.json").write_text(json.dumps(meta))
    cv2.imwrite(str(incoming / "images" / f"{frame_id}.jpg"), scene.image)
    lines = []
    for class_id, (x1, y1, x2, y2) in zip(scene.class_ids, scene.boxes, strict=True):
        lines.append(
            f"{class_id} {(x1 + x2) / 320:.6f} {(y1 + y2) / 320:.6f} {(x2 - x1) / 160:.6f} {(y2 - y1) / 160:.6f}"
        )
    (incoming / "labels" / f"{frame_id}.txt").write_text("\n".join(lines) + "\n")
    return frame_id


def truth_boxes(image: LabelledImage) -> tuple[np.ndarray, np.ndarray]:
    h, w = cv2.imread(str(image.image)).shape[:2]
    lab = image.labels
    xyxy = (
        np.stack(
            [
                (lab[:, 1] - lab[:, 3] / 2) * w,
                (lab[:, 2] - lab[:, 4] / 2) * h,
                (lab[:, 1] + lab[:, 3] / 2) * w,
                (lab[:, 2] + lab[:, 4] / 2) * h,
            ],
            axis=1,
        )
        if len(lab)
        else np.zeros((0, 4))
    )
    return xyxy, lab[:, 0].astype(int)


class FakeModel:
    """Predicts from the frame's own labels: every box (perfect), or with misses and false alarms by frame."""

    def __init__(self, noisy: bool = False) -> None:
        self.noisy = noisy
        self.calls: list[list[str]] = []

    def __call__(self, model: Path, images: Sequence[LabelledImage], names: Sequence[str], imgsz: int) -> list[Any]:
        assert model.name == "model.onnx" and model.is_file()
        self.calls.append([image.image.stem for image in images])
        out = []
        for index, image in enumerate(images):
            xyxy, classes = truth_boxes(image)
            conf = np.full(len(classes), 0.9, np.float32)
            if self.noisy and len(classes):
                keep = np.arange(len(classes)) % 3 != index % 3  # miss about a third of the boxes
                xyxy, classes, conf = xyxy[keep], classes[keep], conf[keep]
                if index % 2:  # and a confident false alarm on every other frame
                    xyxy = np.vstack([xyxy, [[1, 1, 9, 9]]])
                    classes = np.append(classes, 0)
                    conf = np.append(conf, np.float32(0.8))
            out.append(Detections(xyxy.astype(np.float32), conf, classes.astype(np.int32)))
        return out


def settings_for(var_dir: Path, window: int = 200, minimum: int = 5) -> Settings:
    return make_settings(var_dir, DRIFT__ACCURACY_WINDOW=str(window), DRIFT__MIN_ACCURACY_FRAMES=str(minimum))


def test_frame_ids_give_camera_and_capture_time() -> None:
    assert parse_frame_id("cam-north_1-42-1700000000123") == ("cam-north_1", 1_700_000_000.123)
    assert parse_frame_id("upload") == (None, None)
    assert parse_frame_id("a-b-c") == (None, None)


def test_below_the_minimum_it_says_not_enough_labels_and_counts_only_the_random_arm(var_dir: Path) -> None:
    settings = settings_for(var_dir, minimum=5)
    incoming = settings.var.labels_incoming
    for seq in range(4):
        write_frame(incoming, "cam1", seq)
    for seq in range(10, 16):  # picked by uncertainty: biased, never part of the accuracy
        write_frame(incoming, "cam1", seq, sampler="least_confidence")
    model = FakeModel()
    report = accuracy_report(settings, predict=model, resamples=50)
    assert report["status"] == "not_enough_labels"
    assert (report["frames"], report["needed"]) == (4, 5)
    assert "4 of the 5" in report["message"]
    assert "map50" not in report["overall"] and "map50" not in report["per_camera"]["cam1"]
    assert json.loads(json.dumps(report)) == report  # JSON-ready


def test_perfect_predictions_score_one_with_a_ci_around_it(var_dir: Path) -> None:
    settings = settings_for(var_dir, minimum=6)
    incoming = settings.var.labels_incoming
    for seq in range(6):
        write_frame(incoming, "cam1", seq)
    report = accuracy_report(settings, predict=FakeModel(), resamples=100)
    overall = report["overall"]
    assert report["status"] == overall["status"] == "ok"
    assert overall["frames"] == 6 and overall["instances"] > 6
    assert overall["map50"]["estimate"] == pytest.approx(0.995)  # Ultralytics' interpolated AP of a perfect model
    assert overall["precision"]["estimate"] == overall["recall"]["estimate"] == 1.0
    for metric in ("map50", "precision", "recall"):
        assert overall[metric]["low"] <= overall[metric]["estimate"] <= overall[metric]["high"]


def test_noisy_predictions_bootstrap_ci_contains_the_estimate_and_is_seeded(var_dir: Path) -> None:
    settings = settings_for(var_dir, minimum=10)
    incoming = settings.var.labels_incoming
    for seq in range(12):
        write_frame(incoming, "cam1" if seq % 2 else "cam2", seq)
    report = accuracy_report(settings, predict=FakeModel(noisy=True), resamples=200)
    overall = report["overall"]
    assert overall["status"] == "ok" and overall["frames"] == 12
    recall, precision = overall["recall"]["estimate"], overall["precision"]["estimate"]
    assert 0.4 < recall < 0.9 and 0.6 < precision < 1.0  # a third missed, a false alarm every other frame
    for metric in ("map50", "precision", "recall"):
        interval = overall[metric]
        assert interval["low"] <= interval["estimate"] <= interval["high"]
        assert interval["high"] - interval["low"] > 0.01  # 12 frames cannot pin it down
    # per camera: 6 frames each, below the minimum of 10
    assert set(report["per_camera"]) == {"cam1", "cam2"}
    assert report["per_camera"]["cam1"] == {
        "status": "not_enough_labels",
        "frames": 6,
        "needed": 10,
        "message": "not enough random-arm labels: 6 of the 10 needed",
    }
    again = accuracy_report(settings, predict=FakeModel(noisy=True), resamples=200)
    assert again["overall"] == overall  # the seed makes the CI reproducible


def test_cache_runs_only_new_frames_and_the_window_keeps_the_latest(var_dir: Path) -> None:
    settings = settings_for(var_dir, window=10, minimum=2)
    incoming = settings.var.labels_incoming
    for seq in range(8):
        write_frame(incoming, "cam1", seq)
    model, cache = FakeModel(), PredictionCache()
    first = accuracy_report(settings, cache, predict=model, resamples=50)
    assert first["predicted_now"] == 8 and len(model.calls) == 1
    second = accuracy_report(settings, cache, predict=model, resamples=50)
    assert second["predicted_now"] == 0 and len(model.calls) == 1  # nothing new: no model call at all
    assert second["overall"] == first["overall"]
    ids = [write_frame(incoming, "cam1", seq) for seq in (8, 9, 10, 11)]
    third = accuracy_report(settings, cache, predict=model, resamples=50)
    assert sorted(model.calls[-1]) == sorted(ids)  # only the four new frames ran
    assert third["predicted_now"] == 4 and third["frames"] == 10  # the window: the latest 10 of 12
    assert len(cache.predictions) == 10 and cache.predicted == 12
    assert not any(key[1].startswith(("cam1-0-", "cam1-1-")) for key in cache.predictions)  # the oldest left
    relabelled = incoming / "labels" / f"{ids[0]}.txt"
    relabelled.write_text("")  # a labeler removed every box of one frame: scored again, not predicted again
    fourth = accuracy_report(settings, cache, predict=model, resamples=50)
    assert fourth["predicted_now"] == 0 and len(model.calls) == 2
    assert fourth["overall"]["instances"] < third["overall"]["instances"]


def test_reference_comes_from_the_registry_meta(tmp_path: Path) -> None:
    def version(meta: dict[str, Any]) -> ModelVersion:
        return ModelVersion("v1", tmp_path, meta)

    gold = reference_of(version({"gold": {"a-gold/v1": 0.6, "b-gold/v2": 0.8}, "metrics": {"val": {"map50": 0.9}}}))
    assert gold["source"] == "gold" and gold["map50"] == pytest.approx(0.7) and len(gold["per_set"]) == 2
    assert reference_of(version({"metrics": {"map50": 0.5}}))["map50"] == 0.5
    assert reference_of(version({"metrics": {"val": {"map50": 0.4}}})) == {"map50": 0.4, "source": "val", "per_set": {}}
    assert reference_of(version({"metrics": {}}))["map50"] is None


def test_monitor_stores_the_report_in_the_drift_state_hash(var_dir: Path, redis_server: EmbeddedRedis) -> None:
    settings = settings_for(var_dir, minimum=3)
    incoming = settings.var.labels_incoming
    for seq in range(3):
        write_frame(incoming, "cam1", seq)
    monitor = AccuracyMonitor(settings, resamples=50, predict=FakeModel())
    client = redis.Redis.from_url(redis_server.url)
    try:
        report = monitor.update(client)  # outside Ray: no gauges, and no error for their absence
        stored = json.loads(client.hget(StreamNames(settings.redis.stream_prefix).drift_state, ACCURACY_STATE_FIELD))
    finally:
        client.close()
    assert stored["overall"]["status"] == "ok" and stored["frames"] == 3
    assert stored["model_version"] == report["model_version"] == "v1"
    assert monitor.cache.predicted == 3


def test_the_real_onnx_champion_on_harvested_frames(var_dir: Path, redis_server: EmbeddedRedis) -> None:
    """The untrained champion of the test session through ONNX Runtime, on frames the real harvester wrote."""
    from visionloop.labeling.sync import FRAMES_DIR, LabelHarvester

    settings = settings_for(var_dir, minimum=3)
    incoming = settings.var.labels_incoming
    files = var_dir / "labeling-files"
    client = redis.Redis.from_url(redis_server.url)
    harvester = LabelHarvester(
        None,
        1,
        files,
        incoming,
        client,
        StreamNames(settings.redis.stream_prefix),
        list(CLASS_NAMES),  # type: ignore[arg-type]
    )
    try:
        for seq in range(4):
            frame_id = f"cam9-{seq}-{T0_MS + seq}"
            scene = render_scene(np.random.default_rng(seq), DOMAIN, 240, 320)
            (files / FRAMES_DIR).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(files / FRAMES_DIR / f"{frame_id}.jpg"), scene.image)
            regions = [
                {
                    "type": "rectanglelabels",
                    "value": {
                        "x": x1 / 3.2,
                        "y": y1 / 2.4,
                        "width": (x2 - x1) / 3.2,
                        "height": (y2 - y1) / 2.4,
                        "rectanglelabels": [CLASS_NAMES[c]],
                    },
                }
                for c, (x1, y1, x2, y2) in zip(scene.class_ids, scene.boxes, strict=True)
            ]
            task = {
                "id": seq,
                "data": {"frame_id": frame_id, "camera_id": "cam9", "sampler": "random" if seq else "margin"},
            }
            assert harvester.accept(task, {"id": 100 + seq, "result": regions})
    finally:
        client.close()
    cache = PredictionCache()
    report = accuracy_report(settings, cache, resamples=50)
    assert report["model_version"] == "v1" and report["predicted_now"] == 3  # the margin-arm frame left out
    overall = report["overall"]
    assert overall["status"] == "ok" and overall["frames"] == 3 and overall["instances"] > 0
    assert set(report["per_camera"]) == {"cam9"}
    assert overall["predictions_kept"] >= 0 and 0.0 <= overall["map50"]["estimate"] <= 1.0  # untrained: about 0
    assert report["reference"]["map50"] is None  # an untrained model has no score of its own
    assert len(cache.predictions) == 3 and all(
        p.xyxy.shape == (len(p.confidence), 4) for p in cache.predictions.values()
    )
    assert {(p.width, p.height) for p in cache.predictions.values()} == {(320, 240)}


class FakeGauge:
    def __init__(self) -> None:
        self.values: dict[tuple[tuple[str, str], ...], float] = {}

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self.values[tuple(sorted((tags or {}).items()))] = value


def test_gauges_carry_estimate_and_bounds_and_go_nan_without_enough_labels(var_dir: Path) -> None:
    settings = settings_for(var_dir, minimum=4)
    incoming = settings.var.labels_incoming
    for seq in range(4):
        write_frame(incoming, "cam1", seq)
    monitor = AccuracyMonitor(settings, resamples=50, predict=FakeModel())
    gauges = {"accuracy": FakeGauge(), "frames": FakeGauge(), "reference": FakeGauge()}
    monitor._gauges = gauges  # what _metrics() builds inside Ray
    monitor.update()
    accuracy = gauges["accuracy"].values
    assert len(accuracy) == 9  # 3 metrics x (estimate, low, high)
    assert accuracy[(("bound", "estimate"), ("metric", "recall"))] == 1.0
    assert gauges["frames"].values[()] == 4.0
    for path in incoming.glob("meta/*.json"):  # the frames leave the random arm: too few labels now
        path.write_text(json.dumps({"sampler": "entropy"}))
    report = monitor.update()
    assert report["status"] == "not_enough_labels" and gauges["frames"].values[()] == 0.0
    assert all(np.isnan(value) for value in accuracy.values())  # no stale number keeps an alert firing
