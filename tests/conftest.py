"""Shared fixtures: real servers started per test (or module) on free loopback ports, and a small model."""

from __future__ import annotations

import asyncio
import random
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from visionloop.core.config import load_settings
from visionloop.core.offline import prepare_ultralytics
from visionloop.core.redis_server import EmbeddedRedis
from visionloop.core.settings import Settings

T = TypeVar("T")


def wait_for(
    fetch: Callable[[], T],
    condition: Callable[[T], object] = bool,
    timeout_s: float = 10.0,
    interval_s: float = 0.1,
) -> T:
    """Poll ``fetch()`` until ``condition(value)`` holds and return that value; fail the test with the last value.

    The one wait helper of the tests (``eventually`` is its async twin, ``seconds_until`` times it).
    """
    deadline, value = time.monotonic() + timeout_s, None
    while True:
        value = fetch()
        if condition(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached in {timeout_s} s; last value: {value!r}")
        time.sleep(interval_s)


def seconds_until(condition: Callable[[], object], timeout_s: float) -> float | None:
    """Seconds until ``condition()`` held (never 0, so it reads as true), or None if it did not within the time."""
    start = time.monotonic()
    try:
        wait_for(condition, timeout_s=timeout_s, interval_s=0.05)
    except AssertionError:
        return None
    return max(time.monotonic() - start, 1e-6)


async def eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """True as soon as ``condition()`` holds, False if it never did within ``timeout_s`` (for async tests)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.05)
    return False


def settled_count(read: Callable[[], float], at_most: float | None = None, window_s: float = 3.0) -> float:
    """A resource count (threads, file descriptors, tasks) with its transients gone: the lowest reading over
    ``window_s``, or the first one at or below ``at_most`` (the previous snapshot, say: nothing grew, no need to
    wait). A closing socket or an ending thread only ever adds to a count for a moment, so the minimum is the count
    that stays."""
    deadline, lowest = time.monotonic() + window_s, read()
    while time.monotonic() < deadline and (at_most is None or lowest > at_most):
        time.sleep(0.1)
        lowest = min(lowest, read())
    return lowest


async def settled_count_async(read: Callable[[], float], at_most: float | None = None, window_s: float = 3.0) -> float:
    """:func:`settled_count` for a count read on an event loop (its tasks must get to run meanwhile)."""
    loop = asyncio.get_running_loop()
    deadline, lowest = loop.time() + window_s, read()
    while loop.time() < deadline and (at_most is None or lowest > at_most):
        await asyncio.sleep(0.1)
        lowest = min(lowest, read())
    return lowest


def leak_found(what: str, counts: Sequence[float], slack: float, noise: float) -> str | None:
    """Why ``counts`` look like a leak, or None. ``counts`` are taken after N0, N0 + N and N0 + 2N cycles. A leak
    grows by about the same over every N cycles; warm-up grows over the first N only, and noise does not grow at all.
    So the growth over the second N must stay within ``slack`` and not pass the first N's growth by more than
    ``noise``. A count that grew by no more than ``noise`` over both (a CI run saw file descriptors 46, 45, 47) did
    not grow at all."""
    first, second = counts[-2] - counts[-3], counts[-1] - counts[-2]
    steady = second <= slack and second <= max(first, 0) + noise
    if steady or counts[-1] - counts[-3] <= noise:
        return None
    return f"{what} grew by {first:g}, then by {second:g} over as many cycles (snapshots {list(counts)})"


def assert_no_leak(what: str, counts: Sequence[float], slack: float, noise: float) -> None:
    """Fails with :func:`leak_found`'s reason."""
    reason = leak_found(what, counts, slack, noise)
    assert reason is None, reason


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (32768+).

    Ray and other clients take ephemeral ports all the time, so a port picked there can be gone by the time a
    server that starts late (Label Studio after Ray) binds it.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A real redis-server on a free port with AOF in a temporary directory, stopped after the test."""
    server = EmbeddedRedis(free_port(), tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def model_registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A var/ directory whose registry holds an untrained nano YOLO as champion (built once per session)."""
    from visionloop.learning.registration import init_untrained_champion

    var_dir = tmp_path_factory.mktemp("template-var")
    settings = load_settings(environ={"VISIONLOOP_PATHS__VAR_DIR": str(var_dir)})
    init_untrained_champion(settings)
    return var_dir


@pytest.fixture
def var_dir(tmp_path: Path, model_registry_template: Path) -> Path:
    """A private var/ for one test, with the champion model already registered."""
    target = tmp_path / "var"
    shutil.copytree(model_registry_template / "models", target / "models")
    shutil.copytree(model_registry_template / "ultralytics", target / "ultralytics")
    return target


def make_settings(var_dir: Path, **env: str) -> Settings:
    """Settings with private ports and state, plus VISIONLOOP_* overrides given as keyword arguments."""
    base = {
        "VISIONLOOP_PATHS__VAR_DIR": str(var_dir),
        "VISIONLOOP_API__PORT": str(free_port()),
        "VISIONLOOP_API__TOKEN": "test-token-123",
        "VISIONLOOP_REDIS__EMBEDDED_PORT": str(free_port()),
        "VISIONLOOP_RAY__METRICS_EXPORT_PORT": str(free_port()),
        "VISIONLOOP_RAY__NUM_CPUS": "2",
        "VISIONLOOP_LABELING__ENABLED": "false",  # the labeling tests turn it on
        "VISIONLOOP_LOOP__ENABLED": "false",  # the loop tests turn it on
        # The dashboard, the explanation worker and the drift monitor: the dashboard tests turn them on.
        "VISIONLOOP_DASHBOARD__ENABLED": "false",
        "VISIONLOOP_DASHBOARD__PORT": str(free_port()),
        "VISIONLOOP_EXPLAIN__ENABLED": "false",
        "VISIONLOOP_DRIFT__ENABLED": "false",
    }
    base.update({f"VISIONLOOP_{k.upper()}": v for k, v in env.items()})
    return load_settings(environ=base)


_session_status: list[int] = []  # the session's exit status, kept for pytest_unconfigure


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Name every thread still alive when the session ends, with where it stands: a thread left running into the
    interpreter's shutdown is the usual cause of a crash after the last test (PYTHONFAULTHANDLER shows the rest)."""
    import sys
    import threading
    import traceback

    _session_status.append(int(exitstatus))
    frames = sys._current_frames()
    for thread in threading.enumerate():
        if thread is threading.main_thread():
            continue
        frame = frames.get(thread.ident or -1)
        where = "".join(traceback.format_stack(frame, limit=6)) if frame is not None else "(no frame)\n"
        sys.stderr.write(f"\nthread alive at session end: {thread.name} (daemon={thread.daemon})\n{where}")


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """End the process with the session's status once every verdict is reported, without the interpreter's
    teardown. Every fixture has stopped its servers by now; what remains are native libraries' own threads (ONNX
    Runtime's and torch's pools, Ray's core worker), and tearing those down at exit crashed the process once
    (SIGSEGV after 1,109 passed), turning a green run red. A Ray connection a test left open is closed first."""
    import os
    import sys

    if not _session_status:
        return
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_session_status[0])


@pytest.fixture(scope="module")
def offline_ultralytics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Ultralytics prepared offline for one module (its settings in a temporary directory); the variables it sets
    for the process are restored afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("YOLO_CONFIG_DIR", "YOLO_OFFLINE", "YOLO_AUTOINSTALL", "YOLO_VERBOSE"):
            patch.delenv(name, raising=False)
        prepare_ultralytics(tmp_path_factory.mktemp("ultralytics"))
        yield
