"""``visionloop dashboard`` and the service's start/stop of it: the child gets the effective settings without
secrets, starts headless with telemetry off, answers its health check, and is stopped with its process group."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import free_port, make_settings
from visionloop.cli import dashboard as dashboard_module
from visionloop.cli.app import app
from visionloop.cli.dashboard import dashboard_command, settings_file, start_dashboard, stop_dashboard
from visionloop.core.config import load_settings
from visionloop.core.errors import VisionloopError


def test_the_child_gets_the_effective_settings_without_secrets(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path / "var",
        API__TOKEN="a-very-secret-token",
        API__NAMED_TOKENS='{"alice": "alice-secret-token"}',
        LABELING__WEBHOOK_SECRET="hook-secret-value",
        DASHBOARD__REFRESH_S="7.5",
    )
    path = settings_file(settings, redis_url="redis://127.0.0.1:6555/0")
    text = path.read_text()
    assert not any(secret in text for secret in ("a-very-secret-token", "alice-secret-token", "hook-secret-value"))
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    child = load_settings(environ={"VISIONLOOP_CONFIG": str(path)})
    assert child.dashboard.refresh_s == 7.5
    assert child.api.port == settings.api.port
    assert child.redis_url() == "redis://127.0.0.1:6555/0"
    assert child.resolved_var_dir() == settings.resolved_var_dir()  # absolute: the child's working dir differs
    assert yaml.safe_load(text)["paths"]["var_dir"].startswith("/")


def test_the_command_is_headless_on_the_configured_address_without_telemetry(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DASHBOARD__PORT="8765", DASHBOARD__HOST="127.0.0.1")
    command = " ".join(dashboard_command(settings))
    for flag in (
        "--server.address 127.0.0.1",
        "--server.port 8765",
        "--server.headless true",
        "--browser.gatherUsageStats false",
    ):
        assert flag in command
    assert command.endswith("--client.toolbarMode minimal") and "dashboards/app.py" in command


def test_start_answers_health_then_stop_ends_the_process_group(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DASHBOARD__PORT=str(free_port()))
    child, url = start_dashboard(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", timeout_s=60)
    pid = child.pid
    assert pid is not None
    try:
        assert url == f"http://127.0.0.1:{settings.dashboard.port}"
        assert httpx.get(f"{url}/_stcore/health", timeout=5).text == "ok"
        assert "<!doctype html>" in httpx.get(url, timeout=5).text.lower()
    finally:
        stop_dashboard(child)
    assert child.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing of its group is left
    stop_dashboard(child)  # stopping twice is harmless
    assert (
        "You can now view your Streamlit app"
        in (settings.resolved_var_dir() / "dashboard" / "streamlit.log").read_text()
    )


def test_a_taken_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Whatever holds the port would answer the health check: the start refuses instead of reporting success."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = make_settings(tmp_path, DASHBOARD__PORT=str(taken.getsockname()[1]))
        with pytest.raises(VisionloopError, match=f"port {settings.dashboard.port} on 127.0.0.1 is taken"):
            start_dashboard(settings, timeout_s=30)
    assert not (settings.resolved_var_dir() / "dashboard" / "streamlit.log").exists()


def test_a_dashboard_that_exits_at_start_is_reported_with_its_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_module, "DASHBOARD_APP", tmp_path / "missing.py")
    settings = make_settings(tmp_path, DASHBOARD__PORT=str(free_port()))
    with pytest.raises(VisionloopError, match="did not start") as failure:
        start_dashboard(settings, timeout_s=30)
    assert "missing.py" in str(failure.value)


def test_the_cli_has_a_dashboard_command() -> None:
    result = CliRunner().invoke(app, ["dashboard", "--help"])
    assert result.exit_code == 0 and "operator dashboard" in result.output
