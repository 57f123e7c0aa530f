"""The HTTP API's contract (its OpenAPI document) is the one saved in tests/data/openapi.json, from the time all
handlers were methods of the Router class: clients, the dashboard and the docs page rely on every path, method,
status, parameter and schema. Nothing differs from it today; a change to the API updates that file on purpose."""

from __future__ import annotations

import asyncio
import gc
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from visionloop.core.config import load_settings
from visionloop.serving.auth import TokenBook
from visionloop.serving.limits import UploadLimit
from visionloop.serving.router import Router

SAVED: dict[str, Any] = json.loads((Path(__file__).parents[1] / "data" / "openapi.json").read_text())
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (path, method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


async def _replica(var_dir: Path) -> Any:
    """A Router replica built as Serve's replica builds an ingress deployment (ray/serve/_private/replica.py)."""
    settings = load_settings(environ={"VISIONLOOP_PATHS__VAR_DIR": str(var_dir)})
    cls = Router.func_or_class  # type: ignore[attr-defined]
    replica = cls.__new__(cls)
    await replica.__init__(settings, None, "redis://127.0.0.1:9")  # nothing here talks to the champion or Redis
    return replica


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The document of the app a replica serves: the copy @serve.ingress froze when serving.router was imported
    (so a router included after that would be missing here, as it would be in production)."""
    saved_book = (dict(TokenBook.tokens), TokenBook.webhook_secret, TokenBook.webhook_paths)
    saved_limit = UploadLimit.max_bytes
    replica = asyncio.run(_replica(tmp_path_factory.mktemp("var")))
    yield replica.app.openapi()
    TokenBook.configure(*saved_book)
    UploadLimit.set(saved_limit)
    with warnings.catch_warnings():  # Serve never collects a replica (it ends the process): its async __del__
        warnings.filterwarnings("ignore", "coroutine .*__del__' was never awaited", RuntimeWarning)
        del replica
        gc.collect()


def test_every_path_and_method_is_still_served(served: dict[str, Any]) -> None:
    now, saved = set(_operations(served)), set(_operations(SAVED))
    assert now == saved, {"missing": sorted(saved - now), "added": sorted(now - saved)}


def _parameters(operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (p["in"], p["name"]): {"required": p.get("required", False), "schema": p.get("schema")}
        for p in operation.get("parameters", [])
    }


@pytest.mark.parametrize("key", sorted(_operations(SAVED)), ids=lambda key: f"{key[1].upper()} {key[0]}")
def test_each_operation_keeps_its_contract(served: dict[str, Any], key: tuple[str, str]) -> None:
    now, saved = _operations(served).get(key), _operations(SAVED)[key]
    assert now is not None, f"{key} is no longer served"
    assert now["operationId"] == saved["operationId"]  # generated from the handler's name: clients call by it
    assert sorted(now["responses"]) == sorted(saved["responses"])
    assert _parameters(now) == _parameters(saved)
    assert now.get("requestBody") == saved.get("requestBody")
    assert now.get("security") == saved.get("security")  # which operations ask for the bearer token


def test_component_schemas_are_unchanged(served: dict[str, Any]) -> None:
    now, saved = served["components"], SAVED["components"]
    assert sorted(now["schemas"]) == sorted(saved["schemas"])
    for name, schema in saved["schemas"].items():
        assert now["schemas"][name] == schema, name
    assert now.get("securitySchemes") == saved.get("securitySchemes")
