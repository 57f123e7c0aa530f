"""``visionloop dashboard``: the Streamlit operator dashboard, in the foreground or as the service's child.

The dashboard is its own process (``streamlit run dashboards/app.py``) and loads its settings the usual way; the
child is handed this process's effective settings as a YAML file (secrets left out: the dashboard never needs the
API token, an operator types it into the page), so settings built in code (tests, the service) reach it unchanged.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from pydantic import BaseModel, SecretStr

from visionloop.cli.context import console, settings_of
from visionloop.core.errors import VisionloopError
from visionloop.core.processes import ChildProcess, ProcessStartError
from visionloop.core.redis_server import port_is_free
from visionloop.core.settings import PROJECT_ROOT, Settings

# The app is found by path, not imported (nothing imports the dashboards): visionloop/dashboards/app.py beside this
# package's cli/, in a checkout and in site-packages alike.
DASHBOARD_APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
LOG_TAIL = 3000


def dashboard_url(settings: Settings) -> str:
    return f"http://{settings.dashboard.host}:{settings.dashboard.port}"


def _secrets(model: BaseModel) -> dict[str, Any]:
    """The ``exclude`` spec of every secret field of ``model`` (a SecretStr, or a mapping of them), recursively."""
    spec: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr) or (
            isinstance(value, dict) and any(isinstance(v, SecretStr) for v in value.values())
        ):
            spec[name] = True
        elif isinstance(value, BaseModel) and (inner := _secrets(value)):
            spec[name] = inner
    return spec


def settings_file(settings: Settings, redis_url: str | None = None, config_path: Path | None = None) -> Path:
    """Write the effective settings (no secrets, state folder made absolute, ``redis_url`` when given: the Redis
    the service really uses) where the dashboard child reads them."""
    data = settings.model_dump(mode="json", exclude=_secrets(settings))
    data["paths"]["var_dir"] = str(settings.resolved_var_dir())
    if redis_url:
        data["redis"]["url"] = redis_url
    path = settings.var.dashboard / "settings.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)  # no API secrets in it, but a TURN credential or a Redis password in a URL may be
    path.chmod(0o600)
    source = f" (loaded from {config_path})" if config_path else ""
    header = f"# Written by visionloop for the dashboard: the service's effective settings{source}, secrets left out.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def dashboard_command(settings: Settings) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(DASHBOARD_APP),
        "--server.address", settings.dashboard.host,
        "--server.port", str(settings.dashboard.port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip


def dashboard_environment(
    settings: Settings, redis_url: str | None = None, config_path: Path | None = None
) -> dict[str, str]:
    """This environment with the settings file as VISIONLOOP_CONFIG and no other VISIONLOOP_* (the file has them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONLOOP_")}
    env["VISIONLOOP_CONFIG"] = str(settings_file(settings, redis_url, config_path))
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    return env


def dashboard_ready(settings: Settings) -> bool:
    try:
        response = httpx.get(f"{dashboard_url(settings)}/_stcore/health", timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def start_dashboard(
    settings: Settings,
    redis_url: str | None = None,
    config_path: Path | None = None,
    timeout_s: float = READY_TIMEOUT_S,
) -> tuple[ChildProcess, str]:
    """Start the dashboard as a child in its own session that dies with this process (output appended to
    ``<var>/dashboard/streamlit.log``); return it with its URL once it answers its health check.

    ``redis_url``: the Redis the service really uses (its embedded one); stop it with :func:`stop_dashboard`.
    """
    host, port = settings.dashboard.host, settings.dashboard.port
    if not port_is_free(port, host):  # else the health check could be answered by whatever holds the port
        raise VisionloopError(f"cannot start the dashboard: port {port} on {host} is taken; set dashboard.port")
    log = settings.var.dashboard / "streamlit.log"
    env = dashboard_environment(settings, redis_url, config_path)
    child = ChildProcess(dashboard_command(settings), log, env=env, die_with_parent=True).start()
    try:
        child.wait_ready(lambda: dashboard_ready(settings), timeout_s, interval_s=0.2)
    except ProcessStartError as exc:
        raise VisionloopError(f"the dashboard did not start: {exc}\n{exc.output[-LOG_TAIL:]}") from None
    return child, dashboard_url(settings)


def stop_dashboard(child: ChildProcess | None, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after ``timeout_s``; twice is harmless."""
    if child is not None:
        child.stop(timeout_s)


def dashboard(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port (default: dashboard.port).")] = None,
) -> None:
    """Run the operator dashboard (Streamlit) in the foreground; Ctrl-C stops it."""
    settings = settings_of(ctx)
    if port is not None:
        settings = settings.model_copy(update={"dashboard": settings.dashboard.model_copy(update={"port": port})})
    if not DASHBOARD_APP.is_file():
        raise VisionloopError(f"the dashboard app is missing at {DASHBOARD_APP}")
    env = dashboard_environment(settings)
    console.print(f"Dashboard at {dashboard_url(settings)} (Ctrl-C stops it)")
    with contextlib.suppress(KeyboardInterrupt):
        code = subprocess.call(dashboard_command(settings), env=env, cwd=PROJECT_ROOT)
        raise typer.Exit(code)
