"""The data every part of visionloop speaks: ``Detections`` for one frame and ``FrameResult`` around it.

``Detections`` follows supervision's ``sv.Detections``: parallel arrays validated at construction, with adapters
from each model's output and to each consumer's format.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from visionloop.core.imaging import decode_image, encode_jpeg

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]


def _as_float32(value: Any, name: str) -> FloatArray:
    array = np.asarray(value, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return array


def _validated_boxes(value: Any) -> FloatArray:
    xyxy = _as_float32(value, "xyxy")
    if xyxy.size == 0:
        xyxy = xyxy.reshape(0, 4)
    if xyxy.ndim != 2 or xyxy.shape[1] != 4:
        raise ValueError(f"xyxy must have shape (N, 4), got {xyxy.shape}")
    if np.any(xyxy[:, 2] < xyxy[:, 0]) or np.any(xyxy[:, 3] < xyxy[:, 1]):
        raise ValueError("xyxy boxes must have x2 >= x1 and y2 >= y1")
    return xyxy


def _validated_confidence(value: Any, n: int) -> FloatArray:
    confidence = _as_float32(value, "confidence").reshape(-1)
    if confidence.shape != (n,):
        raise ValueError(f"confidence must have shape ({n},), got {confidence.shape}")
    if np.any((confidence < 0) | (confidence > 1)):
        raise ValueError("confidence must lie in [0, 1]")
    return confidence


def _validated_class_ids(value: Any, n: int) -> IntArray:
    class_id = np.asarray(value).reshape(-1)
    if class_id.shape != (n,):
        raise ValueError(f"class_id must have shape ({n},), got {class_id.shape}")
    if class_id.size and (not np.issubdtype(class_id.dtype, np.integer) or class_id.min() < 0):
        raise ValueError("class_id must hold non-negative integers")
    return class_id.astype(np.int32)


@dataclass(frozen=True)
class Detections:
    """Boxes found in one frame.

    Attributes:
        xyxy: (N, 4) float32 corners in pixels of the original frame.
        confidence: (N,) float32 in [0, 1].
        class_id: (N,) int32.
        class_scores: optional (N, C) float32 per-class scores (the samplers' margin and entropy need them).
        embedding: optional (D,) float32 vector describing the whole frame (novelty sampling).
        track_id: optional (N,) int64 id of the track each box belongs to (core.tracking; -1: none took it).
    """

    xyxy: FloatArray
    confidence: FloatArray
    class_id: IntArray
    class_scores: FloatArray | None = None
    embedding: FloatArray | None = None
    track_id: npt.NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        xyxy = _validated_boxes(self.xyxy)
        n = xyxy.shape[0]
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", _validated_confidence(self.confidence, n))
        object.__setattr__(self, "class_id", _validated_class_ids(self.class_id, n))
        if self.class_scores is not None:
            scores = _as_float32(self.class_scores, "class_scores")
            if scores.ndim != 2 or scores.shape[0] != n:
                raise ValueError(f"class_scores must have shape ({n}, C), got {scores.shape}")
            object.__setattr__(self, "class_scores", scores)
        if self.embedding is not None:
            object.__setattr__(self, "embedding", _as_float32(self.embedding, "embedding").reshape(-1))
        if self.track_id is not None:
            ids = np.asarray(self.track_id, dtype=np.int64).reshape(-1)
            if ids.shape[0] != n:
                raise ValueError(f"track_id must have shape ({n},), got {ids.shape}")
            object.__setattr__(self, "track_id", ids)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))

    @classmethod
    def from_ultralytics(cls, result: Any) -> Detections:
        """From one ``ultralytics.engine.results.Results`` (a detection model's output for one image)."""
        boxes = result.boxes
        return cls(
            xyxy=boxes.xyxy.cpu().numpy(),
            confidence=boxes.conf.cpu().numpy(),
            class_id=boxes.cls.cpu().numpy().astype(np.int32),
        )

    @classmethod
    def from_onnx(
        cls,
        candidates: FloatArray,
        keep: Sequence[int] | npt.NDArray[np.integer[Any]],
        scale: float,
        pad: tuple[float, float],
        frame_shape: tuple[int, int],
    ) -> Detections:
        """From one image's YOLO ONNX candidates ``(A, 4 + C)`` (xywh in network pixels, class scores).

        ``keep`` are the candidate rows NMS kept; ``scale`` and ``pad`` undo the letterbox onto a frame of
        ``frame_shape`` (height, width).
        """
        rows = candidates[np.asarray(keep, dtype=np.int64)]
        if rows.size == 0:
            return cls.empty()
        xywh, scores = rows[:, :4], rows[:, 4:]
        xyxy = np.empty_like(xywh)
        xyxy[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
        xyxy[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
        xyxy -= np.array([pad[0], pad[1], pad[0], pad[1]], np.float32)
        xyxy /= scale
        height, width = frame_shape
        xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
        xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
        return cls(
            xyxy=xyxy,
            confidence=np.clip(scores.max(axis=1), 0, 1),
            class_id=scores.argmax(axis=1).astype(np.int32),
            class_scores=np.clip(scores, 0, 1),
        )

    def to_label_studio(
        self, width: int, height: int, class_names: Sequence[str], from_name: str = "label", to_name: str = "image"
    ) -> list[dict[str, Any]]:
        """Label Studio RectangleLabels results (percent coordinates), one per box."""
        results = []
        for box, conf, cls in zip(self.xyxy, self.confidence, self.class_id, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "from_name": from_name,
                    "to_name": to_name,
                    "type": "rectanglelabels",
                    "original_width": width,
                    "original_height": height,
                    "score": float(conf),
                    "value": {
                        "x": 100 * x1 / width,
                        "y": 100 * y1 / height,
                        "width": 100 * (x2 - x1) / width,
                        "height": 100 * (y2 - y1) / height,
                        "rotation": 0,
                        "rectanglelabels": [class_names[int(cls)]],
                    },
                }
            )
        return results

    def to_yolo(self, width: int, height: int) -> list[str]:
        """YOLO label lines: ``class cx cy w h`` normalised to the frame."""
        lines = []
        for box, cls in zip(self.xyxy, self.class_id, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            w, h = (x2 - x1) / width, (y2 - y1) / height
            lines.append(f"{int(cls)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        return lines

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready form: a list of boxes, each with its class name when names are given."""
        boxes = []
        for i in range(len(self)):
            box: dict[str, Any] = {
                "xyxy": [round(float(v), 2) for v in self.xyxy[i]],
                "confidence": round(float(self.confidence[i]), 5),
                "class_id": int(self.class_id[i]),
            }
            if class_names is not None and int(self.class_id[i]) < len(class_names):
                box["class_name"] = class_names[int(self.class_id[i])]
            if self.class_scores is not None:
                box["class_scores"] = [round(float(v), 5) for v in self.class_scores[i]]
            if self.track_id is not None:
                box["track_id"] = int(self.track_id[i])
            boxes.append(box)
        out: dict[str, Any] = {"boxes": boxes}
        if self.embedding is not None:
            out["embedding"] = [float(v) for v in self.embedding]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Detections:
        boxes = data.get("boxes", [])
        if not boxes:
            empty = cls.empty()
            return cls(empty.xyxy, empty.confidence, empty.class_id, embedding=data.get("embedding"))
        scores = [b["class_scores"] for b in boxes] if all("class_scores" in b for b in boxes) else None
        tracks = [b["track_id"] for b in boxes] if all("track_id" in b for b in boxes) else None
        return cls(
            xyxy=np.array([b["xyxy"] for b in boxes], np.float32),
            confidence=np.array([b["confidence"] for b in boxes], np.float32),
            class_id=np.array([b["class_id"] for b in boxes], np.int32),
            class_scores=None if scores is None else np.array(scores, np.float32),
            embedding=data.get("embedding"),
            track_id=None if tracks is None else np.array(tracks, np.int64),
        )


class ModelRole(StrEnum):
    """A model's role, the one list for the registry and for results: the champion answers, the shadow only runs
    beside it, a candidate waits to be judged, a retired model served once, a rejected one lost its A/B (or was
    rolled back) and is never promoted without --force."""

    CANDIDATE = "candidate"
    SHADOW = "shadow"
    CHAMPION = "champion"
    RETIRED = "retired"
    REJECTED = "rejected"


@dataclass(frozen=True)
class StageLatency:
    """Milliseconds spent in each stage of one frame's trip: decoding it, waiting at its source (a camera's buffer),
    waiting in the Detector's batch queue, in the model (with its pre-processing), and in post-processing."""

    decode_ms: float = 0.0
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    post_ms: float = 0.0
    batch_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("decode_ms", "queue_ms", "inference_ms", "post_ms", "batch_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.queue_ms + self.batch_ms + self.inference_ms + self.post_ms


@dataclass(frozen=True)
class EncodedFrame:
    """A frame on its way to the model, plus where and when it was captured.

    At the network edge (uploads, the stream endpoint) it is JPEG/PNG ``data``. Inside the cluster a camera sends
    the decoded BGR ``image`` instead: Ray's object store moves the array without a copy, so no frame is encoded
    to JPEG only to be decoded again one process further. ``decoded()`` and ``encoded()`` give either form to
    whoever needs it (observers keep JPEG only for the few frames they store).

    ``decode_ms`` and ``queue_ms`` are what the frame already spent at its source (camera decode, buffer wait);
    the serving side adds its own stages to them. ``source_frame`` is the number the camera stamped in the picture
    (the frame clock, ``core.frame_clock``), when it carries one.
    """

    camera_id: str
    data: bytes = b""
    seq: int | None = None
    capture_ts: float | None = None
    decode_ms: float = 0.0
    queue_ms: float = 0.0
    image: npt.NDArray[np.uint8] | None = None
    source_frame: int | None = None

    @property
    def payload(self) -> bytes | npt.NDArray[np.uint8]:
        """What the Detector is given: the array when there is one, else the encoded bytes."""
        return self.image if self.image is not None else self.data

    def decoded(self) -> npt.NDArray[np.uint8]:
        """The BGR array (decoding the bytes when the frame came encoded)."""
        return self.image if self.image is not None else decode_image(self.data, self.camera_id)

    def encoded(self, quality: int = 90) -> bytes:
        """JPEG/PNG bytes (encoding the array when the frame came decoded)."""
        return self.data if self.data or self.image is None else encode_jpeg(self.image, quality)


@dataclass(frozen=True)
class FrameResult:
    """What one model found in one frame of one camera, and what it cost.

    ``result_ts`` is when the result was made (wall clock); with the camera's ``source_frame`` and its frame clock
    it gives the glass-to-result age (``FrameClock.age_s``)."""

    camera_id: str
    seq: int
    capture_ts: float
    model_version: str
    detections: Detections
    latency: StageLatency = field(default_factory=StageLatency)
    role: ModelRole = ModelRole.CHAMPION
    frame_width: int = 0
    frame_height: int = 0
    source_frame: int | None = None
    result_ts: float | None = None
    flicker: float | None = None  # the camera's tracker: flicker events per box in this frame (core.tracking)

    def __post_init__(self) -> None:
        if not self.camera_id:
            raise ValueError("camera_id must not be empty")
        if self.seq < 0:
            raise ValueError("seq must be >= 0")
        if not self.model_version:
            raise ValueError("model_version must not be empty")
        object.__setattr__(self, "role", ModelRole(self.role))

    @property
    def frame_id(self) -> str:
        """The frame's id across visionloop: review queue, Label Studio task, labelled file stem, shadow pair."""
        return f"{self.camera_id}-{self.seq}-{int(self.capture_ts * 1000)}".replace(":", "_")

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id,
            "seq": self.seq,
            "capture_ts": self.capture_ts,
            "model_version": self.model_version,
            "role": self.role.value,
            "frame_width": self.frame_width,
            "frame_height": self.frame_height,
            **({"source_frame": self.source_frame} if self.source_frame is not None else {}),
            **({"result_ts": self.result_ts} if self.result_ts is not None else {}),
            **({"flicker": round(self.flicker, 4)} if self.flicker is not None else {}),
            "latency_ms": {
                "decode": round(self.latency.decode_ms, 3),
                "queue": round(self.latency.queue_ms, 3),
                "batch": round(self.latency.batch_ms, 3),
                "inference": round(self.latency.inference_ms, 3),
                "post": round(self.latency.post_ms, 3),
            },
            "detections": self.detections.to_dict(class_names),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameResult:
        lat = data.get("latency_ms", {})
        return cls(
            camera_id=data["camera_id"],
            seq=int(data["seq"]),
            capture_ts=float(data["capture_ts"]),
            model_version=data["model_version"],
            role=ModelRole(data.get("role", "champion")),
            frame_width=int(data.get("frame_width", 0)),
            frame_height=int(data.get("frame_height", 0)),
            source_frame=int(data["source_frame"]) if data.get("source_frame") is not None else None,
            result_ts=float(data["result_ts"]) if data.get("result_ts") is not None else None,
            flicker=float(data["flicker"]) if data.get("flicker") is not None else None,
            latency=StageLatency(
                decode_ms=lat.get("decode", 0.0),
                queue_ms=lat.get("queue", 0.0),
                batch_ms=lat.get("batch", 0.0),
                inference_ms=lat.get("inference", 0.0),
                post_ms=lat.get("post", 0.0),
            ),
            detections=Detections.from_dict(data.get("detections", {})),
        )

    def to_stream_fields(self) -> dict[str, str]:
        """Flat Redis stream fields: a few keys to filter on, plus the whole result as JSON."""
        return {
            "camera_id": self.camera_id,
            "role": self.role.value,
            "model_version": self.model_version,
            "json": json.dumps(self.to_dict(), separators=(",", ":")),
        }

    @classmethod
    def from_stream_fields(cls, fields: dict[str | bytes, str | bytes]) -> FrameResult:
        raw = fields.get("json", fields.get(b"json"))
        if raw is None:
            raise ValueError("stream entry has no 'json' field")
        return cls.from_dict(json.loads(raw))
