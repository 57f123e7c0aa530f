"""Our metrics against pycocotools on the same predictions, and the operating-point numbers by hand."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from visionloop.core.boxes import box_iou
from visionloop.core.contracts import Detections
from visionloop.learning.evaluation import (
    GroundTruth,
    coco_dicts,
    evaluate,
    operating_point,
    ultralytics_metrics,
)

NAMES = ["circle", "square", "triangle", "star", "cross"]


def _synthetic(seed: int, images: int = 60) -> tuple[list[GroundTruth], list[Detections]]:
    """Ground truth plus a plausible detector's output: jittered hits, misses, duplicates, false alarms."""
    rng = np.random.default_rng(seed)
    truths, preds = [], []
    for index in range(images):
        n = int(rng.integers(1, 7))
        xy = rng.uniform(0, 260, size=(n, 2))
        wh = rng.uniform(12, 60, size=(n, 2))
        gt = np.concatenate([xy, np.minimum(xy + wh, 320)], axis=1)
        classes = rng.integers(0, len(NAMES), n)
        truths.append(GroundTruth(f"img{index}", 320, 320, gt, classes))
        boxes, scores, labels = [], [], []
        for box, cls in zip(gt, classes, strict=True):
            if rng.random() < 0.15:
                continue  # missed
            jitter = rng.normal(0, rng.choice([1.5, 4.0, 9.0]), 4)
            boxes.append(np.clip(box + jitter, 0, 320))
            scores.append(rng.uniform(0.3, 0.99))
            labels.append(cls if rng.random() > 0.1 else (cls + 1) % len(NAMES))
            if rng.random() < 0.1:  # duplicate
                boxes.append(np.clip(box + rng.normal(0, 3, 4), 0, 320))
                scores.append(rng.uniform(0.05, 0.5))
                labels.append(cls)
        for _ in range(int(rng.integers(0, 3))):  # false alarms
            corner = rng.uniform(0, 280, 2)
            boxes.append(np.concatenate([corner, corner + rng.uniform(8, 40, 2)]))
            scores.append(rng.uniform(0.01, 0.7))
            labels.append(int(rng.integers(0, len(NAMES))))
        xyxy = np.array(boxes, np.float32).reshape(-1, 4)
        xyxy[:, 2:] = np.maximum(xyxy[:, 2:], xyxy[:, :2] + 1)
        preds.append(Detections(xyxy, np.array(scores, np.float32), np.array(labels, np.int32)))
    return truths, preds


def _pycocotools(truths: list[GroundTruth], preds: list[Detections]) -> tuple[float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict, results = coco_dicts(truths, preds, NAMES)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_dict
        coco.createIndex()
        evaluation = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluation.params.areaRng = [[0, 1e10]] * 4  # no area buckets: the whole set, like Ultralytics
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[1]), float(evaluation.stats[0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_agrees_with_pycocotools_on_the_same_predictions(seed: int) -> None:
    truths, preds = _synthetic(seed)
    metrics, _ = ultralytics_metrics(truths, preds, NAMES, operating_threshold=0.25)
    coco_map50, coco_map = _pycocotools(truths, preds)
    assert 0.3 < coco_map50 < 0.95  # a non-trivial case, so agreement means something
    assert float(metrics.box.map50) == pytest.approx(coco_map50, abs=0.01)
    assert float(metrics.box.map) == pytest.approx(coco_map, abs=0.01)


def test_operating_point_counts_by_hand() -> None:
    truth = GroundTruth(
        "a", 100, 100, np.array([[0, 0, 10, 10], [50, 50, 70, 70], [80, 0, 90, 10]], float), np.array([0, 1, 2])
    )
    pred = Detections(
        np.array([[0, 0, 10, 10], [51, 51, 70, 70], [20, 20, 30, 30], [80, 0, 90, 10]], np.float32),
        np.array([0.9, 0.8, 0.7, 0.1], np.float32),  # the last is below the operating threshold
        np.array([0, 1, 0, 2], np.int32),
    )
    precision, recall, f1, mean_iou = operating_point([truth], [pred], threshold=0.25)
    assert precision == pytest.approx(2 / 3) and recall == pytest.approx(2 / 3) and f1 == pytest.approx(2 / 3)
    assert mean_iou == pytest.approx((1.0 + 361 / 400) / 2)


def test_box_iou_keeps_the_wider_float_type() -> None:
    iou = box_iou(np.array([[0, 0, 10, 10]], float), np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float))
    assert iou.dtype == np.float64 and iou[0, 0] == pytest.approx(1 / 3) and iou[0, 1] == 0
    assert box_iou(np.zeros((0, 4), np.float32), np.ones((2, 4), np.float32)).shape == (0, 2)
    assert box_iou(np.array([[0, 0, 4, 4]], np.float32), np.array([[0, 0, 2, 4]], np.float32)).dtype == np.float32


def test_evaluate_end_to_end_writes_metrics_and_plots(var_dir: Path, tmp_path: Path) -> None:
    from visionloop.core.config import PACKAGE_ROOT
    from visionloop.simulation.world import load_domains, write_yolo_dataset

    domain = load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")["A"]
    data_yaml = write_yolo_dataset(domain, 4, 10, tmp_path / "data")
    result = evaluate(
        var_dir / "models" / "v1" / "model.onnx",
        data_yaml,
        "val",
        0.25,
        320,
        var_dir / "ultralytics",
        plots_dir=tmp_path / "plots",
    )
    out = result.to_dict()
    assert {"map50", "map50_95", "precision", "recall", "f1", "per_class", "confusion_matrix", "mean_iou"} <= set(out)
    assert set(out["per_class"]) == set(NAMES)
    assert len(out["confusion_matrix"]) == len(NAMES) + 1
    assert result.images == 10 and result.instances > 0
    assert {"BoxPR_curve", "confusion_matrix"} <= set(result.plots)
    assert all(Path(p).stat().st_size > 1000 for p in result.plots.values())


def test_evaluate_a_split_without_a_single_box(var_dir: Path, tmp_path: Path) -> None:
    """A short site clip can hold no object at all: Ultralytics then answers lists, not arrays."""
    from visionloop.core.config import PACKAGE_ROOT
    from visionloop.simulation.world import load_domains, write_yolo_dataset

    domain = load_domains(PACKAGE_ROOT / "configs" / "domains.yaml")["A"]
    data_yaml = write_yolo_dataset(domain, 4, 4, tmp_path / "data")
    labels = list((tmp_path / "data").rglob("labels/**/*.txt"))
    assert labels
    for label in labels:
        label.write_text("")
    result = evaluate(var_dir / "models" / "v1" / "model.onnx", data_yaml, "val", 0.25, 320, var_dir / "ultralytics")
    assert result.map50 == 0.0 and result.instances == 0
    assert all(row["ap50"] == 0.0 and row["instances"] == 0 for row in result.to_dict()["per_class"].values())
