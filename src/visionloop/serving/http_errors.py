"""The shared error mapping (core.http_errors) in the serving side's terms: an HTTPException for FastAPI handlers,
a plain ASGI answer for the middlewares that refuse a request before FastAPI sees it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import Send

from visionloop.core.http_errors import http_error, is_client_error
from visionloop.core.redaction import redact

log = logging.getLogger(__name__)


def http_exception(exc: BaseException) -> HTTPException:
    """``exc`` as the HTTPException FastAPI answers ``{"detail": message}`` with (status and headers mapped)."""
    error = http_error(exc)
    return HTTPException(error.status, error.message, headers=dict(error.headers) or None)


@contextmanager
def client_errors(*only: type[BaseException]) -> Iterator[None]:
    """A client's error raised inside becomes its 4xx (502/503 for an upstream's); any other error raises
    unchanged, traceback and all, to be the 500 it is. ``only`` narrows which errors count as the client's
    (default: all the mapping knows)."""
    try:
        yield
    except Exception as exc:
        if not is_client_error(exc) or (only and not isinstance(exc, only)):
            raise
        raise http_exception(exc) from None


async def send_error(send: Send, exc: BaseException) -> None:
    """Answer ``exc`` straight on the ASGI channel with the body and headers FastAPI would give it."""
    error = http_error(exc)
    body = json.dumps({"detail": error.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def validation_error_response(_: Request, exc: Exception) -> JSONResponse:
    """422 naming each invalid field and why, without echoing the value sent: FastAPI's default answer repeats
    the input, which for a camera is its URL and the password in it."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": list(e.get("loc", ())), "msg": redact(str(e.get("msg", ""))), "type": e.get("type")} for e in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def mapped_error_response(request: Request, exc: Exception) -> JSONResponse:
    """The app-wide answer for an error that escaped a route but has a status of its own: an upstream's outage
    (Label Studio, Redis, a Ray worker gone) is a 502/503 with its reason, never a 500. Anything else is raised
    again, to be the 500 (with its traceback in the log) that it is."""
    if not is_client_error(exc):
        raise exc
    error = http_error(exc)
    if error.status >= 500:
        log.warning("%s %s answered %d: %s", request.method, request.url.path, error.status, error.message)
    return JSONResponse({"detail": error.message}, status_code=error.status, headers=dict(error.headers) or None)
