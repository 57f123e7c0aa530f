"""The Detector deployment: one model, many frames per call, batched across callers with ``@serve.batch``."""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from ray import serve

from visionloop.core.contracts import Detections, EncodedFrame, FrameResult, ModelRole, StageLatency
from visionloop.core.errors import InvalidImageError
from visionloop.core.frame_errors import FrameError
from visionloop.core.imaging import decode_image
from visionloop.core.priority import lower_priority
from visionloop.core.registry import ModelRegistry, ResolvedModel
from visionloop.core.settings import ServingSettings
from visionloop.serving.backends import BackendOptions, InferenceBackend, create_backend
from visionloop.serving.metrics import DetectorMetrics
from visionloop.serving.model_source import PointerWatch, resolve_for_backend

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorSpec:
    """What a Detector replica needs: its model, and the serving settings (declared once, in the settings schema).

    ``to_dict`` is plain JSON, so Ray can ship it and ``reconfigure`` can swap it (Serve's user_config must be JSON).
    ``follow`` names a registry pointer ('champion' or 'shadow') the replica keeps up with, in ``registry_root``;
    an empty ``model_path`` is a replica holding no model yet (a shadow before any shadow is set).
    """

    model_path: str
    model_version: str
    serving: ServingSettings = field(default_factory=ServingSettings)
    class_names: list[str] = field(default_factory=list)
    role: str = ModelRole.CHAMPION.value
    ultralytics_dir: str | None = None
    follow: str | None = None
    registry_root: str | None = None
    follow_poll_s: float = 0.5
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "serving": self.serving.model_dump(mode="json")}

    def with_model(self, model: ResolvedModel | None) -> DetectorSpec:
        """This spec serving ``model``; None: holding no model (a shadow replica while no shadow is set)."""
        if model is None:
            return replace(self, model_path="", model_version="", class_names=[])
        return replace(
            self,
            model_path=str(model.path),
            model_version=model.label,
            class_names=list(model.class_names),
            precision=model.precision,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorSpec:
        return cls(**{**data, "serving": ServingSettings.model_validate(data["serving"])})

    def backend_options(self) -> BackendOptions:
        serving = self.serving
        return BackendOptions(
            model_path=Path(self.model_path),
            imgsz=serving.imgsz,
            conf_threshold=serving.conf_threshold,
            iou_threshold=serving.iou_threshold,
            max_detections=serving.max_detections,
            device=serving.device,
            intra_op_threads=serving.intra_op_threads,
            class_names=tuple(self.class_names),
            ultralytics_dir=Path(self.ultralytics_dir) if self.ultralytics_dir else None,
        )


FramePayload = bytes | npt.NDArray[np.uint8]  # encoded at the network edge, an array from a camera in the cluster


@dataclass(frozen=True)
class FrameRequest:
    """The frames of one call; a batch is several calls, run as one model call."""

    frames: list[FramePayload]
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
    precision: str = "fp32"


def frames_in(requests: list[FrameRequest]) -> int:
    """Batch size in frames, so ``max_batch_size`` bounds the model batch however frames are grouped."""
    return sum(len(request.frames) for request in requests)


class DetectorCore:
    """The batch function and model state, free of Ray so it can be tested directly."""

    def __init__(self, spec: DetectorSpec) -> None:
        self.spec = spec
        self.backend: InferenceBackend = create_backend(spec.serving.backend, spec.backend_options())
        self.metrics: DetectorMetrics | None = None

    def info(self) -> ModelInfo:
        return ModelInfo(
            model_version=self.spec.model_version,
            backend=self.spec.serving.backend,
            device=self.backend.device,
            class_names=self.backend.class_names,
            role=self.spec.role,
            precision=self.spec.precision,
        )

    def run_batch(self, requests: list[FrameRequest]) -> list[list[FrameReply]]:
        """Run every frame of every request in one model call; replies grouped per request."""
        flat = [(request, data) for request in requests for data in request.frames]
        replies = self.run_frames(flat)
        grouped, position = [], 0
        for request in requests:
            grouped.append(replies[position : position + len(request.frames)])
            position += len(request.frames)
        return grouped

    def run_frames(self, flat: list[tuple[FrameRequest, FramePayload]]) -> list[FrameReply]:
        started = time.perf_counter()
        frames, decode_ms, errors = [], [], {}
        for i, (_, data) in enumerate(flat):
            t0 = time.perf_counter()
            try:
                frames.append(data if isinstance(data, np.ndarray) else decode_image(data))
            except InvalidImageError as exc:
                errors[i] = FrameError.of(exc)
            decode_ms.append((time.perf_counter() - t0) * 1e3)
        prediction = self.backend.predict(frames)
        replies, valid = [], iter(zip(frames, prediction.detections, strict=True))
        for i, (request, _) in enumerate(flat):
            batch_ms = max(0.0, (started - request.enqueued) * 1e3)
            if i in errors:
                latency = StageLatency(decode_ms=decode_ms[i], batch_ms=batch_ms)
                replies.append(FrameReply(None, latency, self.spec.model_version, error=errors[i]))
                continue
            frame, detections = next(valid)
            latency = StageLatency(
                decode_ms=decode_ms[i],
                batch_ms=batch_ms,
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
            for stage in ("decode", "batch", "inference", "post"):
                value = getattr(reply.latency, f"{stage}_ms")
                self.metrics.stage_latency.observe(value, tags={"stage": stage, "role": role})


def frame_results(frames: Sequence[EncodedFrame], replies: Sequence[FrameReply]) -> list[FrameResult | str]:
    """Each frame's result, with what it spent at its source added to the serving stages; a frame's error as text.

    Frames without a sequence number or capture time (uploads) get them from the caller before they come here."""
    results: list[FrameResult | str] = []
    done = time.time()
    for frame, reply in zip(frames, replies, strict=True):
        if reply.error or reply.detections is None:
            results.append(reply.error or "no detections returned")
            continue
        latency = StageLatency(
            decode_ms=reply.latency.decode_ms + frame.decode_ms,
            queue_ms=frame.queue_ms,
            batch_ms=reply.latency.batch_ms,
            inference_ms=reply.latency.inference_ms,
            post_ms=reply.latency.post_ms,
        )
        results.append(
            FrameResult(
                camera_id=frame.camera_id,
                seq=frame.seq if frame.seq is not None else 0,
                capture_ts=frame.capture_ts if frame.capture_ts is not None else time.time(),
                model_version=reply.model_version,
                detections=reply.detections,
                latency=latency,
                role=ModelRole.CHAMPION,
                frame_width=reply.width,
                frame_height=reply.height,
                source_frame=frame.source_frame,
                result_ts=done,
            )
        )
    return results


NO_MODEL = "no model loaded: no shadow is set"
FOLLOW_RETRY_S = 10.0


class StuckBatchWatch:
    """The model calls running now and since when; a call older than the limit means the backend hung."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._running: dict[int, float] = {}
        self._ids = itertools.count()

    def start(self) -> int:
        token = next(self._ids)
        self._running[token] = time.monotonic()
        return token

    def finish(self, token: int) -> None:
        self._running.pop(token, None)

    def problem(self, now: float | None = None) -> str | None:
        """Why the replica is unhealthy (a call stuck past the limit), or None."""
        if not self._running:
            return None
        age = (time.monotonic() if now is None else now) - min(self._running.values())
        if age <= self.limit_s:
            return None
        return f"a model call has run for {age:.0f} s (serving.stuck_batch_s is {self.limit_s:g}): the backend hung"


@serve.deployment(name="Detector")
class Detector:
    """A Ray Serve replica holding one model; it swaps models in place, without a restart, when Serve calls
    ``reconfigure`` or when the registry pointer it follows moves."""

    def __init__(self, spec_data: dict[str, Any]) -> None:
        spec = DetectorSpec.from_dict(spec_data)
        self._spec = spec
        lower_priority(spec.serving.inference_nice)  # before the model's threads start: they inherit it
        self._metrics = DetectorMetrics.create()
        self._core: DetectorCore | None = self._load(spec) if spec.model_path else None
        self._swap_lock = threading.Lock()
        # Built per replica (not as a class decorator) so the batch shape comes from the settings. Items are
        # calls carrying up to max_batch_size frames; batch_size_fn makes max_batch_size count frames, not calls.
        self._batched: Any = serve.batch(
            max_batch_size=spec.serving.max_batch_size,
            batch_wait_timeout_s=spec.serving.batch_wait_timeout_s,
            max_concurrent_batches=spec.serving.concurrent_batches,
            batch_size_fn=frames_in,
        )(self._run_batch)
        self._stuck = StuckBatchWatch(spec.serving.stuck_batch_s)
        self._stop = threading.Event()
        if spec.follow and spec.registry_root:
            watch = PointerWatch(Path(spec.registry_root), spec.follow)
            threading.Thread(target=self._follow, args=(watch,), name="follow-pointer", daemon=True).start()
        lower_priority(spec.serving.inference_nice)  # and the threads Serve started meanwhile
        log.info("detector ready", extra={"model_version": spec.model_version, "role": spec.role})

    def _load(self, spec: DetectorSpec) -> DetectorCore:
        core = DetectorCore(spec)
        core.metrics = self._metrics
        return core

    def _apply_batching(self, spec: DetectorSpec) -> None:
        self._batched.set_max_batch_size(spec.serving.max_batch_size)
        self._batched.set_batch_wait_timeout_s(spec.serving.batch_wait_timeout_s)

    def _swap(self, spec: DetectorSpec) -> None:
        """Load ``spec`` beside the current model, then replace it: batches already running finish on the old one
        (they hold their own reference), the next batch runs on the new one. No frame waits for the load."""
        with self._swap_lock:
            if spec == self._spec and (self._core is not None or not spec.model_path):
                return
            core = self._load(spec) if spec.model_path else None
            self._core, self._spec = core, spec
            self._apply_batching(spec)  # concurrent_batches applies from the next replica start
        log.info("detector swapped model", extra={"model_version": spec.model_version, "role": spec.role})

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Serve's hook (a deployment's user_config): load another model in place; frames in flight finish on the
        old one."""
        if user_config:
            self._swap(DetectorSpec.from_dict(user_config))

    def _follow(self, watch: PointerWatch) -> None:
        """Keep up with the registry pointer; a model that fails to load is retried, the old one keeps serving."""
        failed_at: dict[str | None, float] = {}
        while not self._stop.wait(self._spec.follow_poll_s):
            watch.poll()
            wanted = watch.version
            if wanted == (self._spec.model_version if self._spec.model_path else None):
                continue
            if time.monotonic() - failed_at.get(wanted, -FOLLOW_RETRY_S) < FOLLOW_RETRY_S:
                continue
            try:
                self._swap(self._spec_for(wanted))
            except Exception as exc:  # a bad model file: keep serving what works, say why, try again later
                failed_at[wanted] = time.monotonic()
                log.error("cannot load %s %s, still serving %s: %s", self._spec.follow, wanted,
                          self._spec.model_version or "nothing", exc)  # fmt: skip

    def _spec_for(self, version: str | None) -> DetectorSpec:
        if version is None:
            return replace(self._spec, model_path="", model_version="", class_names=[])
        assert self._spec.registry_root is not None
        serving = self._spec.serving
        registry = ModelRegistry(Path(self._spec.registry_root))
        return self._spec.with_model(resolve_for_backend(registry, version, serving.backend, serving.precision))

    async def _run_batch(self, requests: list[FrameRequest]) -> list[list[FrameReply]]:
        # Model calls are CPU-bound: run them off the replica's event loop so requests keep queueing, and so
        # that with concurrent_batches > 1 one batch decodes while another is in the model.
        core = self._core
        if core is None:
            return [[FrameReply(None, StageLatency(), "", error=NO_MODEL) for _ in r.frames] for r in requests]
        token = self._stuck.start()
        try:
            return await asyncio.get_running_loop().run_in_executor(None, core.run_batch, requests)
        finally:
            self._stuck.finish(token)

    def check_health(self) -> None:
        """Serve's periodic probe: raising makes Serve replace this replica, so a hung model call (a driver or
        backend deadlock) costs a restart instead of stalling every camera behind it."""
        problem = self._stuck.problem()
        if problem:
            log.error("detector unhealthy: %s", problem)
            raise RuntimeError(problem)

    async def detect(self, frames: list[FramePayload]) -> list[FrameReply]:
        """Detect on several frames, encoded (an upload) or decoded (a camera's arrays, through the object store).

        Callers that send several frames per call pay Serve's per-request cost once for all of them; the frames
        join the replica's shared batch queue in chunks of at most ``max_batch_size``.
        """
        now, size = time.perf_counter(), self._spec.serving.max_batch_size
        chunks = [FrameRequest(list(frames[i : i + size]), now) for i in range(0, len(frames), size)]
        replies = await asyncio.gather(*(self._batched(chunk) for chunk in chunks))
        return [reply for chunk_replies in replies for reply in chunk_replies]

    async def detect_frames(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        """Detect on camera frames and answer with their results (a string for a frame that failed): camera
        workers call this directly, one Ray hop per frame, and publish what it returns themselves."""
        replies = await self.detect([frame.payload for frame in frames])
        return frame_results(frames, replies)

    def info(self) -> ModelInfo:
        core = self._core
        if core is None:
            return ModelInfo("", self._spec.serving.backend, "", [], self._spec.role)
        return core.info()

    def __del__(self) -> None:
        stop: threading.Event | None = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
