"""`visionloop up` as an operator runs it: it prints where things listen and SIGTERM stops everything it started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.integration


def test_up_serves_then_stops_cleanly_on_sigterm(module_var_dir: Path) -> None:
    api_port, redis_port = free_port(), free_port()
    env = {
        **os.environ,
        "VISIONLOOP_PATHS__VAR_DIR": str(module_var_dir),
        "VISIONLOOP_API__PORT": str(api_port),
        "VISIONLOOP_REDIS__EMBEDDED_PORT": str(redis_port),
        "VISIONLOOP_RAY__METRICS_EXPORT_PORT": str(free_port()),
        "VISIONLOOP_LABELING__ENABLED": "false",
        "COLUMNS": "200",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "visionloop.cli", "up"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline, healthy = time.monotonic() + 120, False
        while time.monotonic() < deadline and process.poll() is None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{api_port}/v1/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy:
                break
            time.sleep(1)
        assert healthy, "the API never answered"
        children = psutil.Process(process.pid).children(recursive=True)
        assert any("redis-server" in " ".join(c.cmdline()) for c in children)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{api_port}" in output and "Stopped." in output
    assert f"redis://127.0.0.1:{redis_port}/0" in output
    time.sleep(1)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
