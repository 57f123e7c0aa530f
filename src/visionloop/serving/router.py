"""The Router: the HTTP ingress (FastAPI) in front of the champion Detector (and the shadow beside it).

It owns the API, authentication and limits, turns Detector replies into ``FrameResult``s, hands them to the
result publisher, shows every answered frame to the observer the face passed in and mirrors some frames to the
shadow (both off the response path), and carries the operator's promote / reject / rollback to the registry.
"""

# No `from __future__ import annotations` here: FastAPI must see real annotations on the ingress methods.
import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Annotated, Any

import httpx
from fastapi import Body, Depends, FastAPI, File, HTTPException, Path, Query, Request, UploadFile, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from ray import serve

from visionloop.core.cameras import CAMERA_ID_PATTERN, CameraSpec
from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.errors import ComponentDisabled, InvalidImageError, NotReadyError
from visionloop.core.frames import FrameObserverFactory, ResultTarget
from visionloop.core.http_errors import PayloadTooLarge, Unauthorized, is_client_error
from visionloop.core.model_setup import event_log_for
from visionloop.core.promotion import history, promote, reject, rollback
from visionloop.core.registry import ModelRegistry
from visionloop.core.results import ResultPublisher
from visionloop.core.settings import Settings
from visionloop.core.streams import CAMERA_MANAGER_ACTOR, LABELING_WORKER_ACTOR, LOOP_WORKER_ACTOR, StreamNames
from visionloop.serving.auth import WEBHOOK_SECRET_HEADER, AuthMiddleware, TokenBook
from visionloop.serving.detector import ModelInfo
from visionloop.serving.explanations import explanation, kept_frame, queue_explanation, recent_explanations, request_for
from visionloop.serving.http_errors import http_exception, validation_error_response
from visionloop.serving.limits import BodySizeLimitMiddleware, UploadLimit
from visionloop.serving.metrics import RouterMetrics
from visionloop.serving.model_source import PointerWatch
from visionloop.serving.shadow import ShadowMirror, summarize_pairs
from visionloop.serving.stream_session import StreamLimits, StreamSession

log = logging.getLogger(__name__)

app = FastAPI(
    title="visionloop",
    version="0.1.0",
    description="Real-time object detection with an active-learning loop. Mutating endpoints need a bearer token.",
)
_bearer = HTTPBearer(auto_error=False, description="The token from api.token in the settings.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
MAX_OBSERVER_INFLIGHT = 64
# Results still buffered when the replica stops get this long to reach Redis: well inside Serve's default
# graceful_shutdown_timeout_s (20 s), which first waits for in-flight requests.
RESULTS_DRAIN_TIMEOUT_S = 5.0
CameraId = Annotated[str, Query(pattern=CAMERA_ID_PATTERN, description="Camera the results are filed under.")]
VERSION_PATTERN = r"^v[0-9]+$"
SHADOW_POLL_S = 0.5  # how stale the Router's idea of "is there a shadow" may be
SWAP_WAIT_S = 30.0  # a promotion answers once the champion replica serves the new version (or after this)
PAIRS_SUMMARIZED = 2000  # the latest shadow pairs the operational comparison reads
HEALTH_MODEL_TIMEOUT_S = 5.0  # /v1/health waits no longer for the champion to say which model it serves


class PromoteRequest(BaseModel):
    version: str | None = Field(
        default=None, pattern=VERSION_PATTERN, description="Version to promote (default: the shadow)."
    )
    force: bool = Field(default=False, description="Promote without a PROMOTE verdict from the A/B (audited).")


app.add_middleware(BodySizeLimitMiddleware, limit=UploadLimit.get)
app.add_exception_handler(RequestValidationError, validation_error_response)
app.add_middleware(AuthMiddleware)  # added last, so it runs first: no body is read for an anonymous client
WEBHOOK_PATH = "/v1/labeling/webhook"


class ExplainBody(BaseModel):
    """One detection of one kept frame (the dashboard's Explain page lists them)."""

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    frame_id: str = Field(min_length=1, max_length=200)
    box_index: int = Field(ge=0, lt=10_000)


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
    ) -> None:
        """``observer`` builds what is told about every answered frame (the face passes the labeling selector);
        ``shadow`` is the shadow Detector's handle (None when shadow mode is off)."""
        self._settings = settings
        tokens = {"operator": settings.api.token.get_secret_value()}
        tokens.update({name: t.get_secret_value() for name, t in settings.api.named_tokens.items()})
        TokenBook.configure(tokens, settings.labeling.webhook_secret.get_secret_value(), frozenset({WEBHOOK_PATH}))
        UploadLimit.set(self._settings.api.max_upload_bytes)
        self._champion = champion
        self._registry = ModelRegistry(self._settings.var.models)
        self._metrics = RouterMetrics.create()
        self._publisher = ResultTarget.from_settings(settings, redis_url).publisher(
            on_drop=lambda n: self._metrics.results_dropped.inc(n)
        )
        self._seq = itertools.count()
        self._model_info: dict[str, ModelInfo] = {}
        self._redis_url = redis_url
        # The observer needs the frame, which only the Router holds; it runs off the response path.
        self._observer = observer(settings, redis_url) if observer is not None else None
        self._observer_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-observer")
        self._observer_inflight = 0
        self._mirror: ShadowMirror | None = None
        if shadow is not None:
            self._mirror = ShadowMirror(
                shadow,
                settings.shadow,
                redis_url,
                StreamNames(settings.redis.stream_prefix).shadow_pairs,
                settings.serving.conf_threshold,
                settings.redis.socket_timeout_s,
                on_count=lambda outcome, n: self._metrics.shadow_frames.inc(n, tags={"outcome": outcome}),
            )
        self._shadow_watch = PointerWatch(self._registry.root, "shadow")
        self._shadow_polled = 0.0

    async def __del__(self) -> None:
        """Serve awaits this when the replica stops (Ray Serve accepts ``async def __del__``): write the results
        still buffered to Redis, bounded by RESULTS_DRAIN_TIMEOUT_S, and close the connection before exiting."""
        publisher: ResultPublisher | None = getattr(self, "_publisher", None)  # None if __init__ failed early
        if publisher is not None:
            await publisher.shutdown(RESULTS_DRAIN_TIMEOUT_S)
        mirror: ShadowMirror | None = getattr(self, "_mirror", None)
        if mirror is not None:
            await mirror.shutdown(1.0)

    # -- internals ---------------------------------------------------------------------------------------------

    def _authorize(self, credentials: HTTPAuthorizationCredentials | None) -> str:
        """The name of the token the request carries (what the audit log records); 401 without a known one.

        AuthMiddleware has already refused an HTTP request without one; this also guards the WebSocket handshake
        and keeps a handler safe should the middleware ever be left out."""
        header = f"{credentials.scheme} {credentials.credentials}" if credentials is not None else None
        name = TokenBook.name_of(header)
        if name is None:
            raise http_exception(Unauthorized())
        return name

    async def _on_redis(self, work: Callable[[Any, StreamNames], Awaitable[Any]]) -> Any:
        """Run ``work(client, streams)`` on a short-lived async Redis connection; a client error becomes its 4xx."""
        import redis.asyncio as aioredis

        timeout = self._settings.redis.socket_timeout_s
        client = aioredis.Redis.from_url(self._redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return await work(client, StreamNames(self._settings.redis.stream_prefix))
        except Exception as exc:
            if not is_client_error(exc):
                raise
            raise http_exception(exc) from None
        finally:
            await client.aclose()

    def _shadow_mirror(self) -> ShadowMirror | None:
        """The mirror while a shadow is set (the pointer file is re-read at most every SHADOW_POLL_S)."""
        if self._mirror is None:
            return None
        now = time.monotonic()
        if now - self._shadow_polled >= SHADOW_POLL_S:
            self._shadow_polled = now
            self._shadow_watch.poll()
        return self._mirror if self._shadow_watch.version else None

    async def _class_names(self, model_version: str) -> list[str]:
        if model_version not in self._model_info:
            info: ModelInfo = await self._champion.info.remote()
            self._model_info[info.model_version] = info
        info_for = self._model_info.get(model_version)
        return info_for.class_names if info_for else []

    async def process_frames(self, frames: list[EncodedFrame]) -> list[FrameResult | str]:
        """Run frames through the champion and publish their results; a string in the output is a frame's error.

        The HTTP and stream endpoints and the browser gateway call this; camera workers go to the Detector
        directly (one hop) and hand their frames to :meth:`observe_frames` afterwards.
        """
        self._publisher.start()
        received = time.time()
        stamped = [
            replace(
                frame,
                seq=frame.seq if frame.seq is not None else next(self._seq),
                capture_ts=frame.capture_ts if frame.capture_ts is not None else received,
            )
            for frame in frames
        ]
        results: list[FrameResult | str] = await self._champion.detect_frames.remote(stamped)
        self._publisher.publish(r for r in results if isinstance(r, FrameResult))
        self._metrics.results_buffered.set(self._publisher.buffered)
        await self.observe_frames(stamped, results)
        return results

    async def wants_frames(self) -> bool:
        """Whether answered camera frames are worth sending here (an observer or a shadow mirror looks at them)."""
        return self._observer is not None or self._mirror is not None

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
        mirror_selected = mirror if self._settings.shadow.mirror_selected else None

        def observe() -> None:
            try:
                for frame, result in pairs:
                    if observer.offer(frame, result) is not None and mirror_selected is not None:
                        loop.call_soon_threadsafe(mirror_selected.offer, frame, result, "selected")
            except Exception as exc:  # Redis away or a bad frame: labeling waits, serving goes on
                self._metrics.errors.inc(tags={"kind": "selection"})
                log.warning("frame observer failed: %s", exc)

        future = loop.run_in_executor(self._observer_pool, observe)
        future.add_done_callback(lambda _: self._release_observer())

    def _release_observer(self) -> None:
        self._observer_inflight -= 1

    async def class_names(self) -> list[str]:
        """Class names of the serving champion (the WebRTC gateway labels its boxes with them)."""
        info: ModelInfo = await self._champion.info.remote()
        self._model_info[info.model_version] = info
        return list(info.class_names)

    async def _read_upload(self, upload: UploadFile) -> bytes:
        data = await upload.read()
        return bytes(data)

    def _observe(self, endpoint: str, status: int, started: float) -> None:
        self._metrics.requests.inc(tags={"endpoint": endpoint, "status": str(status)})
        self._metrics.request_latency.observe((time.perf_counter() - started) * 1e3, tags={"endpoint": endpoint})

    # -- HTTP API ----------------------------------------------------------------------------------------------

    @app.post("/v1/detect", summary="Detect objects in one JPEG or PNG image")
    async def detect(
        self,
        credentials: Credentials,
        image: Annotated[UploadFile, File(description="A JPEG or PNG image.")],
        camera_id: CameraId = "api",
    ) -> dict[str, Any]:
        started = time.perf_counter()
        self._authorize(credentials)
        data = await self._read_upload(image)
        (result,) = await self.process_frames([EncodedFrame(camera_id, data)])
        if isinstance(result, str):
            self._metrics.errors.inc(tags={"kind": "invalid_image"})
            self._observe("detect", 400, started)
            raise http_exception(InvalidImageError(f"image '{image.filename}': {result}"))
        self._observe("detect", 200, started)
        return result.to_dict(await self._class_names(result.model_version))

    @app.websocket("/v1/stream")
    async def stream(self, websocket: WebSocket, camera_id: CameraId = "stream") -> None:
        """Frames as binary WebSocket messages (JPEG or PNG), answers as JSON text messages, one per frame in order
        (``index`` counts the frames of the connection). The bearer token goes in the handshake's Authorization
        header; without it the handshake is refused before any frame is read."""
        header = websocket.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        try:
            self._authorize(HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if token else None)
        except HTTPException:
            self._metrics.requests.inc(tags={"endpoint": "stream", "status": "401"})
            await websocket.close(code=1008, reason="missing or wrong bearer token (Authorization: Bearer <token>)")
            return
        await websocket.accept()
        api = self._settings.api
        limits = StreamLimits(api.max_upload_bytes, api.stream_window, self._settings.serving.max_batch_size)
        session = StreamSession(
            camera_id, websocket.receive, websocket.send_json, self.process_frames, self._class_names, limits
        )
        try:
            await session.run()
        finally:
            self._metrics.requests.inc(session.answered, tags={"endpoint": "stream", "status": "200"})
            self._metrics.requests.inc(session.errors, tags={"endpoint": "stream", "status": "400"})

    @app.post("/v1/detect/batch", summary="Detect objects in several images at once (cheaper per frame)")
    async def detect_batch(
        self,
        credentials: Credentials,
        images: Annotated[list[UploadFile], File(description="JPEG or PNG images, in order.")],
        camera_id: CameraId = "api",
    ) -> dict[str, Any]:
        started = time.perf_counter()
        self._authorize(credentials)
        limit = self._settings.api.max_frames_per_request
        if len(images) > limit:
            self._observe("detect_batch", 413, started)
            raise http_exception(PayloadTooLarge(f"{len(images)} images in one request; the limit is {limit}"))
        frames = [await self._read_upload(upload) for upload in images]
        results = await self.process_frames([EncodedFrame(camera_id, data) for data in frames])
        out: list[dict[str, Any]] = []
        for i, result in enumerate(results):
            if isinstance(result, str):
                out.append({"index": i, "error": f"image '{images[i].filename}': {result}"})
            else:
                out.append({"index": i, **result.to_dict(await self._class_names(result.model_version))})
        errors = sum(1 for r in results if isinstance(r, str))
        status = 400 if errors == len(results) else 200
        self._observe("detect_batch", status, started)
        if status == 400:
            raise HTTPException(400, {"message": "no image in the request could be decoded", "results": out})
        return {"results": out, "errors": errors}

    @app.get("/v1/health", summary="Is the service up, which model answers, is Redis reachable")
    async def health(self) -> dict[str, Any]:
        self._publisher.start()
        redis_ok = await self._publisher.ping()
        try:  # bounded: with no replica to answer (its node lost), health must still answer, and say so
            info: ModelInfo = await asyncio.wait_for(self._champion.info.remote(), HEALTH_MODEL_TIMEOUT_S)
            model: dict[str, Any] = {
                "version": info.model_version,
                "backend": info.backend,
                "device": info.device,
                "precision": info.precision,
                "classes": info.class_names,
            }
        except TimeoutError:
            model = {"error": f"no Detector replica answered within {HEALTH_MODEL_TIMEOUT_S:g} s"}
        except Exception as exc:  # any replica failure is reported, not raised
            model = {"error": f"{type(exc).__name__}: {exc}"}
        components = self._component_states()
        missing = sorted(name for name, state in components.items() if state == "missing")
        degraded = not redis_ok or "error" in model or self._publisher.dropped > 0 or bool(missing)
        answer = {"status": "degraded" if degraded else "ok", "model": model, "redis": self._publisher.status()}
        answer["bus"] = self._settings.bus.kind  # where results go; under kafka, "redis" describes that bus
        return {**answer, "components": components, **({"missing": missing} if missing else {})}

    @app.get("/v1/models", summary="Registered model versions and which one serves")
    async def models(self) -> dict[str, Any]:
        info: ModelInfo = await self._champion.info.remote()
        return {
            "serving": {
                "champion": info.model_version,
                "backend": info.backend,
                "device": info.device,
                "precision": info.precision,
            },
            "pointers": self._registry.pointers(),
            "versions": [{**m.meta, "ab": self._registry.decision(m.version)} for m in self._registry.versions()],
        }

    async def _serving_version(self, wanted: str) -> str:
        """Wait until the champion replica answers with ``wanted`` (it follows the pointer within a poll or two,
        plus the model load); frames keep flowing on the old model meanwhile. Returns what it serves."""
        deadline = time.monotonic() + SWAP_WAIT_S
        while True:
            info: ModelInfo = await self._champion.info.remote()
            if info.model_version == wanted or time.monotonic() >= deadline:
                return info.model_version
            await asyncio.sleep(0.2)

    async def _pointer_action(self, action: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run a registry action off the event loop (file locks, fsync); client errors become 4xx."""
        try:
            result: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
                None, lambda: action(self._registry, event_log_for(self._settings), *args, **kwargs)
            )
        except Exception as exc:
            if not is_client_error(exc):
                raise
            raise http_exception(exc) from None
        if result.get("action") in ("promote", "rollback"):
            if self._settings.serving.model == "champion":
                result["serving"] = await self._serving_version(result["to"])
            else:  # a pinned model does not follow the pointer: say so rather than wait for a swap that never comes
                info: ModelInfo = await self._champion.info.remote()
                result["serving"] = info.model_version
                result["note"] = f"serving.model is pinned to '{self._settings.serving.model}': the pointer moved, "
                result["note"] += "the serving model did not"
        return result

    @app.post("/v1/models/promote", summary="Make the shadow (or a given version) the champion")
    async def promote_model(
        self, credentials: Credentials, request: Annotated[PromoteRequest | None, Body()] = None
    ) -> dict[str, Any]:
        who = self._authorize(credentials)
        request = request or PromoteRequest()
        return await self._pointer_action(promote, request.version, by=who, force=request.force)

    @app.post("/v1/models/rollback", summary="Return to the champion before the current one")
    async def rollback_model(self, credentials: Credentials) -> dict[str, Any]:
        who = self._authorize(credentials)
        return await self._pointer_action(rollback, by=who)

    @app.post("/v1/models/{version}/reject", summary="Reject a candidate or the shadow (a shadow stops running)")
    async def reject_model(
        self, credentials: Credentials, version: Annotated[str, Path(pattern=VERSION_PATTERN)]
    ) -> dict[str, Any]:
        who = self._authorize(credentials)
        return await self._pointer_action(reject, version, by=who)

    @app.get("/v1/models/history", summary="Pointer changes, the rollback stack, each version's last verdict")
    async def models_history(
        self, limit: Annotated[int, Query(ge=1, le=10_000, description="Most recent changes to list.")] = 50
    ) -> dict[str, Any]:
        return history(self._registry, limit)

    @app.get("/v1/shadow", summary="Shadow mode: mirror counters and the operational comparison with the champion")
    async def shadow_status(self) -> dict[str, Any]:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self._redis_url, socket_timeout=self._settings.redis.socket_timeout_s)
        stream = StreamNames(self._settings.redis.stream_prefix).shadow_pairs
        try:
            raw = await client.xrevrange(stream, count=PAIRS_SUMMARIZED) or []
            entries = [dict(fields) for _, fields in reversed(raw) if fields]
        finally:
            await client.aclose()
        return {
            "shadow": self._registry.pointers()["shadow"],
            "mirror": self._mirror.status() if self._mirror is not None else None,
            "comparison": summarize_pairs(entries),
        }

    # -- the learning loop (its worker actor does the work; this is its HTTP face) --------------------------------

    def _component(self, name: str) -> Any:
        """The actor behind an optional component: 409 if the settings switch it off, 503 naming it (and the
        setting) if it should run but does not (still starting, or it failed: `visionloop up`'s log says why)."""
        import ray

        actor_name, enabled, setting = self._components()[name]
        if not enabled:
            raise http_exception(ComponentDisabled(f"{name} is switched off ({setting} is false)"))
        try:
            return ray.get_actor(actor_name)
        except ValueError:
            message = f"{name} is not running although {setting} is true: it is still starting or it failed"
            raise http_exception(NotReadyError(message)) from None

    def _components(self) -> dict[str, tuple[str, bool, str]]:
        """Each optional component: its actor's name, whether the settings enable it, and that setting's key."""
        settings = self._settings
        return {
            "the learning loop": (LOOP_WORKER_ACTOR, settings.loop.enabled, "loop.enabled"),
            "labeling": (LABELING_WORKER_ACTOR, settings.labeling.enabled, "labeling.enabled"),
            "the camera manager": (CAMERA_MANAGER_ACTOR, True, "the service ('visionloop up')"),
        }

    def _component_states(self) -> dict[str, str]:
        """'ready', 'disabled' or 'missing' for each optional component (for /v1/health)."""
        import ray

        states: dict[str, str] = {}
        for name, (actor_name, enabled, _) in self._components().items():
            key = name.removeprefix("the ").replace(" ", "_")
            if not enabled:
                states[key] = "disabled"
                continue
            try:
                ray.get_actor(actor_name)
                states[key] = "ready"
            except ValueError:
                states[key] = "missing"
        return states

    def _loop_worker(self) -> Any:
        return self._component("the learning loop")

    @app.post("/v1/loop/run", summary="Run the learning loop now (train a challenger if labels allow, then the A/B)")
    async def loop_run(
        self,
        credentials: Credentials,
        wait: Annotated[bool, Query(description="Answer when the cycle is over (minutes while training).")] = False,
    ) -> dict[str, Any]:
        self._authorize(credentials)
        worker = self._loop_worker()
        try:
            if wait:
                return dict(await worker.run_once.remote("api"))
            return dict(await worker.request_run.remote())
        except Exception as exc:
            if not is_client_error(exc):
                raise
            raise http_exception(exc) from None

    @app.get("/v1/loop/status", summary="The learning loop: state, last job, last verdict, last error")
    async def loop_status(self) -> dict[str, Any]:
        if not self._settings.loop.enabled:
            return {"state": "disabled", "reason": "loop.enabled is false"}
        return dict(await self._loop_worker().status.remote())

    # -- cameras (the manager actor owns them; this is only their HTTP face) ---------------------------------------

    def _camera_manager(self) -> Any:
        return self._component("the camera manager")

    async def _ask_manager(self, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._camera_manager(), method).remote(*args)
        except Exception as exc:  # the manager's errors arrive wrapped by Ray; the mapping looks inside
            if not is_client_error(exc):
                raise
            raise http_exception(exc) from None

    @app.get("/v1/cameras", summary="Every camera with its state and counters")
    async def list_cameras(self) -> list[dict[str, Any]]:
        return list(await self._ask_manager("list"))

    @app.get("/v1/cameras/{camera_id}", summary="One camera's state and counters")
    async def camera_status(self, camera_id: Annotated[str, Path(pattern=CAMERA_ID_PATTERN)]) -> dict[str, Any]:
        return dict(await self._ask_manager("status", camera_id))

    @app.post("/v1/cameras", status_code=201, summary="Add a camera (RTSP/HTTP URL or file) and start it")
    async def add_camera(self, credentials: Credentials, spec: CameraSpec) -> dict[str, Any]:
        self._authorize(credentials)
        return dict(await self._ask_manager("add", spec.model_dump()))

    @app.delete("/v1/cameras/{camera_id}", summary="Stop and remove a camera")
    async def remove_camera(
        self, credentials: Credentials, camera_id: Annotated[str, Path(pattern=CAMERA_ID_PATTERN)]
    ) -> dict[str, Any]:
        self._authorize(credentials)
        return dict(await self._ask_manager("remove", camera_id))

    # -- labeling -------------------------------------------------------------------------------------------------

    @app.post(WEBHOOK_PATH, summary="Label Studio's webhook (annotation created/updated/deleted)")
    async def labeling_webhook(self, request: Request) -> dict[str, str]:
        if not TokenBook.webhook_secret_ok(request.headers.get(WEBHOOK_SECRET_HEADER)):
            raise http_exception(Unauthorized("missing or wrong webhook secret", scheme=None))
        body = await request.body()
        await self._on_redis(lambda client, streams: client.xadd(streams.labeling_webhooks, {"payload": body}))
        return {"status": "queued"}

    def _labeling_worker(self) -> Any:
        return self._component("labeling")

    @app.get("/v1/labeling/status", summary="The labeling queue: backlog, imported, labelled, dead-lettered")
    async def labeling_status(self) -> dict[str, Any]:
        if not self._settings.labeling.enabled:
            return {"state": "disabled", "reason": "labeling.enabled is false"}
        return dict(await self._labeling_worker().status.remote())

    @app.post("/v1/labeling/sync", summary="Run one labeling round now (import, webhooks, reconcile)")
    async def labeling_sync(
        self,
        credentials: Credentials,
        cut: Annotated[
            bool, Query(description="Cut a data set version of the labels so far, before labeling.cut_every.")
        ] = False,
    ) -> dict[str, Any]:
        self._authorize(credentials)
        worker = self._labeling_worker()
        try:
            return dict(await worker.sync_once.remote(True, cut))
        except NotReadyError as exc:  # still starting; any other failure of the worker is a 500
            raise http_exception(exc) from None

    # -- explanations (computed by the explanation worker; the API queues and reads) ----------------------------

    @app.post("/v1/explain", status_code=202, summary="Explain one detection of a kept frame (SHAP; queued)")
    async def request_explanation(self, credentials: Credentials, body: ExplainBody) -> dict[str, Any]:
        who = self._authorize(credentials)

        async def queue(client: Any, streams: StreamNames) -> dict[str, Any]:
            entry = await kept_frame(client, streams, body.camera_id, body.frame_id)
            return await queue_explanation(client, streams, request_for(entry, body.box_index, who))

        answer: dict[str, Any] = await self._on_redis(queue)
        return answer

    @app.get("/v1/explain", summary="The latest explanations asked for, and their states")
    async def list_explanations(self) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = await self._on_redis(recent_explanations)
        return answer

    @app.get("/v1/explain/{key}", summary="One explanation: its state, and when done the heatmap over the frame")
    async def get_explanation(self, key: Annotated[str, Path(max_length=300)]) -> dict[str, Any]:
        answer: dict[str, Any] = await self._on_redis(lambda client, streams: explanation(client, streams, key))
        return answer

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics of the serving stack")
    async def metrics(self) -> PlainTextResponse:
        import ray

        node_ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        url = f"http://{node_ip}:{self._settings.ray.metrics_export_port}/metrics"
        try:
            async with httpx.AsyncClient(timeout=5.0) as client:
                response = await client.get(url)
        except httpx.HTTPError as exc:
            raise http_exception(NotReadyError(f"Ray's metrics exporter at {url} did not answer: {exc}")) from exc
        return PlainTextResponse(response.text, media_type="text/plain; version=0.0.4")
