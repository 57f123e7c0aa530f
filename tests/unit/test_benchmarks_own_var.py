"""Benchmarks keep their state in a var/ of their own: settings moved there, and no other way to load settings."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from benchmarks.own_var import benchmark_settings, service_settings

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_a_benchmarks_settings_live_under_bench_of_the_services_var(tmp_path: Path) -> None:
    environ = {"VISIONLOOP_PATHS__VAR_DIR": str(tmp_path / "var"), "VISIONLOOP_TRAINING__SEED": "7"}
    service = service_settings(environ)
    settings = benchmark_settings("site", environ)
    assert service.resolved_var_dir() == tmp_path / "var"
    assert settings.resolved_var_dir() == tmp_path / "var" / "bench" / "site"
    for part in ("models", "datasets", "redis", "label_studio", "ultralytics"):
        own, services = getattr(settings.var, part), getattr(service.var, part)
        assert own.is_relative_to(tmp_path / "var" / "bench" / "site") and own != services, part
    assert settings.training.seed == 7  # the user's other settings come along


def _loads_settings(tree: ast.AST) -> list[str]:
    """Names of settings loaders a module imports: only benchmarks.own_var may call load_settings."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("visionloop.core.config", "visionloop.core"):
            found += [alias.name for alias in node.names if alias.name == "load_settings"]
        if isinstance(node, ast.Attribute) and node.attr == "load_settings":
            found.append("load_settings")
    return found


@pytest.mark.parametrize("module", sorted(p.name for p in BENCHMARKS.glob("*.py") if p.name != "own_var.py"))
def test_no_benchmark_loads_settings_that_point_at_the_services_var(module: str) -> None:
    tree = ast.parse((BENCHMARKS / module).read_text())
    assert _loads_settings(tree) == [], f"{module}: load settings through benchmarks.own_var"


def test_the_check_sees_a_direct_load() -> None:
    assert _loads_settings(ast.parse("from visionloop.core.config import load_settings")) == ["load_settings"]
    assert _loads_settings(ast.parse("import visionloop.core.config as c\nc.load_settings()")) == ["load_settings"]
