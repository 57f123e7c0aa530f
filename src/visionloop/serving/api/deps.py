"""What the area routers share: the caller's token name, the replica's state, a short-lived Redis connection."""

# No `from __future__ import annotations` here: FastAPI must see real annotations on the dependencies.
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol, TypeVar, cast

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from visionloop.core.contracts import EncodedFrame, FrameResult
from visionloop.core.http_errors import Unauthorized
from visionloop.core.registry import ModelRegistry
from visionloop.core.results import ResultPublisher
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames
from visionloop.serving.auth import TokenBook
from visionloop.serving.http_errors import client_errors, http_exception
from visionloop.serving.metrics import RouterMetrics
from visionloop.serving.shadow import ShadowMirror

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="The token from api.token in the settings.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def authorize(credentials: HTTPAuthorizationCredentials | None) -> str:
    """The name of the token the request carries (what the audit log records); 401 without a known one.

    AuthMiddleware has already refused an HTTP request without one; this also guards the WebSocket handshake
    and keeps a handler safe should the middleware ever be left out."""
    header = f"{credentials.scheme} {credentials.credentials}" if credentials is not None else None
    name = TokenBook.name_of(header)
    if name is None:
        raise http_exception(Unauthorized())
    return name


class ReplicaState(Protocol):
    """What the handlers use of the Router replica that serves them (serving.router.Router answers it)."""

    settings: Settings
    champion: Any  # the champion Detector's deployment handle
    registry: ModelRegistry
    metrics: RouterMetrics
    publisher: ResultPublisher
    mirror: ShadowMirror | None
    redis_url: str

    async def process_frames(self, frames: list[EncodedFrame]) -> list[FrameResult | str]: ...

    async def class_names_for(self, model_version: str) -> list[str]: ...


async def current_replica() -> ReplicaState:
    """The Router instance of this replica process, found the way Serve finds ``self`` for an ingress class's
    own route methods (its replica context holds the one instance the process runs)."""
    from ray import serve

    return cast(ReplicaState, serve.get_replica_context().servable_object)


Replica = Annotated[ReplicaState, Depends(current_replica)]


async def on_redis(replica: ReplicaState, work: Callable[[Any, StreamNames], Awaitable[T]]) -> T:
    """Run ``work(client, streams)`` on a short-lived async Redis connection; a client error becomes its 4xx."""
    import redis.asyncio as aioredis

    settings = replica.settings
    timeout = settings.redis.socket_timeout_s
    client = aioredis.Redis.from_url(replica.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        with client_errors():
            return await work(client, StreamNames(settings.redis.stream_prefix))
    finally:
        await client.aclose()
