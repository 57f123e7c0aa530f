"""Logging set-up: rich console output, structured fields (camera id, model version) kept as ``extra``."""

from __future__ import annotations

import logging

from rich.logging import RichHandler


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(rich_tracebacks=False, show_path=False)],
        force=True,
    )
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
