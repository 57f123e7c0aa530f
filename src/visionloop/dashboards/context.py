"""What every page needs: the settings (loaded the usual way), the Redis client and the API's address.

The dashboard runs as its own process (``streamlit run``), so it loads the settings like the CLI does:
``configs/default.yaml``, then ``VISIONLOOP_CONFIG``, then ``VISIONLOOP_*`` variables. Settings are read on every
rerun (a few milliseconds) rather than cached, so one process never mixes two configurations.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from visionloop.core.config import load_settings
from visionloop.core.settings import Settings
from visionloop.core.streams import StreamNames

# Short timeouts: a page must say "unavailable" quickly, not hang on a service that is down.
REDIS_TIMEOUT_S = 1.0

_clients: dict[str, redis.Redis] = {}


@dataclass(frozen=True)
class DashboardContext:
    settings: Settings
    streams: StreamNames
    api_url: str
    redis_url: str

    @property
    def redis(self) -> redis.Redis:
        return redis_client(self.redis_url)


def api_url_of(settings: Settings) -> str:
    """``dashboard.api_url``, or this service's own API."""
    return (settings.dashboard.api_url or f"http://{settings.api.host}:{settings.api.port}").rstrip("/")


def redis_client(url: str) -> redis.Redis:
    """One client (and connection pool) per Redis URL for the life of the process; bytes in, bytes out."""
    client = _clients.get(url)
    if client is None:
        client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
        _clients[url] = client
    return client


def load_context(settings: Settings | None = None) -> DashboardContext:
    settings = settings or load_settings()
    return DashboardContext(
        settings=settings,
        streams=StreamNames(settings.redis.stream_prefix),
        api_url=api_url_of(settings),
        redis_url=settings.redis_url(),
    )
