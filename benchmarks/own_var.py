"""Where a benchmark keeps its state: a var/ of its own (``<var>/bench/<name>``), never the service's.

A benchmark that trained into the service's registry once replaced the champion users were serving (issue 29).
So every benchmark loads its settings here: the user's settings (configuration files, ``VISIONLOOP_*``) with
``paths.var_dir`` moved to ``<var>/bench/<name>``. What it makes there (the bootstrap model it installs or trains,
data sets, renders, Redis files, Label Studio) stays there, and is reused by its next run. What it needs from the
service it reads through :func:`service_settings`, never writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from visionloop.core.config import load_settings
from visionloop.core.settings import Settings

BENCH_DIR = "bench"


def own_var_dir(service: Settings, name: str) -> Path:
    """``<the service's var>/bench/<name>``: under the service's var/ so that one ``rm -rf var`` clears all."""
    return service.resolved_var_dir() / BENCH_DIR / name


def moved_to(settings: Settings, var_dir: Path) -> Settings:
    """``settings`` with another var/ (validated again: every path derives from it)."""
    data = settings.model_dump(mode="python")
    data["paths"]["var_dir"] = var_dir
    return Settings.model_validate(data)


def service_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The service's own settings: to read from (its champion, its gold set), never to write with."""
    return load_settings(environ=dict(os.environ if environ is None else environ))


def benchmark_settings(name: str, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings benchmark ``name`` runs with: the service's, in the benchmark's own var/."""
    service = service_settings(environ)
    return moved_to(service, own_var_dir(service, name))
