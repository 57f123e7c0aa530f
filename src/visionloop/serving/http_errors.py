"""The shared error mapping (visionloop.http_errors) in FastAPI's terms: one place turns an error into HTTPException."""

from __future__ import annotations

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from visionloop.core.http_errors import http_error
from visionloop.core.redaction import redact


def http_exception(exc: BaseException) -> HTTPException:
    """``exc`` as the HTTPException FastAPI answers ``{"detail": message}`` with (status and headers mapped)."""
    error = http_error(exc)
    return HTTPException(error.status, error.message, headers=dict(error.headers) or None)


def validation_error_response(_: Request, exc: Exception) -> JSONResponse:
    """422 naming each invalid field and why, without echoing the value sent: FastAPI's default answer repeats
    the input, which for a camera is its URL and the password in it."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {"loc": list(e.get("loc", ())), "msg": redact(str(e.get("msg", ""))), "type": e.get("type")} for e in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)
