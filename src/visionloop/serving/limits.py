"""Request body size limit enforced before a byte of an oversize upload is parsed."""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionloop.core.http_errors import PayloadTooLarge, http_error
from visionloop.serving.http_errors import send_error


class UploadLimit:
    """The replica-wide body limit. Ray Serve freezes a copy of the FastAPI app when the module is imported, so the
    limit cannot live on the app; the Router sets it here when it starts in its replica."""

    max_bytes: int = 8 * 1024 * 1024

    @classmethod
    def get(cls) -> int:
        return cls.max_bytes

    @classmethod
    def set(cls, max_bytes: int) -> None:
        cls.max_bytes = max_bytes


class BodyTooLarge(HTTPException):
    """Raised from inside body parsing; an HTTPException so the framework answers 413, not 'parse error'."""

    def __init__(self, limit: int) -> None:
        error = http_error(PayloadTooLarge.body(limit))
        super().__init__(error.status, error.message)


class BodySizeLimitMiddleware:
    """413 when Content-Length says too much, or when a chunked body grows past the limit while streaming."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, PayloadTooLarge.body(limit))
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await send_error(send, PayloadTooLarge.body(limit))
