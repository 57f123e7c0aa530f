"""Explanations' HTTP face: the API queues a request and reads answers; the explanation worker computes them."""

# No `from __future__ import annotations` here: FastAPI must see real annotations on the handlers.
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from visionloop.core.cameras import CAMERA_ID_PATTERN
from visionloop.core.streams import StreamNames
from visionloop.serving.api.deps import Credentials, Replica, authorize, on_redis
from visionloop.serving.explanations import explanation, kept_frame, queue_explanation, recent_explanations, request_for

router = APIRouter()


class ExplainBody(BaseModel):
    """One detection of one kept frame (the dashboard's Explain page lists them)."""

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    frame_id: str = Field(min_length=1, max_length=200)
    box_index: int = Field(ge=0, lt=10_000)


@router.post("/v1/explain", status_code=202, summary="Explain one detection of a kept frame (SHAP; queued)")
async def request_explanation(replica: Replica, credentials: Credentials, body: ExplainBody) -> dict[str, Any]:
    who = authorize(credentials)

    async def queue(client: Any, streams: StreamNames) -> dict[str, Any]:
        entry = await kept_frame(client, streams, body.camera_id, body.frame_id)
        return await queue_explanation(client, streams, request_for(entry, body.box_index, who))

    return await on_redis(replica, queue)


@router.get("/v1/explain", summary="The latest explanations asked for, and their states")
async def list_explanations(replica: Replica) -> list[dict[str, Any]]:
    return await on_redis(replica, recent_explanations)


@router.get("/v1/explain/{key}", summary="One explanation: its state, and when done the heatmap over the frame")
async def get_explanation(replica: Replica, key: Annotated[str, Path(max_length=300)]) -> dict[str, Any]:
    return await on_redis(replica, lambda client, streams: explanation(client, streams, key))
