"""Authentication before anything else: a mutating request without a known token is refused before its body is read.

FastAPI parses and validates a body before a handler (or its dependencies' results) can refuse it, so a check in
the handler lets an anonymous client read the schema from 422s and makes the server read a whole multipart upload
first. This ASGI middleware runs in front of routing and body parsing instead. Handlers still resolve the token to
its name (for the audit log) through :meth:`TokenBook.name_of`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import ClassVar

from starlette.types import ASGIApp, Receive, Scope, Send

from visionloop.core.http_errors import Unauthorized
from visionloop.serving.http_errors import send_error

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WEBHOOK_SECRET_HEADER = "X-Visionloop-Secret"  # noqa: S105 (a header name, not a secret)


class TokenBook:
    """The replica's tokens (name -> token) and the Label Studio webhook secret.

    Ray Serve freezes a copy of the FastAPI app when the module is imported, so they cannot live on the app; the
    Router fills this when it starts in its replica (as it does the upload limit).
    """

    tokens: ClassVar[dict[str, str]] = {}
    webhook_secret: ClassVar[str] = ""
    webhook_paths: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def configure(cls, tokens: Mapping[str, str], webhook_secret: str, webhook_paths: frozenset[str]) -> None:
        cls.tokens = dict(tokens)
        cls.webhook_secret = webhook_secret
        cls.webhook_paths = webhook_paths

    @classmethod
    def name_of(cls, authorization: str | None) -> str | None:
        """The name of the token an ``Authorization: Bearer <token>`` header carries, or None.

        Every token is compared in constant time and none is skipped, so timing tells neither the token nor which
        names exist.
        """
        scheme, _, given = (authorization or "").partition(" ")
        given_bytes = given.strip().encode()
        matches = [name for name, token in cls.tokens.items() if secrets.compare_digest(given_bytes, token.encode())]
        if scheme.lower() != "bearer" or not given_bytes or not matches:
            return None
        return matches[0]

    @classmethod
    def webhook_secret_ok(cls, given: str | None) -> bool:
        expected = cls.webhook_secret.encode()
        return bool(expected) and secrets.compare_digest((given or "").encode(), expected)


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.lower().encode()
    for key, value in scope.get("headers") or []:
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def refusal(scope: Scope) -> Unauthorized | None:
    """Why this request may not go on (None: it may). Reads only the method, the path and headers."""
    if scope["type"] != "http" or scope.get("method", "GET").upper() not in MUTATING_METHODS:
        return None
    path = str(scope.get("path", ""))
    if path in TokenBook.webhook_paths:
        if TokenBook.webhook_secret_ok(_header(scope, WEBHOOK_SECRET_HEADER)):
            return None
        return Unauthorized(f"missing or wrong webhook secret ({WEBHOOK_SECRET_HEADER} header)", scheme=None)
    if TokenBook.name_of(_header(scope, "authorization")) is None:
        return Unauthorized("missing or wrong bearer token (Authorization: Bearer <api.token>)")
    return None


class AuthMiddleware:
    """401 for a mutating request without a known bearer token (or webhook secret), before its body is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = refusal(scope)
        if error is not None:
            await send_error(send, error)
            return
        await self.app(scope, receive, send)
