"""The authentication in front of the Router: who may mutate, decided from headers alone, in constant time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import visionloop.serving.auth as auth
from visionloop.serving.auth import AuthMiddleware, TokenBook, refusal

TOKENS = {"operator": "operator-token-1", "ci": "ci-token-22222"}


@pytest.fixture(autouse=True)
def tokens() -> Iterator[None]:
    TokenBook.configure(TOKENS, "hook-secret-333", frozenset({"/v1/labeling/webhook"}))
    yield
    TokenBook.configure({}, "", frozenset())


def scope(method: str, path: str = "/v1/detect", kind: str = "http", **headers: str) -> dict[str, Any]:
    return {
        "type": kind,
        "method": method,
        "path": path,
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def test_names_come_from_the_token() -> None:
    assert TokenBook.name_of("Bearer operator-token-1") == "operator"
    assert TokenBook.name_of("bearer ci-token-22222") == "ci"
    for header in (None, "", "Bearer", "Bearer ", "Basic operator-token-1", "Bearer operator-token-", "operator"):
        assert TokenBook.name_of(header) is None, header


def test_every_token_is_compared_in_constant_time_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[bytes] = []
    real = auth.secrets.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(auth.secrets, "compare_digest", spy)
    assert TokenBook.name_of("Bearer operator-token-1") == "operator"
    assert sorted(compared) == sorted(t.encode() for t in TOKENS.values())  # no early exit on the first match


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "post"])
def test_a_mutating_request_needs_a_known_token(method: str) -> None:
    assert refusal(scope(method)) is not None
    assert refusal(scope(method, authorization="Bearer nope-nope-nope")) is not None
    assert refusal(scope(method, authorization="Bearer ci-token-22222")) is None


def test_reads_pass_and_websockets_are_left_to_their_handshake() -> None:
    assert refusal(scope("GET")) is None and refusal(scope("HEAD")) is None
    assert refusal(scope("GET", "/v1/stream", kind="websocket")) is None


def test_the_webhook_takes_its_secret_not_a_token() -> None:
    path = "/v1/labeling/webhook"
    assert refusal(scope("POST", path, authorization="Bearer operator-token-1")) is not None
    assert refusal(scope("POST", path, x_visionloop_secret="wrong")) is not None
    assert refusal(scope("POST", path, x_visionloop_secret="hook-secret-333")) is None
    TokenBook.configure(TOKENS, "", frozenset({path}))  # no secret configured: nothing gets in
    assert refusal(scope("POST", path, x_visionloop_secret="")) is not None


def test_the_middleware_answers_401_without_reading_the_body() -> None:
    sent: list[dict[str, Any]] = []
    reached: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(AuthMiddleware(app)(scope("POST"), receive, send))
    assert not reached and sent[0]["status"] == 401
    assert (b"www-authenticate", b"Bearer") in sent[0]["headers"]
    assert b"token" in sent[1]["body"]
    asyncio.run(AuthMiddleware(app)(scope("POST", authorization="Bearer operator-token-1"), receive, send))
    assert reached == [True]
