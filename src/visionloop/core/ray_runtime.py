"""Start and stop Ray the way visionloop needs it: loopback-only locally, quiet, with metrics exported."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from visionloop.core.settings import Settings


def import_ray() -> Any:
    """Import Ray with the environment it reads at import time.

    Without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray binds the machine's external address instead of 127.0.0.1.
    """
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    return ray


def init_ray(settings: Settings) -> None:
    ray = import_ray()
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"address": settings.ray.address, "logging_level": "warning", "log_to_driver": False}
    if settings.ray.address == "local":
        temp_dir = settings.ray_temp_dir()
        temp_dir.mkdir(parents=True, exist_ok=True)
        kwargs.update(
            num_cpus=settings.ray.num_cpus,
            include_dashboard=False,
            _temp_dir=str(temp_dir),
            _metrics_export_port=settings.ray.metrics_export_port,
            # Task events feed Ray's dashboard and state API only, and a local Ray runs neither; reported, the GCS
            # keeps them (up to 100,000 calls, ~3 KB each): +4 MB in a 25-minute soak, for hours.
            _system_config={"task_events_report_interval_ms": 0},
        )
        if settings.ray.malloc_arena_max:  # read by glibc in each process Ray starts from here, Serve's included
            os.environ.setdefault("MALLOC_ARENA_MAX", str(settings.ray.malloc_arena_max))
    # ray.init installs a native SIGTERM handler that aborts the process; keep the caller's handlers instead so
    # `visionloop up` can stop Redis and Ray in order.
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    ray.init(**kwargs)
    if threading.current_thread() is threading.main_thread():
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)


def shutdown_ray() -> None:
    ray = import_ray()
    from ray import serve

    if ray.is_initialized():
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()
