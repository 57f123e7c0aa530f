"""The area routers' handlers, served by the app a Router replica serves (no Ray): they find the replica the way
Serve's class-method routes find ``self`` (its replica context), map a client's error to its 4xx and let any
other error raise. The integration tests run the same handlers in a live Serve app."""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from ray import serve

from visionloop.core.config import load_settings
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.serving.router import Router

TOKEN = "router-api-token-1"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _client(tmp_path: Path, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    environ = {"VISIONLOOP_PATHS__VAR_DIR": str(tmp_path / "var"), "VISIONLOOP_API__TOKEN": TOKEN}
    settings = load_settings(environ={**environ, "VISIONLOOP_LOOP__ENABLED": "false"})
    cls = Router.func_or_class  # type: ignore[attr-defined]
    replicas = [cls.__new__(cls)]
    await replicas[0].__init__(settings, None, redis_url)  # as Serve's replica builds an ingress deployment
    transport = httpx.ASGITransport(app=replicas[0].app)  # the app @serve.ingress froze, routers included
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(serve, "get_replica_context", lambda: SimpleNamespace(servable_object=replicas[0]))
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
            yield client
    with warnings.catch_warnings():  # Serve never collects a replica (it ends the process): its async __del__
        warnings.filterwarnings("ignore", "coroutine .*__del__' was never awaited", RuntimeWarning)
        replicas.clear()
        gc.collect()


@pytest.fixture
async def api(tmp_path: Path, redis_server: EmbeddedRedis) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(tmp_path, redis_server.url):
        yield client


async def test_handlers_read_the_state_of_the_replica_they_run_in(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/loop/status")
    assert (response.status_code, response.json()) == (200, {"state": "disabled", "reason": "loop.enabled is false"})
    response = await api.get("/v1/shadow")  # its pairs come through the one Redis helper
    assert response.status_code == 200
    assert response.json()["shadow"] is None and response.json()["mirror"] is None


@pytest.mark.parametrize(
    ("method", "path", "status", "detail"),
    [
        ("post", "/v1/loop/run", 409, "the learning loop is switched off (loop.enabled is false)"),
        ("post", "/v1/models/rollback", 409, "nothing to roll back to"),
        ("post", "/v1/models/v9/reject", 404, "v9"),
        ("get", "/v1/explain/nope", 404, "no explanation 'nope'"),
    ],
)
async def test_a_clients_error_is_its_4xx(
    api: httpx.AsyncClient, method: str, path: str, status: int, detail: str
) -> None:
    response = await api.request(method, path, headers=AUTH)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


async def test_a_stranger_is_refused_before_any_handler(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/models/rollback")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


async def test_redis_away_is_a_503_with_its_reason(tmp_path: Path) -> None:
    """Redis away is an upstream's outage, not a server fault: 503 with Redis's own reason, never a 500 (a bug in
    a route still raises: tests/unit/test_router_http_errors.py)."""
    async for client in _client(tmp_path, "redis://127.0.0.1:9"):
        response = await client.get("/v1/explain")
        assert response.status_code == 503, response.text
        assert "127.0.0.1:9" in response.json()["detail"] and "Traceback" not in response.text
