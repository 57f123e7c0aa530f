"""The one error the data functions raise: a source (Redis, the API) that cannot be read right now."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from visionloop.core.errors import VisionloopError
from visionloop.core.streams import text as text  # the dashboards' readers import it from here


class DataUnavailable(VisionloopError):
    """A source did not answer; the message says which and why (pages show it instead of a stack trace)."""


@contextmanager
def reading(what: str) -> Iterator[None]:
    """Turn a Redis failure while reading ``what`` into DataUnavailable."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise DataUnavailable(f"{what}: Redis did not answer ({type(exc).__name__}: {exc})") from exc
