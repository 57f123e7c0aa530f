"""The API's side of explanations: find the kept frame, queue the request, read the answer.

The work itself (SHAP over hundreds of masked images) runs in the explanation worker, never in the Router.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import redis.asyncio as aioredis

from visionloop.core.explanations import ExplainRequest, ExplanationNotFound, ExplanationState
from visionloop.core.streams import StreamNames

REQUESTS_MAXLEN = 1000  # requests waiting for the worker; a flood of clicks cannot grow Redis without bound
REQUEUE_AFTER_S = 300.0  # a request still queued this long was lost (worker restarted, stream trimmed): ask again


async def kept_frame(client: aioredis.Redis, streams: StreamNames, camera_id: str, frame_id: str) -> dict[str, Any]:
    """The snapshot of ``frame_id`` among the camera's kept frames."""
    for raw in await client.lrange(streams.snapshots(camera_id), 0, -1):  # type: ignore[misc]
        entry: dict[str, Any] = json.loads(raw)
        if entry.get("frame_id") == frame_id:
            return entry
    raise ExplanationNotFound(f"frame '{frame_id}' of camera '{camera_id}' is not among its kept frames")


def request_for(entry: dict[str, Any], box_index: int, requested_by: str) -> ExplainRequest:
    boxes = entry.get("result", {}).get("detections", {}).get("boxes", [])
    if not 0 <= box_index < len(boxes):
        raise ExplanationNotFound(f"frame '{entry.get('frame_id')}' has {len(boxes)} detections; no box {box_index}")
    box = boxes[box_index]
    x1, y1, x2, y2 = (float(v) for v in box["xyxy"])
    return ExplainRequest(
        model_version=str(entry["model_version"]),
        frame_id=str(entry["frame_id"]),
        box_index=box_index,
        box=(x1, y1, x2, y2),
        class_id=int(box["class_id"]),
        image=base64.b64decode(entry["jpeg_b64"]),
        requested_by=requested_by,
    )


async def queue_explanation(client: aioredis.Redis, streams: StreamNames, request: ExplainRequest) -> dict[str, Any]:
    """The cached answer when there is one; else the request is queued (once) and its state returned."""
    known = await client.hget(streams.explanations, request.key)  # type: ignore[misc]
    if known is not None:
        current: dict[str, Any] = json.loads(known)
        stale = current.get("state") == ExplanationState.QUEUED and (
            time.time() - float(current.get("requested_at", 0.0)) > REQUEUE_AFTER_S
        )
        if current.get("state") != ExplanationState.ERROR and not stale:
            return current
    state = {
        "key": request.key,
        "state": ExplanationState.QUEUED.value,
        "model_version": request.model_version,
        "frame_id": request.frame_id,
        "box_index": request.box_index,
        "box": list(request.box),
        "class_id": request.class_id,
        "requested_at": time.time(),
    }
    pipe = client.pipeline(transaction=False)
    pipe.hset(streams.explanations, request.key, json.dumps(state))
    pipe.lpush(streams.explain_order, request.key)
    pipe.xadd(streams.explain_requests, request.to_fields(), maxlen=REQUESTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
    await pipe.execute()
    return state


async def explanation(client: aioredis.Redis, streams: StreamNames, key: str) -> dict[str, Any]:
    raw = await client.hget(streams.explanations, key)  # type: ignore[misc]
    if raw is None:
        raise ExplanationNotFound(f"no explanation '{key}' (never asked for, or dropped from the cache)")
    answer: dict[str, Any] = json.loads(raw)
    return answer


async def recent_explanations(client: aioredis.Redis, streams: StreamNames, count: int = 50) -> list[dict[str, Any]]:
    """The latest explanations' states, without their images (the list the dashboard offers)."""
    raw_keys: list[bytes] = await client.lrange(streams.explain_order, 0, count - 1)  # type: ignore[misc,assignment]
    keys = [k.decode() for k in raw_keys]
    seen: list[str] = list(dict.fromkeys(keys))
    if not seen:
        return []
    values = await client.hmget(streams.explanations, seen)  # type: ignore[misc]
    out = []
    for raw in values:
        if raw is None:
            continue
        entry = json.loads(raw)
        entry.pop("overlay_png_b64", None)
        out.append(entry)
    return out
