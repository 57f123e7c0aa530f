"""The Detector deployment: one model, many frames per call, batched across callers with ``@serve.batch``."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ray import serve

from serving.backends import BackendOptions, InferenceBackend, create_backend
from serving.imaging import decode_image
from serving.metrics import DetectorMetrics
from visionloop.contracts import Detections, ModelRole, StageLatency
from visionloop.errors import InvalidImageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorSpec:
    """Everything a Detector replica needs; plain data so Ray can ship it and ``reconfigure`` can swap it."""

    backend: str
    model_path: str
    model_version: str
    class_names: list[str] = field(default_factory=list)
    imgsz: int = 320
    conf_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300
    device: str = "auto"
    intra_op_threads: int = 2
    role: str = ModelRole.CHAMPION.value
    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.01

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def backend_options(self) -> BackendOptions:
        return BackendOptions(
            model_path=Path(self.model_path),
            imgsz=self.imgsz,
            conf_threshold=self.conf_threshold,
            iou_threshold=self.iou_threshold,
            max_detections=self.max_detections,
            device=self.device,
            intra_op_threads=self.intra_op_threads,
            class_names=tuple(self.class_names),
        )


@dataclass(frozen=True)
class FrameRequest:
    data: bytes
    enqueued: float


@dataclass(frozen=True)
class FrameReply:
    """One frame's answer: detections (or the reason it could not be read) and per-stage latency."""

    detections: Detections | None
    latency: StageLatency
    model_version: str
    width: int = 0
    height: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    model_version: str
    backend: str
    device: str
    class_names: list[str]
    role: str


class DetectorCore:
    """The batch function and model state, free of Ray so it can be tested directly."""

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self.backend: InferenceBackend = create_backend(spec.backend, spec.backend_options())
        self.metrics: DetectorMetrics | None = None

    def info(self) -> ModelInfo:
        return ModelInfo(
            model_version=self.spec.model_version,
            backend=self.spec.backend,
            device=self.backend.device,
            class_names=self.backend.class_names,
            role=self.spec.role,
        )

    def run_batch(self, requests: list[FrameRequest]) -> list[FrameReply]:
        started = time.perf_counter()
        frames, decode_ms, errors = [], [], {}
        for i, request in enumerate(requests):
            t0 = time.perf_counter()
            try:
                frames.append(decode_image(request.data))
            except InvalidImageError as exc:
                errors[i] = str(exc)
            decode_ms.append((time.perf_counter() - t0) * 1e3)
        prediction = self.backend.predict(frames)
        replies, valid = [], iter(zip(frames, prediction.detections, strict=True))
        for i, request in enumerate(requests):
            queue_ms = max(0.0, (started - request.enqueued) * 1e3)
            if i in errors:
                latency = StageLatency(decode_ms=decode_ms[i], queue_ms=queue_ms)
                replies.append(FrameReply(None, latency, self.spec.model_version, error=errors[i]))
                continue
            frame, detections = next(valid)
            latency = StageLatency(
                decode_ms=decode_ms[i],
                queue_ms=queue_ms,
                inference_ms=prediction.preprocess_ms + prediction.inference_ms,
                post_ms=prediction.postprocess_ms,
            )
            replies.append(
                FrameReply(detections, latency, self.spec.model_version, int(frame.shape[1]), int(frame.shape[0]))
            )
        self._record(replies, len(frames))
        return replies

    def _record(self, replies: list[FrameReply], batch_size: int) -> None:
        if self.metrics is None:
            return
        role = self.spec.role
        if batch_size:
            self.metrics.batch_size.observe(batch_size, tags={"role": role})
            self.metrics.frames.inc(batch_size, tags={"model_version": self.spec.model_version, "role": role})
        for reply in replies:
            if reply.error:
                self.metrics.errors.inc(tags={"kind": "invalid_image"})
                continue
            for stage in ("decode", "queue", "inference", "post"):
                value = getattr(reply.latency, f"{stage}_ms")
                self.metrics.stage_latency.observe(value, tags={"stage": stage, "role": role})


@serve.deployment(name="Detector")
class Detector:
    """A Ray Serve replica holding one model; ``reconfigure`` swaps the model without a restart."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._core = DetectorCore(DetectorSpec(**spec))
        self._core.metrics = DetectorMetrics.create()
        self._apply_batching(self._core.spec)
        log.info("detector ready", extra={"model_version": self._core.spec.model_version})

    def _apply_batching(self, spec: DetectorSpec) -> None:
        self._batched.set_max_batch_size(spec.max_batch_size)
        self._batched.set_batch_wait_timeout_s(spec.batch_wait_timeout_s)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Load another model in place (e.g. after a promotion); frames in flight finish on the old one."""
        if not user_config:
            return
        spec = DetectorSpec(**user_config)
        if spec == self._core.spec:
            return
        core = DetectorCore(spec)
        core.metrics = self._core.metrics
        self._core = core
        self._apply_batching(spec)
        log.info("detector reloaded", extra={"model_version": spec.model_version})

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.01)
    async def _batched(self, requests: list[FrameRequest]) -> list[FrameReply]:
        # Model calls are CPU-bound: run them off the replica's event loop so requests keep queueing.
        return await asyncio.get_running_loop().run_in_executor(None, self._core.run_batch, requests)

    async def detect(self, frames: list[bytes]) -> list[FrameReply]:
        """Detect on several encoded frames; each joins the shared batch queue."""
        now = time.perf_counter()
        return list(await asyncio.gather(*(self._batched(FrameRequest(f, now)) for f in frames)))

    def info(self) -> ModelInfo:
        return self._core.info()
