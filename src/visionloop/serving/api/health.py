"""Is the service well: /v1/health for people and probes, /metrics for Prometheus."""

# No `from __future__ import annotations` here: FastAPI must see real annotations on the handlers.
import asyncio
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from visionloop.core.errors import NotReadyError
from visionloop.serving.api.components import component_states
from visionloop.serving.api.deps import Replica, ReplicaState
from visionloop.serving.detector import ModelInfo
from visionloop.serving.http_errors import http_exception

router = APIRouter()
HEALTH_MODEL_TIMEOUT_S = 5.0  # /v1/health waits no longer for the champion to say which model it serves


async def _model(replica: ReplicaState) -> dict[str, Any]:
    """The model the champion serves, or why no replica said (bounded: with its node lost, health still answers)."""
    try:
        info: ModelInfo = await asyncio.wait_for(replica.champion.info.remote(), HEALTH_MODEL_TIMEOUT_S)
    except TimeoutError:
        return {"error": f"no Detector replica answered within {HEALTH_MODEL_TIMEOUT_S:g} s"}
    except Exception as exc:  # any replica failure is reported, not raised
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "version": info.model_version,
        "backend": info.backend,
        "device": info.device,
        "precision": info.precision,
        "classes": info.class_names,
    }


@router.get("/v1/health", summary="Is the service up, which model answers, is Redis reachable")
async def health(replica: Replica) -> dict[str, Any]:
    publisher = replica.publisher
    publisher.start()
    redis_ok = await publisher.ping()
    model = await _model(replica)
    components = component_states(replica.settings)
    missing = sorted(name for name, state in components.items() if state == "missing")
    degraded = not redis_ok or "error" in model or publisher.dropped > 0 or bool(missing)
    answer = {"status": "degraded" if degraded else "ok", "model": model, "redis": publisher.status()}
    answer["bus"] = replica.settings.bus.kind  # where results go; under kafka, "redis" describes that bus
    return {**answer, "components": components, **({"missing": missing} if missing else {})}


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics of the serving stack")
async def metrics(replica: Replica) -> PlainTextResponse:
    import ray

    node_ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    url = f"http://{node_ip}:{replica.settings.ray.metrics_export_port}/metrics"
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        raise http_exception(NotReadyError(f"Ray's metrics exporter at {url} did not answer: {exc}")) from exc
    return PlainTextResponse(response.text, media_type="text/plain; version=0.0.4")
