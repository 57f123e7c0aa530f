"""Measure a detector the way the field does.

mAP50, mAP50-95, per-class AP and the PR curves come from Ultralytics' own validator code (its matching and
``DetMetrics``), run on predictions we make with the serving backend, so the number describes the model that
serves. Precision, recall and F1 are reported at the operating threshold, where operators live, with the mean IoU
of the matched boxes. The confusion matrix is Ultralytics'.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from visionloop.core.boxes import box_iou
from visionloop.core.contracts import Detections
from visionloop.core.offline import prepare_ultralytics
from visionloop.learning.datasets import LabelledImage, images_in, load_class_names, read_images
from visionloop.serving.backends import BackendOptions, create_backend

if TYPE_CHECKING:
    from visionloop.core.settings import Settings

EVAL_CONF = 0.001  # mAP is computed over the whole PR curve, as Ultralytics' validator does
EVAL_IOU = 0.7
MATCH_IOU = 0.5


@dataclass
class EvalResult:
    map50: float
    map50_95: float
    precision: float
    recall: float
    f1: float
    mean_iou: float
    operating_threshold: float
    per_class: dict[str, dict[str, float]]
    confusion_matrix: list[list[int]]
    images: int
    instances: int
    plots: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "map50": self.map50,
            "map50_95": self.map50_95,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "mean_iou": self.mean_iou,
            "operating_threshold": self.operating_threshold,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion_matrix,
            "images": self.images,
            "instances": self.instances,
            "plots": self.plots,
        }


@dataclass(frozen=True)
class GroundTruth:
    """Boxes of one image in pixels."""

    name: str
    width: int
    height: int
    xyxy: np.ndarray
    class_id: np.ndarray


def ground_truth(image: LabelledImage) -> GroundTruth:
    frame = cv2.imread(str(image.image), cv2.IMREAD_COLOR)
    if frame is None:
        raise OSError(f"cannot read {image.image}")
    height, width = frame.shape[:2]
    labels = image.labels
    cx, cy, w, h = labels[:, 1] * width, labels[:, 2] * height, labels[:, 3] * width, labels[:, 4] * height
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) if len(labels) else np.zeros((0, 4))
    return GroundTruth(image.image.stem, width, height, xyxy.astype(np.float64), labels[:, 0].astype(np.int64))


def operating_point(
    truths: Sequence[GroundTruth], predictions: Sequence[Detections], threshold: float
) -> tuple[float, float, float, float]:
    """Precision, recall, F1 and mean IoU of matched boxes at ``threshold`` (greedy, same class, IoU >= 0.5)."""
    tp = fp = fn = 0
    ious: list[float] = []
    for truth, pred in zip(truths, predictions, strict=True):
        keep = pred.confidence >= threshold
        boxes, classes = pred.xyxy[keep], pred.class_id[keep]
        order = np.argsort(-pred.confidence[keep], kind="stable")
        iou = box_iou(truth.xyxy, boxes.astype(np.float64))
        claimed = np.zeros(len(truth.xyxy), bool)
        for j in order:
            candidates = np.where(~claimed & (truth.class_id == classes[j]), iou[:, j], 0.0)
            if candidates.size and candidates.max() >= MATCH_IOU:
                k = int(candidates.argmax())
                claimed[k] = True
                tp += 1
                ious.append(float(candidates[k]))
            else:
                fp += 1
        fn += int((~claimed).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, float(np.mean(ious)) if ious else 0.0


def ultralytics_metrics(
    truths: Sequence[GroundTruth],
    predictions: Sequence[Detections],
    class_names: Sequence[str],
    operating_threshold: float,
    plots_dir: Path | None = None,
) -> tuple[Any, list[list[int]]]:
    """DetMetrics and the confusion matrix computed by Ultralytics' validator code on our predictions."""
    import torch
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import ConfusionMatrix, DetMetrics

    names = dict(enumerate(class_names))
    iouv = torch.linspace(0.5, 0.95, 10)
    validator = DetectionValidator.__new__(DetectionValidator)  # only its matching method is used
    validator.iouv = iouv  # type: ignore[assignment]
    metrics = DetMetrics(names=names)
    confusion = ConfusionMatrix(names=names)
    for truth, pred in zip(truths, predictions, strict=True):
        order = np.argsort(-pred.confidence, kind="stable")
        boxes = torch.from_numpy(pred.xyxy[order].astype(np.float32))
        conf = torch.from_numpy(pred.confidence[order].astype(np.float32))
        cls = torch.from_numpy(pred.class_id[order].astype(np.float32))
        t_boxes = torch.from_numpy(truth.xyxy.astype(np.float32))
        t_cls = torch.from_numpy(truth.class_id.astype(np.float32))
        if len(t_cls) and len(cls):
            from ultralytics.utils.metrics import box_iou

            correct = validator.match_predictions(cls, t_cls, box_iou(t_boxes, boxes)).cpu().numpy()
        else:
            correct = np.zeros((len(cls), len(iouv)), bool)
        metrics.update_stats(
            {
                "tp": correct,
                "conf": conf.numpy(),
                "pred_cls": cls.numpy(),
                "target_cls": t_cls.numpy(),
                "target_img": np.unique(t_cls.numpy()),
                "im_name": truth.name,
            }
        )
        confusion.process_batch(
            {"bboxes": boxes, "conf": conf, "cls": cls}, {"bboxes": t_boxes, "cls": t_cls}, conf=operating_threshold
        )
    metrics.process(save_dir=plots_dir or Path("."), plot=plots_dir is not None)
    if plots_dir is not None:
        confusion.plot(save_dir=plots_dir, normalize=False)
    return metrics, confusion.matrix.astype(int).tolist()


def read_bgr(path: Path) -> npt.NDArray[np.uint8]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise OSError(f"cannot read image {path}")
    return np.asarray(image, dtype=np.uint8)


def predict_all(
    model_path: Path,
    images: Sequence[LabelledImage],
    class_names: Sequence[str],
    imgsz: int,
    backend: str,
    progress: Callable[[int], None] | None = None,
    batch: int = 8,
) -> list[Detections]:
    engine = create_backend(
        backend,
        BackendOptions(
            model_path,
            imgsz=imgsz,
            conf_threshold=EVAL_CONF,
            iou_threshold=EVAL_IOU,
            max_detections=300,
            class_names=tuple(class_names),
        ),
    )
    out: list[Detections] = []
    for start in range(0, len(images), batch):
        frames = [read_bgr(item.image) for item in images[start : start + batch]]
        out.extend(engine.predict(frames).detections)
        if progress:
            progress(len(frames))
    return out


def split_images(data_yaml: Path, split: str) -> tuple[list[LabelledImage], list[str]]:
    """Validated images of one split of a YOLO data set (bad files are an error listing them)."""
    import yaml

    from visionloop.learning.datasets import DatasetError

    names = load_class_names(data_yaml)
    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    root = Path(data.get("path") or data_yaml.parent)
    if not root.is_absolute():
        root = data_yaml.parent / root
    entry = data.get(split)
    if not entry:
        raise DatasetError(f"'{data_yaml}' has no '{split}' split")
    source = root / entry
    if source.suffix == ".txt":  # a list of image paths, as Ultralytics allows
        paths = [Path(line.strip()) for line in source.read_text(encoding="utf-8").splitlines() if line.strip()]
        paths = [p if p.is_absolute() else root / p for p in paths]
    else:
        paths = images_in(source)
    report = read_images(paths, len(names))
    if report.bad:
        raise DatasetError(f"{len(report.bad)} bad file(s) in the {split} split:\n{report.describe_bad()}")
    if not report.images:
        raise DatasetError(f"the {split} split of '{data_yaml}' has no images")
    return report.images, names


def evaluate(
    model_path: Path,
    data_yaml: Path,
    split: str,
    operating_threshold: float,
    imgsz: int,
    ultralytics_dir: Path,
    plots_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    class_names: Sequence[str] | None = None,
) -> EvalResult:
    """Evaluate a .onnx (ONNX Runtime) or .pt (Ultralytics) model on one split of a YOLO data set."""
    prepare_ultralytics(ultralytics_dir)
    images, names = split_images(data_yaml, split)
    names = list(class_names or names)
    backend = "onnxruntime" if model_path.suffix == ".onnx" else "ultralytics"
    predictions = predict_all(model_path, images, names, imgsz, backend, progress)
    truths = [ground_truth(image) for image in images]
    if plots_dir is not None:
        plots_dir.mkdir(parents=True, exist_ok=True)
    metrics, matrix = ultralytics_metrics(truths, predictions, names, operating_threshold, plots_dir)
    precision, recall, f1, mean_iou = operating_point(truths, predictions, operating_threshold)
    per_class: dict[str, dict[str, float]] = {}
    # Ultralytics answers plain empty lists instead of arrays when the split has no box at all (a short site clip)
    classes = np.asarray(metrics.ap_class_index).tolist()
    ap50 = dict(zip(classes, np.asarray(metrics.box.ap50).tolist(), strict=True))
    ap = dict(zip(classes, np.asarray(metrics.box.ap).tolist(), strict=True))
    counts = np.bincount(np.concatenate([t.class_id for t in truths]).astype(int), minlength=len(names))
    for index, name in enumerate(names):
        per_class[name] = {
            "ap50": float(ap50.get(index, 0.0)),
            "ap50_95": float(ap.get(index, 0.0)),
            "instances": int(counts[index]),
        }
    plots = {}
    if plots_dir is not None:
        plots = {p.stem: str(p) for p in sorted(plots_dir.glob("*.png"))}
    return EvalResult(
        map50=float(metrics.box.map50),
        map50_95=float(metrics.box.map),
        precision=precision,
        recall=recall,
        f1=f1,
        mean_iou=mean_iou,
        operating_threshold=operating_threshold,
        per_class=per_class,
        confusion_matrix=matrix,
        images=len(images),
        instances=int(counts.sum()),
        plots=plots,
    )


def serving_map50(
    settings: Settings, model_path: Path, data_yaml: Path, class_names: Sequence[str] | None = None
) -> float:
    """mAP50 on the val split at the service's operating point and input size: what the gold gate and the
    benchmarks compare models by."""
    from visionloop.core.model_setup import ultralytics_config_dir

    return evaluate(
        model_path,
        data_yaml,
        "val",
        settings.serving.conf_threshold,
        settings.serving.imgsz,
        ultralytics_config_dir(settings),
        class_names=class_names or None,
    ).map50


def coco_dicts(
    truths: Sequence[GroundTruth], predictions: Sequence[Detections], class_names: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The same ground truth and predictions in COCO form (for pycocotools)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for image_id, (truth, pred) in enumerate(zip(truths, predictions, strict=True), start=1):
        images.append({"id": image_id, "width": truth.width, "height": truth.height, "file_name": truth.name})
        for box, cls in zip(truth.xyxy, truth.class_id, strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for box, conf, cls in zip(pred.xyxy, pred.confidence, pred.class_id, strict=True):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(cls) + 1,
                    "score": float(conf),
                    "bbox": [float(box[0]), float(box[1]), float(box[2] - box[0]), float(box[3] - box[1])],
                }
            )
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def save_json(result: EvalResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
