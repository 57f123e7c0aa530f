"""The shared error mapping (visionloop.http_errors) in FastAPI's terms: one place turns an error into HTTPException."""

from __future__ import annotations

from fastapi import HTTPException

from visionloop.http_errors import http_error


def http_exception(exc: BaseException) -> HTTPException:
    """``exc`` as the HTTPException FastAPI answers ``{"detail": message}`` with (status and headers mapped)."""
    error = http_error(exc)
    return HTTPException(error.status, error.message, headers=dict(error.headers) or None)
