"""Labeling's HTTP face: Label Studio's webhook, the queue's status, a round on demand (the worker actor labels)."""

# No `from __future__ import annotations` here: FastAPI must see real annotations on the handlers.
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from visionloop.core.errors import NotReadyError
from visionloop.core.http_errors import Unauthorized
from visionloop.serving.api.components import LABELING, component
from visionloop.serving.api.deps import Credentials, Replica, authorize, on_redis
from visionloop.serving.auth import WEBHOOK_SECRET_HEADER, TokenBook
from visionloop.serving.http_errors import client_errors, http_exception

router = APIRouter()
WEBHOOK_PATH = "/v1/labeling/webhook"


@router.post(WEBHOOK_PATH, summary="Label Studio's webhook (annotation created/updated/deleted)")
async def labeling_webhook(replica: Replica, request: Request) -> dict[str, str]:
    if not TokenBook.webhook_secret_ok(request.headers.get(WEBHOOK_SECRET_HEADER)):
        raise http_exception(Unauthorized("missing or wrong webhook secret", scheme=None))
    body = await request.body()
    await on_redis(replica, lambda client, streams: client.xadd(streams.labeling_webhooks, {"payload": body}))
    return {"status": "queued"}


@router.get("/v1/labeling/status", summary="The labeling queue: backlog, imported, labelled, dead-lettered")
async def labeling_status(replica: Replica) -> dict[str, Any]:
    if not replica.settings.labeling.enabled:
        return {"state": "disabled", "reason": "labeling.enabled is false"}
    return dict(await component(replica.settings, LABELING).status.remote())


@router.post("/v1/labeling/sync", summary="Run one labeling round now (import, webhooks, reconcile)")
async def labeling_sync(
    replica: Replica,
    credentials: Credentials,
    cut: Annotated[
        bool, Query(description="Cut a data set version of the labels so far, before labeling.cut_every.")
    ] = False,
) -> dict[str, Any]:
    authorize(credentials)
    worker = component(replica.settings, LABELING)
    with client_errors(NotReadyError):  # still starting; an upstream's failure is mapped app-wide (502/503)
        return dict(await worker.sync_once.remote(True, cut))
