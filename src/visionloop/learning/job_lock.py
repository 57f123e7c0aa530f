"""A Redis lock on one training job, so two loop workers never fine-tune the same challenger at once.

``SET key token NX PX ttl``: the lock expires by itself when its holder dies (a killed actor cannot release it), and
a live holder refreshes it from a background thread while it trains. Refresh and release check the token, so a
worker whose lock expired (it stalled past the ttl) never deletes or extends another worker's lock; it learns that
it lost the lock through :meth:`JobLock.held` and must not register.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import redis

_REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class JobLock:
    def __init__(self, client: redis.Redis, key: str, ttl_s: float) -> None:
        self._redis, self.key = client, key
        self._ttl_ms = max(int(ttl_s * 1000), 100)
        self._token = uuid.uuid4().hex
        self._lost = threading.Event()

    def acquire(self) -> bool:
        return bool(self._redis.set(self.key, self._token, nx=True, px=self._ttl_ms))

    def refresh(self) -> bool:
        ok = bool(self._redis.eval(_REFRESH, 1, self.key, self._token, self._ttl_ms))  # type: ignore[no-untyped-call]
        if not ok:
            self._lost.set()
        return ok

    def held(self) -> bool:
        """Still ours: checked right before anything is registered."""
        return not self._lost.is_set() and self._redis.get(self.key) == self._token.encode()

    def release(self) -> None:
        self._redis.eval(_RELEASE, 1, self.key, self._token)  # type: ignore[no-untyped-call]

    @contextmanager
    def kept(self) -> Iterator[JobLock]:
        """Refresh every third of the ttl while the block runs; release at the end."""
        stop = threading.Event()

        def keep() -> None:
            while not stop.wait(self._ttl_ms / 3000):
                try:
                    if not self.refresh():
                        return
                except redis.RedisError:
                    continue  # Redis away for a moment: the next refresh may still be in time

        thread = threading.Thread(target=keep, name=f"lock:{self.key}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join(5)
            with contextlib.suppress(redis.RedisError):  # unreachable Redis: the lock expires on its own
                self.release()


class LocalLock(JobLock):
    """The stand-in without Redis (``visionloop loop run`` while nothing runs): one process, so nothing to exclude."""

    def __init__(self, key: str) -> None:
        self.key = key

    def acquire(self) -> bool:
        return True

    def refresh(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        return None

    @contextmanager
    def kept(self) -> Iterator[JobLock]:
        yield self
