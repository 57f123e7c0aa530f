"""The one mapping from an error to the HTTP answer a client gets: a status and a clean ``detail`` message.

The FastAPI Router (serving) and the aiohttp WebRTC gateway (streaming) may not import each other, so the rule
lives here in the spine, free of any web framework: a missing camera is a 404 with the same text on both.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis.exceptions
from pydantic import ValidationError

from visionloop.core.cameras import CameraExists, CameraLimitReached, CameraNotFound, CameraUrlRefused
from visionloop.core.errors import (
    ComponentDisabled,
    ImageTooLarge,
    InvalidImageError,
    NotReadyError,
    RegistryError,
    UpstreamRefused,
    UpstreamUnavailable,
    VisionloopError,
)
from visionloop.core.explanations import ExplanationNotFound
from visionloop.core.promotion import PromotionRefused
from visionloop.core.redaction import redact


class BadRequest(VisionloopError):
    """The request itself is malformed (not JSON, a missing form field, an SDP offer that does not parse)."""


class Unauthorized(VisionloopError):
    """Missing or wrong credentials; ``scheme`` is the challenge a client is told to answer (None: no challenge)."""

    def __init__(self, message: str = "missing or wrong bearer token", scheme: str | None = "Bearer") -> None:
        super().__init__(message)
        self.scheme = scheme


class PayloadTooLarge(VisionloopError):
    """The request is over a configured size limit (bytes or frames)."""

    @classmethod
    def body(cls, limit: int) -> PayloadTooLarge:
        """The one wording of the byte limit, whichever server refuses the body."""
        return cls(f"request body larger than the {limit}-byte limit (api.max_upload_bytes)")


class TooManyRequests(VisionloopError):
    """A capacity limit is reached (e.g. WebRTC peers); the client may retry later."""


# Looked up along the MRO of the error Ray carries (if any), then of the error itself.
STATUS: dict[type[BaseException], int] = {
    BadRequest: 400,
    InvalidImageError: 400,
    Unauthorized: 401,
    CameraNotFound: 404,
    ExplanationNotFound: 404,
    CameraExists: 409,
    CameraLimitReached: 409,
    ComponentDisabled: 409,
    PromotionRefused: 409,
    RegistryError: 404,
    PayloadTooLarge: 413,
    ImageTooLarge: 413,
    ValidationError: 422,
    CameraUrlRefused: 422,
    TooManyRequests: 429,
    UpstreamRefused: 502,
    redis.exceptions.RedisError: 502,  # Redis answered with an error (out of memory, a wrong type...)
    NotReadyError: 503,
    UpstreamUnavailable: 503,
    redis.exceptions.ConnectionError: 503,
    redis.exceptions.TimeoutError: 503,
}
# Ray's errors for a worker that is gone or did not answer in time (looked up only where Ray is imported).
RAY_UNAVAILABLE = ("RayActorError", "GetTimeoutError", "ActorHandleNotFoundError")
INTERNAL_ERROR = 500


@dataclass(frozen=True)
class HttpError:
    """What to answer: status, the ``detail`` text and any headers (the auth challenge of a 401)."""

    status: int
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


def _ray_error_types() -> tuple[type[BaseException], type[BaseException]] | None:
    """Ray's (RayError, RayTaskError), or None where Ray was never imported (then no error can be Ray's)."""
    module = sys.modules.get("ray.exceptions")
    if module is None:
        return None
    return module.RayError, module.RayTaskError


def _unwrap(exc: BaseException) -> tuple[BaseException, bool]:
    """The innermost user error behind Ray's wrappers, and whether what is left is still Ray's own error."""
    ray_types = _ray_error_types()
    if ray_types is None:
        return exc, False
    ray_error, ray_task_error = ray_types
    while isinstance(exc, ray_task_error):
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException) or cause is exc:
            break
        exc = cause
    return exc, isinstance(exc, ray_error)


def clean_message(exc: BaseException) -> str:
    """The error's own text, never a traceback, with URL credentials redacted.

    Ray re-raises a remote error with the remote traceback as its text; the user error it carries is used
    instead, and where only Ray's text is left, its last line (the ``Type: message`` line).
    """
    inner, still_ray = _unwrap(exc)
    text = str(inner).strip()
    if still_ray:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else ""
    return redact(text or type(inner).__name__)


def status_of(exc: BaseException) -> int:
    """The HTTP status ``exc`` means; 500 (INTERNAL_ERROR) for an error that is no client's doing.

    Ray cannot always re-raise a remote error as its own type (pydantic's ValidationError it cannot subclass),
    so the error it carries decides.
    """
    inner = _unwrap(exc)[0]
    for cls in (*type(inner).__mro__, *type(exc).__mro__):
        if cls in STATUS:
            return STATUS[cls]
    module = sys.modules.get("ray.exceptions")
    if module is not None:
        gone = tuple(getattr(module, name) for name in RAY_UNAVAILABLE if hasattr(module, name))
        if isinstance(inner, gone) or isinstance(exc, gone):
            return 503
    return INTERNAL_ERROR


def is_client_error(exc: BaseException) -> bool:
    """Whether ``exc`` has an answer of its own; everything else stays a server error (and keeps its traceback)."""
    return status_of(exc) != INTERNAL_ERROR


def http_error(exc: BaseException) -> HttpError:
    """Status, message and headers for ``exc``; both HTTP servers answer ``{"detail": message}`` with them."""
    status = status_of(exc)
    headers: dict[str, str] = {}
    scheme = getattr(_unwrap(exc)[0], "scheme", None) if status == 401 else None
    if isinstance(scheme, str):
        headers["WWW-Authenticate"] = scheme
    return HttpError(status, clean_message(exc), headers)
