"""Using the site's unlabelled frames: pseudo-labels from a teacher and batch-norm statistics of the new domain.

A few hundred human labels are a small sample of a shifted site; its cameras send thousands of frames nobody
labels. Two cheap ways to learn from them (DESIGN.md, "make the loop pay"):

- **pseudo-labels** (self-training, as in Unbiased/Efficient Teacher and Simple-SFOD): a teacher (the champion
  fine-tuned on the human labels) labels the unlabelled frames; a box is kept where the teacher is confident *and*
  finds it again in the mirrored frame (test-time augmentation); boxes in the doubtful band in between are painted
  out with the pad grey, so the student neither learns them as objects nor as background (YOLO has no ignore
  regions);
- **batch-norm re-estimation** (DUA, CVPR 2022): forward passes over target frames replace the running statistics
  the champion kept from the old domain.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from visionloop.core.boxes import box_iou
from visionloop.core.contracts import Detections
from visionloop.learning.evaluation import read_bgr
from visionloop.learning.yolo_source import LabelledImage
from visionloop.serving.backends import BackendOptions, create_backend
from visionloop.serving.backends.letterbox import PAD_VALUE, batch_shape, letterbox_batch

log = logging.getLogger(__name__)
AGREE_IOU = 0.5  # a box and its mirror-image twin are the same object above this IoU
BN_BATCH = 16


@dataclass(frozen=True)
class PseudoLabelRecipe:
    """``keep``: the teacher's confidence from which a box becomes a label; ``ignore``: from which (below ``keep``)
    its region is painted out; ``flip_agree``: a kept box must also be found in the mirrored frame."""

    keep: float = 0.5
    ignore: float = 0.1
    flip_agree: bool = True


@dataclass
class PseudoLabelReport:
    images: list[LabelledImage]
    boxes: int = 0
    ignored: int = 0
    disagreed: int = 0
    unreadable: int = 0


def _mirror(found: Detections, width: int) -> npt.NDArray[np.float32]:
    boxes = np.asarray(found.xyxy, np.float32).copy()
    boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    return boxes


def _agreeing(found: Detections, mirrored: Detections, width: int) -> npt.NDArray[np.bool_]:
    """Per box of ``found``: a box of the same class in the mirrored frame's predictions lies on it."""
    if not len(found) or not len(mirrored):
        return np.zeros(len(found), dtype=bool)
    ious = box_iou(np.asarray(found.xyxy, np.float64), _mirror(mirrored, width).astype(np.float64))
    same = np.asarray(found.class_id)[:, None] == np.asarray(mirrored.class_id)[None, :]
    return np.asarray(((ious >= AGREE_IOU) & same).any(axis=1), dtype=bool)


def pseudo_label(
    teacher: Path,
    images: Sequence[Path],
    class_names: Sequence[str],
    imgsz: int,
    recipe: PseudoLabelRecipe,
    out_dir: Path,
    progress: Callable[[int], None] | None = None,
    batch: int = 8,
) -> PseudoLabelReport:
    """The teacher's labels for ``images``, written as a YOLO folder (``out_dir/images``, ``out_dir/labels``).

    ``teacher``: an ONNX model. Frames the teacher finds nothing in stay, as background examples of the site.
    """
    engine = create_backend(
        "onnxruntime",
        BackendOptions(teacher, imgsz=imgsz, conf_threshold=min(recipe.ignore, recipe.keep), iou_threshold=0.7,
                       max_detections=100, class_names=tuple(class_names)),
    )  # fmt: skip
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    report = PseudoLabelReport(images=[])
    for start in range(0, len(images), batch):
        paths, frames = [], []
        for path in images[start : start + batch]:
            try:
                frames.append(read_bgr(path))
                paths.append(path)
            except OSError:  # the pool let an old frame go meanwhile: one frame fewer, not a failed job
                report.unreadable += 1
        if not frames:
            continue
        found = engine.predict(frames).detections
        mirrored = (
            engine.predict([np.ascontiguousarray(f[:, ::-1]) for f in frames]).detections
            if recipe.flip_agree
            else found
        )
        for path, frame, dets, twin in zip(paths, frames, found, mirrored, strict=True):
            height, width = frame.shape[:2]
            confident = np.asarray(dets.confidence) >= recipe.keep
            agree = _agreeing(dets, twin, width) if recipe.flip_agree else np.ones(len(dets), dtype=bool)
            keep = confident & agree
            ignore = ~keep
            report.disagreed += int((confident & ~agree).sum())
            image = frame.copy()
            for x1, y1, x2, y2 in np.asarray(dets.xyxy)[ignore].round().astype(int):
                image[max(0, y1) : max(0, y2), max(0, x1) : max(0, x2)] = PAD_VALUE
            kept = Detections(dets.xyxy[keep], dets.confidence[keep], dets.class_id[keep])
            rows = kept.to_yolo(width, height)
            target = out_dir / "images" / f"{path.stem}.jpg"
            cv2.imwrite(str(target), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            (out_dir / "labels" / f"{path.stem}.txt").write_text("\n".join(rows) + "\n" if rows else "")
            labels = np.array([[float(v) for v in row.split()] for row in rows], dtype=np.float64).reshape(-1, 5)
            report.images.append(LabelledImage(target, labels))
            report.boxes += len(rows)
            report.ignored += int(ignore.sum())
        if progress:
            progress(len(paths))
    return report


def reestimate_batchnorm(weights: Path, images: Sequence[Path], imgsz: int, out: Path) -> Path:
    """A copy of an Ultralytics model whose batch-norm running statistics are the average over ``images``.

    Only the statistics change (no gradient step). ``out`` is an Ultralytics .pt file.
    """
    import torch
    from ultralytics import YOLO  # type: ignore[attr-defined]

    yolo = YOLO(str(weights), task="detect")
    model = yolo.model
    assert isinstance(model, torch.nn.Module)
    model.float()
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over every batch, not an exponential one
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), BN_BATCH):
            frames = [read_bgr(path) for path in images[start : start + BN_BATCH] if path.is_file()]
            if not frames:
                continue
            shape = batch_shape([f.shape[:2] for f in frames], imgsz)
            model(torch.from_numpy(letterbox_batch(frames, shape).tensor))
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    yolo.save(str(out))
    log.info("batch-norm statistics of %d layers re-estimated on %d frames", len(norms), len(images))
    return out
