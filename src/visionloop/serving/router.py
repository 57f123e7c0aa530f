"""The Router: the HTTP ingress (FastAPI) in front of the champion Detector (and the shadow beside it).

The deployment turns Detector replies into ``FrameResult``s, hands them to the result publisher, shows every
answered frame to the observer the face passed in and mirrors some frames to the shadow (both off the response
path). The app Serve's ingress serves is assembled here (middlewares: authentication before any body is read, the
body size limit, redacted validation errors); its handlers live in :mod:`visionloop.serving.api`, one router per area.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import ray.exceptions
import redis.exceptions
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from ray import serve

from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.errors import VisionloopError
from visionloop.core.frames import FrameObserverFactory, ResultTarget, kept_frames
from visionloop.core.registry import ModelRegistry
from visionloop.core.results import ResultPublisher
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.core.tracking import CameraTrackers
from visionloop.serving.api import AREAS
from visionloop.serving.api.labeling import WEBHOOK_PATH
from visionloop.serving.auth import AuthMiddleware, TokenBook
from visionloop.serving.detector import ModelInfo
from visionloop.serving.http_errors import mapped_error_response, validation_error_response
from visionloop.serving.limits import BodySizeLimitMiddleware, UploadLimit
from visionloop.serving.metrics import RouterMetrics
from visionloop.serving.model_source import PointerWatch
from visionloop.serving.shadow import ShadowMirror

if TYPE_CHECKING:
    from visionloop.serving.api.deps import ReplicaState

log = logging.getLogger(__name__)

app = FastAPI(
    title="visionloop",
    version="0.1.0",
    description="Real-time object detection with an active-learning loop. Mutating endpoints need a bearer token.",
)
MAX_OBSERVER_INFLIGHT = 64
# Results still buffered when the replica stops get this long to reach Redis: well inside Serve's default
# graceful_shutdown_timeout_s (20 s), which first waits for in-flight requests.
RESULTS_DRAIN_TIMEOUT_S = 5.0
SHADOW_POLL_S = 0.5  # how stale the Router's idea of "is there a shadow" may be

app.add_middleware(BodySizeLimitMiddleware, limit=UploadLimit.get)
app.add_exception_handler(RequestValidationError, validation_error_response)
for mapped in (VisionloopError, redis.exceptions.RedisError, ray.exceptions.RayError):  # upstream outages: 502/503
    app.add_exception_handler(mapped, mapped_error_response)
app.add_middleware(AuthMiddleware)  # added last, so it runs first: no body is read for an anonymous client
# Before @serve.ingress below: it freezes a copy of the app as it is then, and that copy is what replicas serve.
for area in AREAS:
    app.include_router(area)


@serve.deployment(name="Router")
@serve.ingress(app)
class Router:
    """HTTP API and frame entry point; one per node is plenty (it does little CPU work)."""

    def __init__(
        self,
        settings: Settings,
        champion: Any,
        redis_url: str,
        observer: FrameObserverFactory | None = None,
        shadow: Any = None,
        companions: Sequence[Any] = (),
    ) -> None:
        """``observer`` builds what is told about every answered frame (the face passes the labeling selector);
        ``shadow`` is the shadow Detector's handle (None when shadow mode is off); ``companions`` are deployments
        bound into the application so that they deploy and stop with it (the background workers)."""
        self.settings = settings
        self.companions = tuple(companions)
        tokens = {"operator": settings.api.token.get_secret_value()}
        tokens.update({name: t.get_secret_value() for name, t in settings.api.named_tokens.items()})
        TokenBook.configure(tokens, settings.labeling.webhook_secret.get_secret_value(), frozenset({WEBHOOK_PATH}))
        UploadLimit.set(self.settings.api.max_upload_bytes)
        self.champion = champion
        self.registry = ModelRegistry(self.settings.var.models)
        self.metrics = RouterMetrics.create()
        self.publisher = ResultTarget.from_settings(settings, redis_url).publisher(
            on_drop=lambda n: self.metrics.results_dropped.inc(n)
        )
        self._seq = itertools.count()
        self._trackers = CameraTrackers.from_settings(settings.tracking)
        self._model_info: dict[str, ModelInfo] = {}
        self.redis_url = redis_url
        # The observer needs the frame, which only the Router holds; it runs off the response path.
        self._observer = observer(settings, redis_url) if observer is not None else None
        self._observer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-observer")
        self._observer_inflight = 0
        self.mirror: ShadowMirror | None = None
        if shadow is not None:
            self.mirror = ShadowMirror(
                shadow,
                settings.shadow,
                redis_url,
                StreamNames(settings.redis.stream_prefix).shadow_pairs,
                settings.serving.conf_threshold,
                settings.redis.socket_timeout_s,
                on_count=lambda outcome, n: self.metrics.shadow_frames.inc(n, tags={"outcome": outcome}),
            )
        self._shadow_watch = PointerWatch(self.registry.root, "shadow")
        self._shadow_polled = 0.0

    async def __del__(self) -> None:
        """Serve awaits this when the replica stops (Ray Serve accepts ``async def __del__``): write the results
        still buffered to Redis, bounded by RESULTS_DRAIN_TIMEOUT_S, and close the connection before exiting."""
        publisher: ResultPublisher | None = getattr(self, "publisher", None)  # None if __init__ failed early
        if publisher is not None:
            await publisher.shutdown(RESULTS_DRAIN_TIMEOUT_S)
        mirror: ShadowMirror | None = getattr(self, "mirror", None)
        if mirror is not None:
            await mirror.shutdown(1.0)

    # -- what Ray handles call (core.frames.IngressCalls) and the API handlers use (api.deps.ReplicaState) -----

    def _shadow_mirror(self) -> ShadowMirror | None:
        """The mirror while a shadow is set (the pointer file is re-read at most every SHADOW_POLL_S)."""
        if self.mirror is None:
            return None
        now = time.monotonic()
        if now - self._shadow_polled >= SHADOW_POLL_S:
            self._shadow_polled = now
            self._shadow_watch.poll()
        return self.mirror if self._shadow_watch.version else None

    async def class_names_for(self, model_version: str) -> list[str]:
        """Class names of ``model_version`` (the champion is asked once per version it serves)."""
        if model_version not in self._model_info:
            info: ModelInfo = await self.champion.info.remote()
            self._model_info[info.model_version] = info
        info_for = self._model_info.get(model_version)
        return info_for.class_names if info_for else []

    async def process_frames(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        """Run frames through the champion and publish their results; a string in the output is a frame's error.

        The HTTP and stream endpoints and the browser gateway call this; camera workers go to the Detector
        directly (one hop) and hand their frames to :meth:`observe_frames` afterwards.
        """
        self.publisher.start()
        received = time.time()
        stamped = [
            replace(
                frame,
                seq=frame.seq if frame.seq is not None else next(self._seq),
                capture_ts=frame.capture_ts if frame.capture_ts is not None else received,
            )
            for frame in frames
        ]
        results: list[FrameResult | str] = await self.champion.detect_frames.remote(stamped)
        if self._trackers is not None:
            results = self._trackers.tag(results)
        self.publisher.publish(r for r in results if isinstance(r, FrameResult))
        self.metrics.results_buffered.set(self.publisher.buffered)
        await self.observe_frames(stamped, results)
        return results

    async def wants_frames(self) -> bool:
        """Whether answered camera frames are worth sending here (an observer or a shadow mirror looks at them)."""
        return self._observer is not None or self.mirror is not None

    async def observe_frames(self, frames: list[EncodedFrame], results: list[FrameResult | str]) -> None:
        """Show answered frames to the observer and the shadow mirror, off every response path: camera workers
        call this after publishing their results, so neither labeling nor shadow mode adds to a camera's latency."""
        mirror = self._shadow_mirror()
        if mirror is not None:
            mirror.offer_random(frames, results)
        self._observe_frames(frames, results, mirror)

    def _observe_frames(
        self, frames: list[EncodedFrame], results: list[FrameResult | str], mirror: ShadowMirror | None
    ) -> None:
        """Hand frames to the observer on a background thread, bounded so a slow Redis cannot pile work up; the
        frames it keeps for labeling are mirrored to the shadow (back on the event loop: the queue is asyncio's)."""
        observer = self._observer
        if observer is None or self._observer_inflight >= MAX_OBSERVER_INFLIGHT:
            return
        pairs = [(f, r) for f, r in zip(frames, results, strict=True) if isinstance(r, FrameResult)]
        if not pairs:
            return
        self._observer_inflight += 1
        loop = asyncio.get_running_loop()
        mirror_selected = mirror if self.settings.shadow.mirror_selected else None

        def observe() -> None:
            try:
                for frame, result in pairs:
                    answer = observer.offer(frame, result)
                    if mirror_selected is not None:
                        for kept_frame, kept_result in kept_frames(answer, frame, result):
                            loop.call_soon_threadsafe(mirror_selected.offer, kept_frame, kept_result, "selected")
            except Exception as exc:  # Redis away or a bad frame: labeling waits, serving goes on
                self.metrics.errors.inc(tags={"kind": "selection"})
                log.warning("frame observer failed: %s", exc)

        future = loop.run_in_executor(self._observer_pool, observe)
        future.add_done_callback(lambda _: self._release_observer())

    def _release_observer(self) -> None:
        self._observer_inflight -= 1

    async def class_names(self) -> list[str]:
        """Class names of the serving champion (the WebRTC gateway labels its boxes with them)."""
        info: ModelInfo = await self.champion.info.remote()
        self._model_info[info.model_version] = info
        return list(info.class_names)


if TYPE_CHECKING:  # the API handlers reach the replica through api.deps.ReplicaState: mypy holds the Router to it

    def _router_is_the_handlers_replica(router: Router) -> ReplicaState:
        return router
