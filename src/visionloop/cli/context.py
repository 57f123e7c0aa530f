"""What every command shares: the settings of this invocation, the consoles, the API client and JSON output.

The root command puts a ``CliContext`` on Typer's context; sub-commands read it from there (``settings_of(ctx)``),
so no command module imports the root module and the command tree has no import cycle.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from visionloop.cli.client import ApiClient
from visionloop.core.logs import configure_logging
from visionloop.core.settings import Settings

console = Console()
status_console = Console(stderr=True)  # progress and notes, so stdout stays clean for --json


@dataclass
class CliContext:
    """One invocation's options; settings are loaded (and validated) once, on first use."""

    config: Path | None = None
    _settings: Settings | None = field(default=None, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            from visionloop.cli.plugins import load_checked_settings

            self._settings = load_checked_settings(self.config)
            configure_logging(self._settings.logging.level)
        return self._settings


def settings_of(ctx: typer.Context) -> Settings:
    """The settings of this invocation (the root command's ``--config`` layered over the defaults)."""
    found = ctx.find_object(CliContext)
    return (found or CliContext()).settings()


def api_client(ctx: typer.Context, url: str | None = None, timeout_s: float = 60.0) -> ApiClient:
    """A client for the running service's API, with the token from the settings."""
    settings = settings_of(ctx)
    base = url or f"http://{settings.api.host}:{settings.api.port}"
    return ApiClient(base, settings.api.token.get_secret_value(), timeout_s=timeout_s)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


@contextmanager
def stdout_to_stderr(active: bool = True) -> Iterator[None]:
    """Send everything written to stdout (file descriptor 1, so child processes and native code too) to stderr.

    ``--json`` promises one JSON document on stdout; Ray Tune and Ultralytics print tables and logs there.
    """
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
