"""The model registry's HTTP face: versions, promotion, rejection, rollback, history, and the shadow beside them."""

# No `from __future__ import annotations` here: FastAPI must see real annotations on the handlers.
import asyncio
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, Field

from visionloop.core.model_setup import event_log_for
from visionloop.core.promotion import history, promote, reject, rollback
from visionloop.core.streams import StreamNames
from visionloop.serving.api.deps import Credentials, Replica, ReplicaState, authorize, on_redis
from visionloop.serving.detector import ModelInfo
from visionloop.serving.http_errors import client_errors
from visionloop.serving.shadow import summarize_pairs

router = APIRouter()
VERSION_PATTERN = r"^v[0-9]+$"
SWAP_WAIT_S = 30.0  # a promotion answers once the champion replica serves the new version (or after this)
PAIRS_SUMMARIZED = 2000  # the latest shadow pairs the operational comparison reads


class PromoteRequest(BaseModel):
    version: str | None = Field(
        default=None, pattern=VERSION_PATTERN, description="Version to promote (default: the shadow)."
    )
    force: bool = Field(default=False, description="Promote without a PROMOTE verdict from the A/B (audited).")


@router.get("/v1/models", summary="Registered model versions and which one serves")
async def models(replica: Replica) -> dict[str, Any]:
    info: ModelInfo = await replica.champion.info.remote()
    registry = replica.registry
    return {
        "serving": {
            "champion": info.model_version,
            "backend": info.backend,
            "device": info.device,
            "precision": info.precision,
        },
        "pointers": registry.pointers(),
        "versions": [{**m.meta, "ab": registry.decision(m.version)} for m in registry.versions()],
    }


async def _serving_version(replica: ReplicaState, wanted: str) -> str:
    """Wait until the champion replica answers with ``wanted`` (it follows the pointer within a poll or two,
    plus the model load); frames keep flowing on the old model meanwhile. Returns what it serves."""
    deadline = time.monotonic() + SWAP_WAIT_S
    while True:
        info: ModelInfo = await replica.champion.info.remote()
        if info.model_version == wanted or time.monotonic() >= deadline:
            return info.model_version
        await asyncio.sleep(0.2)


async def _pointer_action(
    replica: ReplicaState, action: Callable[..., dict[str, Any]], *args: Any, **kwargs: Any
) -> dict[str, Any]:
    """Run a registry action off the event loop (file locks, fsync); client errors become 4xx."""
    settings = replica.settings
    with client_errors():
        result: dict[str, Any] = await asyncio.get_running_loop().run_in_executor(
            None, lambda: action(replica.registry, event_log_for(settings), *args, **kwargs)
        )
    if result.get("action") in ("promote", "rollback"):
        if settings.serving.model == "champion":
            result["serving"] = await _serving_version(replica, result["to"])
        else:  # a pinned model does not follow the pointer: say so rather than wait for a swap that never comes
            info: ModelInfo = await replica.champion.info.remote()
            result["serving"] = info.model_version
            result["note"] = f"serving.model is pinned to '{settings.serving.model}': the pointer moved, "
            result["note"] += "the serving model did not"
    return result


@router.post("/v1/models/promote", summary="Make the shadow (or a given version) the champion")
async def promote_model(
    replica: Replica, credentials: Credentials, request: Annotated[PromoteRequest | None, Body()] = None
) -> dict[str, Any]:
    who = authorize(credentials)
    request = request or PromoteRequest()
    return await _pointer_action(replica, promote, request.version, by=who, force=request.force)


@router.post("/v1/models/rollback", summary="Return to the champion before the current one")
async def rollback_model(replica: Replica, credentials: Credentials) -> dict[str, Any]:
    who = authorize(credentials)
    return await _pointer_action(replica, rollback, by=who)


@router.post("/v1/models/{version}/reject", summary="Reject a candidate or the shadow (a shadow stops running)")
async def reject_model(
    replica: Replica, credentials: Credentials, version: Annotated[str, Path(pattern=VERSION_PATTERN)]
) -> dict[str, Any]:
    who = authorize(credentials)
    return await _pointer_action(replica, reject, version, by=who)


@router.get("/v1/models/history", summary="Pointer changes, the rollback stack, each version's last verdict")
async def models_history(
    replica: Replica,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Most recent changes to list.")] = 50,
) -> dict[str, Any]:
    return history(replica.registry, limit)


@router.get("/v1/shadow", summary="Shadow mode: mirror counters and the operational comparison with the champion")
async def shadow_status(replica: Replica) -> dict[str, Any]:
    async def latest_pairs(client: Any, streams: StreamNames) -> list[dict[Any, Any]]:
        raw = await client.xrevrange(streams.shadow_pairs, count=PAIRS_SUMMARIZED) or []
        return [dict(fields) for _, fields in reversed(raw) if fields]

    entries = await on_redis(replica, latest_pairs)
    return {
        "shadow": replica.registry.pointers()["shadow"],
        "mirror": replica.mirror.status() if replica.mirror is not None else None,
        "comparison": summarize_pairs(entries),
    }
