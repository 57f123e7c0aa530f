"""The learning loop's HTTP face (its worker actor does the work)."""

# No `from __future__ import annotations` here: FastAPI must see real annotations on the handlers.
from typing import Annotated, Any

from fastapi import APIRouter, Query

from visionloop.serving.api.components import LEARNING_LOOP, component
from visionloop.serving.api.deps import Credentials, Replica, authorize
from visionloop.serving.http_errors import client_errors

router = APIRouter()


@router.post("/v1/loop/run", summary="Run the learning loop now (train a challenger if labels allow, then the A/B)")
async def loop_run(
    replica: Replica,
    credentials: Credentials,
    wait: Annotated[bool, Query(description="Answer when the cycle is over (minutes while training).")] = False,
) -> dict[str, Any]:
    authorize(credentials)
    worker = component(replica.settings, LEARNING_LOOP)
    with client_errors():
        if wait:
            return dict(await worker.run_once.remote("api"))
        return dict(await worker.request_run.remote())


@router.get("/v1/loop/status", summary="The learning loop: state, last job, last verdict, last error")
async def loop_status(replica: Replica) -> dict[str, Any]:
    if not replica.settings.loop.enabled:
        return {"state": "disabled", "reason": "loop.enabled is false"}
    return dict(await component(replica.settings, LEARNING_LOOP).status.remote())
