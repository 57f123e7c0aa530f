"""Reference pages of the documentation, generated from the code so nothing is written twice: every settings key
from the schema, every CLI command from Typer, the HTTP API from its OpenAPI document, the metrics from their
definitions, the bootstrap model from its card. ``make docs`` writes them into docs/reference/ before mkdocs builds.

Usage: python -m visionloop.cli.reference docs/reference
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def pages() -> dict[str, Callable[[], str]]:
    """File name -> a function that renders the page (imports are lazy: the API page imports Ray Serve)."""
    from visionloop.cli.reference.api_reference import api_page
    from visionloop.cli.reference.cli_reference import cli_page
    from visionloop.cli.reference.metrics_reference import metrics_page
    from visionloop.cli.reference.model_reference import model_page
    from visionloop.cli.reference.settings_reference import settings_page

    return {
        "configuration.md": settings_page,
        "cli.md": cli_page,
        "http-api.md": api_page,
        "metrics.md": metrics_page,
        "bootstrap-model.md": model_page,
    }


def write_reference(directory: Path) -> list[Path]:
    """Write every reference page into ``directory`` (only files whose text changed are rewritten)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, render in pages().items():
        path = directory / name
        text = render()
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written
