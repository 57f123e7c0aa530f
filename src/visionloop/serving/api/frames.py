"""Frames in, detections out: one image, a batch of images, or a WebSocket stream of them."""

# No `from __future__ import annotations` here: FastAPI must see real annotations on the handlers.
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Query, UploadFile, WebSocket
from fastapi.security import HTTPAuthorizationCredentials

from visionloop.core.cameras import CAMERA_ID_PATTERN
from visionloop.core.contracts import EncodedFrame
from visionloop.core.frame_errors import FrameError
from visionloop.core.http_errors import PayloadTooLarge, http_error
from visionloop.serving.api.deps import Credentials, Replica, authorize
from visionloop.serving.http_errors import http_exception
from visionloop.serving.metrics import RouterMetrics
from visionloop.serving.stream_session import StreamLimits, StreamSession

router = APIRouter()
CameraId = Annotated[str, Query(pattern=CAMERA_ID_PATTERN, description="Camera the results are filed under.")]


def _observe(metrics: RouterMetrics, endpoint: str, status: int, started: float) -> None:
    metrics.requests.inc(tags={"endpoint": endpoint, "status": str(status)})
    metrics.request_latency.observe((time.perf_counter() - started) * 1e3, tags={"endpoint": endpoint})


async def _read_upload(upload: UploadFile) -> bytes:
    data = await upload.read()
    return bytes(data)


@router.post("/v1/detect", summary="Detect objects in one JPEG or PNG image")
async def detect(
    replica: Replica,
    credentials: Credentials,
    image: Annotated[UploadFile, File(description="A JPEG or PNG image.")],
    camera_id: CameraId = "api",
) -> dict[str, Any]:
    started = time.perf_counter()
    authorize(credentials)
    data = await _read_upload(image)
    (result,) = await replica.process_frames([EncodedFrame(camera_id, data)])
    if isinstance(result, str):
        refused = FrameError.read(result).exception(image.filename or "upload")
        replica.metrics.errors.inc(tags={"kind": "invalid_image"})
        _observe(replica.metrics, "detect", http_error(refused).status, started)
        raise http_exception(refused)
    _observe(replica.metrics, "detect", 200, started)
    return result.to_dict(await replica.class_names_for(result.model_version))


@router.websocket("/v1/stream")
async def stream(replica: Replica, websocket: WebSocket, camera_id: CameraId = "stream") -> None:
    """Frames as binary WebSocket messages (JPEG or PNG), answers as JSON text messages, one per frame in order
    (``index`` counts the frames of the connection). The bearer token goes in the handshake's Authorization
    header; without it the handshake is refused before any frame is read."""
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    try:
        authorize(HTTPAuthorizationCredentials(scheme=scheme, credentials=token) if token else None)
    except HTTPException:
        replica.metrics.requests.inc(tags={"endpoint": "stream", "status": "401"})
        await websocket.close(code=1008, reason="missing or wrong bearer token (Authorization: Bearer <token>)")
        return
    await websocket.accept()
    settings = replica.settings
    limits = StreamLimits(settings.api.max_upload_bytes, settings.api.stream_window, settings.serving.max_batch_size)
    session = StreamSession(
        camera_id, websocket.receive, websocket.send_json, replica.process_frames, replica.class_names_for, limits
    )
    try:
        await session.run()
    finally:
        replica.metrics.requests.inc(session.answered, tags={"endpoint": "stream", "status": "200"})
        replica.metrics.requests.inc(session.errors, tags={"endpoint": "stream", "status": "400"})


@router.post("/v1/detect/batch", summary="Detect objects in several images at once (cheaper per frame)")
async def detect_batch(
    replica: Replica,
    credentials: Credentials,
    images: Annotated[list[UploadFile], File(description="JPEG or PNG images, in order.")],
    camera_id: CameraId = "api",
) -> dict[str, Any]:
    started = time.perf_counter()
    authorize(credentials)
    limit = replica.settings.api.max_frames_per_request
    if len(images) > limit:
        _observe(replica.metrics, "detect_batch", 413, started)
        raise http_exception(PayloadTooLarge(f"{len(images)} images in one request; the limit is {limit}"))
    frames = [await _read_upload(upload) for upload in images]
    results = await replica.process_frames([EncodedFrame(camera_id, data) for data in frames])
    out: list[dict[str, Any]] = []
    statuses = []
    for i, result in enumerate(results):
        if isinstance(result, str):
            refused = FrameError.read(result).exception(images[i].filename or f"upload {i}")
            statuses.append(http_error(refused).status)
            out.append({"index": i, "error": str(refused), "status": statuses[-1]})
        else:
            out.append({"index": i, **result.to_dict(await replica.class_names_for(result.model_version))})
    # Every image refused: the request fails, with 413 when every one was too large, else 400.
    status = (413 if set(statuses) == {413} else 400) if len(statuses) == len(results) else 200
    _observe(replica.metrics, "detect_batch", status, started)
    if status != 200:
        raise HTTPException(status, {"message": "no image in the request could be decoded", "results": out})
    return {"results": out, "errors": len(statuses)}
