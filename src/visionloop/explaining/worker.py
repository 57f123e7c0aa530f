"""The explanation worker: answers explanation requests off the hot path, niced, one at a time, cached in Redis.

The API puts a request (:class:`visionloop.explanations.ExplainRequest`) on ``explain_requests`` and marks its key
"queued"; this worker's thread reads the stream through a consumer group, marks the key "running" (with an EigenCAM
preview as soon as it is ready, ~0.1 s), explains the box with SHAP (:mod:`learning.explain`) and stores "done"
(peak, seconds, overlay PNG) or "error" with the reason. Every entry is
acknowledged after its answer is stored, so a bad request is never retried for ever and never lost silently; an
entry a killed worker was handling stays pending and is answered at the next start. An explanation already done is
not computed again. Answers are kept for the newest ``explain.cache_size`` keys (``explain_order``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import redis

from visionloop.core.errors import VisionloopError
from visionloop.core.explanations import ExplainRequest, ExplanationState
from visionloop.core.imaging import decode_image
from visionloop.core.registry import ModelRegistry
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames, ensure_group
from visionloop.core.worker_runner import WorkerRunner
from visionloop.explaining.explainer import (
    EigenCam,
    ExplainError,
    RawDetector,
    explain_box,
    load_detector,
    overlay_png_b64,
    png_b64,
    render_heat,
)

log = logging.getLogger(__name__)

CONSUMER = "explain-worker"
MODELS_KEPT = 2  # detectors kept loaded (champion and shadow, typically)
CLAIM_IDLE_MS = 60_000  # entries another consumer left pending this long are taken over at start
WARMUP_EVALS = 50


def warm_up() -> float:
    """Import shap and run a tiny explanation: the first call compiles shap's numba code (~20 s), so a request
    never pays it. Returns the seconds spent."""
    started = time.perf_counter()
    import shap

    image = np.full((16, 16, 3), 100.0, np.float32)
    masker = shap.maskers.Image(128.0, image.shape)

    def brightness(images: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        flat = np.asarray(images, np.float32).reshape(len(images), -1)
        return np.asarray(flat.mean(axis=1, keepdims=True), np.float32)

    shap.Explainer(brightness, masker, algorithm="partition")(image[np.newaxis], max_evals=WARMUP_EVALS, silent=True)
    return time.perf_counter() - started


class ExplainWorker:
    """A plain class the face runs as a Ray actor (``max_concurrency`` > 1 so that ``status`` answers while an
    explanation runs); tests run it in-process."""

    def __init__(self, settings: Settings, redis_url: str, *, warm: bool = True) -> None:
        self._settings = settings
        self._streams = StreamNames(settings.redis.stream_prefix)
        timeout = settings.redis.socket_timeout_s
        self._redis = redis.Redis.from_url(redis_url, socket_timeout=timeout)
        self._poll_s = 1.0
        self._reader = redis.Redis.from_url(redis_url, socket_timeout=self._poll_s + timeout)
        self._registry = ModelRegistry(settings.var.models)
        self._models: OrderedDict[str, tuple[RawDetector, EigenCam | None]] = OrderedDict()
        self._warm = warm
        # last_error tells the last failed request (or round): a quiet round does not clear it.
        self._runner = WorkerRunner("explain-worker", self._poll, log=log, setup=self._prepare_thread, keep_error=True)
        self.stage = "idle"
        self.handled = 0
        self.failed = 0
        self.cached = 0
        self.last_seconds: float | None = None
        self.warm_seconds: float | None = None

    @property
    def last_error(self) -> str | None:
        return self._runner.last_error

    @last_error.setter
    def last_error(self, message: str | None) -> None:
        self._runner.record_error(message)

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Join the consumer group, take over stale pending entries, and start the (niced) thread."""
        ensure_group(self._redis, self._streams.explain_requests, self._streams.explain_group)
        claimed: Any = self._redis.xautoclaim(
            self._streams.explain_requests, self._streams.explain_group, CONSUMER, CLAIM_IDLE_MS, "0-0", count=1000
        )
        self._runner.start()
        return {"group": self._streams.explain_group, "consumer": CONSUMER, "reclaimed": len(claimed[1])}

    def stop(self) -> None:
        self._runner.stop(30)
        self._redis.close()
        self._reader.close()

    def status(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "running": self._runner.running,
            "handled": self.handled,
            "failed": self.failed,
            "cached": self.cached,
            "models_loaded": list(self._models),
            "last_error": self.last_error,
            "last_seconds": self.last_seconds,
            "warm_seconds": self.warm_seconds,
            **self._runner.status(),  # rounds, errors, last_error_at, backoff_s
        }

    # -- the requests stream ------------------------------------------------------------------------------------

    def _prepare_thread(self) -> None:
        """On the worker's thread, before its first round."""
        # On Linux a thread's niceness is its own and threads it starts inherit it (ONNX Runtime's pool included),
        # so this lowers the explanation work without touching the process's other threads.
        os.nice(self._settings.explain.nice)
        if self._warm:
            self.stage = "warming up"
            try:
                self.warm_seconds = round(warm_up(), 2)
            finally:
                self.stage = "idle"

    def _poll(self) -> None:
        """Entries left pending (by a crash) first, then new ones."""
        entries = self._read("0", None) or self._read(">", int(self._poll_s * 1000))
        for entry_id, fields in entries:
            if self._runner.stopping:
                return
            self.handle(fields)
            self._redis.xack(self._streams.explain_requests, self._streams.explain_group, entry_id)

    def _read(self, start: str, block_ms: int | None) -> list[tuple[bytes, dict[bytes, bytes]]]:
        batch: Any = self._reader.xreadgroup(
            self._streams.explain_group, CONSUMER, {self._streams.explain_requests: start}, count=10, block=block_ms
        )
        return [entry for _, entries in batch or [] for entry in entries]

    # -- one request --------------------------------------------------------------------------------------------

    def handle(self, fields: dict[Any, Any]) -> dict[str, Any]:
        """Answer one request entry and store the answer under its key; returns the answer."""
        key_raw = fields.get(b"key", fields.get("key"))
        key = key_raw.decode() if isinstance(key_raw, bytes) else str(key_raw or "")
        try:
            request = ExplainRequest.from_fields(fields)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._fail(key or "malformed", {}, f"malformed explanation request: {exc}")
        key = request.key
        cached = self._cached(key)
        if cached is not None:
            self.cached += 1
            self._remember(key)
            return cached
        about = {
            "key": key,
            "model_version": request.model_version,
            "frame_id": request.frame_id,
            "box_index": request.box_index,
            "box": list(request.box),
            "class_id": request.class_id,
        }
        running = {"state": ExplanationState.RUNNING.value, **about, "started": time.time(), "error": None}
        self._store(key, running)
        self.stage = f"explaining {key}"
        try:
            frame = decode_image(request.image, f"frame {request.frame_id}")
            detector, cam = self._detector(request.model_version)
            about["preview_png_b64"] = self._preview(cam, frame, request.box)
            if about["preview_png_b64"]:
                self._store(key, {**running, **about})
            answer = self._explain(detector, frame, request, about)
        except (VisionloopError, ValueError) as exc:
            return self._fail(key, about, str(exc))
        except Exception as exc:  # a bug must not kill the thread nor leave the key "running" for ever
            log.exception("explanation %s failed unexpectedly", key)
            return self._fail(key, about, f"{type(exc).__name__}: {exc}")
        finally:
            self.stage = "idle"
        self._store(key, answer)
        self._remember(key)
        self.handled += 1
        self.last_seconds = answer["seconds"]
        return answer

    @staticmethod
    def _preview(cam: EigenCam | None, frame: np.ndarray[Any, Any], box: Sequence[float]) -> str | None:
        """The EigenCAM overlay shown while SHAP runs; None when the model has no map to show."""
        if cam is None:
            return None
        try:
            return png_b64(render_heat(frame, cam(frame), box))
        except Exception:  # a preview is a nicety: its failure must not cost the explanation
            log.exception("EigenCAM preview failed")
            return None

    def _explain(
        self, detector: RawDetector, frame: np.ndarray[Any, Any], request: ExplainRequest, about: dict[str, Any]
    ) -> dict[str, Any]:
        explanation = explain_box(detector, frame, request.box, request.class_id, self._settings.explain)
        return {
            "state": ExplanationState.DONE.value,
            **about,
            "seconds": round(explanation.seconds, 3),
            "evals": explanation.evals,
            "peak": list(explanation.peak),
            "score": round(explanation.score, 4),
            "overlay_png_b64": overlay_png_b64(frame, explanation),
            "finished": time.time(),
            "error": None,
        }

    def _detector(self, version: str) -> tuple[RawDetector, EigenCam | None]:
        """The detector (and its EigenCAM) of a registry version, loaded once (the least recently used one is
        dropped)."""
        if version in self._models:
            self._models.move_to_end(version)
            return self._models[version]
        model = self._registry.get(version)  # RegistryError names the known versions
        if not model.onnx_path.is_file():
            raise ExplainError(f"model version '{version}' has no ONNX file to explain with")
        imgsz = int(model.meta.get("imgsz") or self._settings.serving.imgsz)
        threads = self._settings.serving.intra_op_threads
        detector = load_detector(model.onnx_path, imgsz, threads)
        try:
            cam: EigenCam | None = EigenCam(model.onnx_path, imgsz, threads)
        except ExplainError as exc:
            log.info("no EigenCAM preview for %s: %s", version, exc)
            cam = None
        self._models[version] = (detector, cam)
        while len(self._models) > MODELS_KEPT:
            self._models.popitem(last=False)
        return detector, cam

    def _fail(self, key: str, about: dict[str, Any], error: str) -> dict[str, Any]:
        self.failed += 1
        self.last_error = f"{key}: {error}"
        log.warning("explanation %s failed: %s", key, error)
        answer = {"state": ExplanationState.ERROR.value, **about, "key": key, "finished": time.time(), "error": error}
        self._store(key, answer)
        self._remember(key)
        return answer

    # -- the cache ----------------------------------------------------------------------------------------------

    def _cached(self, key: str) -> dict[str, Any] | None:
        raw: Any = self._redis.hget(self._streams.explanations, key)
        if raw is None:
            return None
        try:
            found = json.loads(raw)
        except ValueError:
            return None
        return found if isinstance(found, dict) and found.get("state") == ExplanationState.DONE.value else None

    def _store(self, key: str, answer: dict[str, Any]) -> None:
        self._redis.hset(self._streams.explanations, key, json.dumps(answer, separators=(",", ":")))

    def _remember(self, key: str) -> None:
        """Put ``key`` first in the order list; answers past ``explain.cache_size`` are dropped."""
        keep = self._settings.explain.cache_size
        order = self._streams.explain_order
        pipe = self._redis.pipeline()
        pipe.lrem(order, 0, key)
        pipe.lpush(order, key)
        pipe.lrange(order, keep, -1)
        pipe.ltrim(order, 0, keep - 1)
        dropped: list[bytes] = pipe.execute()[2]
        if dropped:
            self._redis.hdel(self._streams.explanations, *[d.decode() for d in dropped])
