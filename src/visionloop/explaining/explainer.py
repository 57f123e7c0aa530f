"""SHAP for one detection: which pixels of a frame made the detector find *this* box.

The explained function maps a masked copy of the frame to one number per copy: the best, over the model's raw
candidates (before NMS, so suppression cannot hide a weaker duplicate), of IoU with the explained box times that
candidate's score for the box's class, candidates overlapping less than ``explain.iou_match`` counting zero (the
D-RISE similarity). SHAP's Partition explainer hides regions of the frame with a flat grey and spends
``explain.max_evals`` model calls, batched, on a hierarchy of regions.

The explanation runs on the frame resized so its long side is the model's input size: that is what the model sees
anyway, and it keeps SHAP's partition tree small; the map is resized back to the frame's pixels.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from visionloop.core.errors import VisionloopError
from visionloop.core.settings import ExplainSettings
from visionloop.serving.backends.base import BackendOptions
from visionloop.serving.backends.letterbox import batch_shape, letterbox_batch
from visionloop.serving.backends.onnx_backend import OnnxRuntimeBackend

Image = npt.NDArray[np.uint8]
Box = tuple[float, float, float, float]
FloatArray = npt.NDArray[np.float32]
PEAK_SMOOTHING = 0.02  # sigma of the blur before the peak is taken, as a fraction of the frame's shorter side


class ExplainError(VisionloopError):
    """An explanation could not be computed; the message says why."""


class RawDetector(OnnxRuntimeBackend):
    """The serving ONNX backend, returning every raw candidate instead of the detections left after NMS.

    ``name`` is empty so that this subclass does not replace the serving backend in the backends' registry.
    """

    name = ""

    def candidates(self, frames: Sequence[Image]) -> tuple[FloatArray, float, tuple[float, float]]:
        """``(N, A, 4 + C)`` candidates of same-sized frames (xyxy boxes in the frames' pixels, class scores)."""
        shape = (int(frames[0].shape[0]), int(frames[0].shape[1]))
        target = self._fixed_hw or batch_shape([shape], self.options.imgsz)
        batch = letterbox_batch(frames, target)
        raw = np.ascontiguousarray(self._run(batch.tensor).transpose(0, 2, 1), dtype=np.float32)
        scale, (pad_x, pad_y) = batch.scales[0], batch.pads[0]
        out = raw.copy()
        centre_x, centre_y, half_w, half_h = raw[..., 0], raw[..., 1], raw[..., 2] / 2, raw[..., 3] / 2
        out[..., 0] = (centre_x - half_w - pad_x) / scale
        out[..., 1] = (centre_y - half_h - pad_y) / scale
        out[..., 2] = (centre_x + half_w - pad_x) / scale
        out[..., 3] = (centre_y + half_h - pad_y) / scale
        return out, scale, (pad_x, pad_y)


def load_detector(model_path: Path, imgsz: int, threads: int = 1) -> RawDetector:
    return RawDetector(BackendOptions(model_path, imgsz=imgsz, intra_op_threads=threads, device="cpu"))


def box_scores(candidates: FloatArray, box: Box, class_id: int, iou_match: float) -> FloatArray:
    """Per image, the best IoU x class score of a candidate overlapping ``box`` by at least ``iou_match``."""
    if class_id < 0 or class_id + 4 >= candidates.shape[-1]:
        raise ExplainError(f"class id {class_id} is not one of the model's {candidates.shape[-1] - 4} classes")
    x1, y1, x2, y2 = box
    ix = np.clip(np.minimum(candidates[..., 2], x2) - np.maximum(candidates[..., 0], x1), 0, None)
    iy = np.clip(np.minimum(candidates[..., 3], y2) - np.maximum(candidates[..., 1], y1), 0, None)
    inter = ix * iy
    areas = (candidates[..., 2] - candidates[..., 0]) * (candidates[..., 3] - candidates[..., 1])
    iou = inter / np.maximum(areas + (x2 - x1) * (y2 - y1) - inter, 1e-9)
    similarity = np.where(iou >= iou_match, iou * candidates[..., 4 + class_id], 0.0)
    return np.asarray(similarity.max(axis=-1), dtype=np.float32)


def make_score_fn(
    detector: RawDetector, box: Box, class_id: int, iou_match: float, batch_size: int
) -> Callable[[npt.NDArray[Any]], FloatArray]:
    """The function SHAP explains: ``(N, H, W, 3)`` images -> ``(N, 1)`` box scores, ``batch_size`` per model call."""

    def score(images: npt.NDArray[Any]) -> FloatArray:
        frames = np.clip(np.asarray(images), 0, 255).astype(np.uint8)
        out = np.zeros((len(frames), 1), np.float32)
        for start in range(0, len(frames), batch_size):
            chunk = list(frames[start : start + batch_size])
            candidates, _, _ = detector.candidates(chunk)
            out[start : start + len(chunk), 0] = box_scores(candidates, box, class_id, iou_match)
        return out

    return score


@dataclass(frozen=True)
class Explanation:
    """SHAP attributions of one box over the frame's pixels.

    ``attribution`` is (H, W) at the frame's resolution (summed over colour channels; positive: pixels that raise
    the box's score). ``peak`` is the (x, y) of its highest point after a light blur (Partition attributions are
    flat over each region, so the blur breaks ties towards the region whose neighbours also matter).
    """

    attribution: FloatArray
    peak: tuple[int, int]
    box: Box
    class_id: int
    score: float  # the box score of the unmasked frame
    seconds: float
    evals: int  # masked images scored


def _working_image(frame: Image, imgsz: int) -> tuple[Image, float]:
    height, width = frame.shape[:2]
    scale = min(1.0, imgsz / max(height, width))
    if scale == 1.0:
        return frame, 1.0
    size = (round(width * scale), round(height * scale))
    return np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), dtype=np.uint8), scale


def peak_of(attribution: FloatArray) -> tuple[int, int]:
    sigma = max(1.0, PEAK_SMOOTHING * min(attribution.shape))
    smooth = cv2.GaussianBlur(attribution, (0, 0), sigma)
    y, x = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return int(x), int(y)


def explain_box(
    detector: RawDetector, frame: Image, box: Sequence[float], class_id: int, settings: ExplainSettings
) -> Explanation:
    """SHAP attributions of ``box`` (xyxy in ``frame`` pixels, class ``class_id``) over ``frame`` (BGR uint8)."""
    import shap

    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ExplainError(f"expected a BGR frame (H, W, 3), got shape {frame.shape}")
    if len(box) != 4 or not box[2] > box[0] or not box[3] > box[1]:
        raise ExplainError(f"box must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1, got {list(box)}")
    started = time.perf_counter()
    work, scale = _working_image(frame, detector.options.imgsz)
    work_box: Box = (box[0] * scale, box[1] * scale, box[2] * scale, box[3] * scale)
    scorer = make_score_fn(detector, work_box, class_id, settings.iou_match, settings.batch_size)
    scored = [0]

    def score(images: npt.NDArray[Any]) -> FloatArray:
        scored[0] += len(images)
        return scorer(images)

    masker = shap.maskers.Image(float(settings.mask_value), work.shape)
    explainer = shap.Explainer(score, masker, algorithm="partition")
    result = explainer(
        work[np.newaxis].astype(np.float32), max_evals=settings.max_evals, batch_size=settings.batch_size, silent=True
    )
    values = np.asarray(result.values, dtype=np.float32)[0].reshape(*work.shape, -1)[..., 0].sum(axis=-1)
    if scale != 1.0:
        values = cv2.resize(values, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)
    attribution = np.asarray(values, dtype=np.float32)
    base = float(scorer(work[np.newaxis])[0, 0])
    return Explanation(
        attribution=attribution,
        peak=peak_of(attribution),
        box=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        class_id=class_id,
        score=base,
        seconds=time.perf_counter() - started,
        evals=scored[0],
    )


def render_overlay(frame: Image, explanation: Explanation, alpha: float = 0.5) -> Image:
    """The frame with the positive attributions as a JET heatmap over it, the box in white and the peak marked."""
    positive = np.clip(explanation.attribution, 0, None)
    top = float(positive.max())
    blended = render_heat(frame, positive / top if top > 0 else positive, explanation.box, alpha)
    cv2.drawMarker(blended, explanation.peak, (255, 255, 255), cv2.MARKER_CROSS, 12, 2)
    return blended


def overlay_png(frame: Image, explanation: Explanation) -> bytes:
    return png_bytes(render_overlay(frame, explanation))


def overlay_png_b64(frame: Image, explanation: Explanation) -> str:
    return png_b64(render_overlay(frame, explanation))


# -- EigenCAM: a one-pass preview ------------------------------------------------------------------------------------


def _detect_head_inputs(model: Any) -> list[str]:
    """The feature maps an Ultralytics Detect head reads (one per stride): the inputs of its box branches' first
    convolutions (``/model.<last>/cv2.<i>/cv2.<i>.0/conv/Conv``)."""
    found = [
        (node.name, node.input[0])
        for node in model.graph.node
        if node.op_type == "Conv" and re.fullmatch(r"/model\.\d+/cv2\.(\d+)/cv2\.\1\.0/conv/Conv", node.name)
    ]
    return [tensor for _, tensor in sorted(found)]


class EigenCam:
    """EigenCAM (Muhammad & Yeasin, 2020): the first principal component of the feature maps the detection head
    reads, upsampled to the frame. One model call, no gradients, and not specific to a box or class: a quick preview
    shown while the SHAP explanation runs."""

    def __init__(self, model_path: Path, imgsz: int, threads: int = 1) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(model_path))
        self.features = _detect_head_inputs(model)
        if not self.features:
            raise ExplainError(f"'{model_path}' has no Ultralytics Detect head to read feature maps from")
        model.graph.output.extend(
            onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in self.features
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self.imgsz = imgsz

    def __call__(self, frame: Image) -> FloatArray:
        """A (H, W) map in [0, 1] over ``frame``."""
        height, width = frame.shape[:2]
        target = batch_shape([(height, width)], self.imgsz)
        batch = letterbox_batch([frame], target)
        maps = self._session.run(self.features, {self._input: batch.tensor})
        total = np.zeros(target, np.float32)
        for features in maps:
            component = first_component(np.asarray(features, np.float32)[0])
            total += cv2.resize(component, (target[1], target[0]), interpolation=cv2.INTER_LINEAR)
        (pad_x, pad_y), scale = batch.pads[0], batch.scales[0]
        left, top = int(pad_x), int(pad_y)
        inner = total[top : top + round(height * scale), left : left + round(width * scale)]
        out = cv2.resize(inner, (width, height), interpolation=cv2.INTER_LINEAR)
        top_value = float(out.max())
        return np.asarray(out / top_value if top_value > 0 else out, dtype=np.float32)


def first_component(features: FloatArray) -> FloatArray:
    """Projection of each location's (C,) activation on the first right singular vector, signed so that it
    mostly points along the activations, and clipped at zero; scaled to [0, 1]."""
    channels, height, width = features.shape
    flat = features.reshape(channels, -1).T  # (h*w, C)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    projection = flat @ vt[0]
    if projection.sum() < 0:
        projection = -projection
    projection = np.clip(projection, 0, None).reshape(height, width)
    top = float(projection.max())
    return np.asarray(projection / top if top > 0 else projection, dtype=np.float32)


def render_heat(frame: Image, heat: FloatArray, box: Sequence[float] | None = None, alpha: float = 0.5) -> Image:
    """``heat`` in [0, 1] as a JET colour map over ``frame``, with ``box`` in white."""
    coloured = cv2.applyColorMap((np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    blended = np.asarray(cv2.addWeighted(frame, 1 - alpha, coloured, alpha, 0), dtype=np.uint8)
    if box is not None:
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(blended, (x1, y1), (x2, y2), (255, 255, 255), 2)
    return blended


def png_bytes(image: Image) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ExplainError("could not encode the overlay as PNG")
    return bytes(buffer)


def png_b64(image: Image) -> str:
    return base64.b64encode(png_bytes(image)).decode("ascii")
