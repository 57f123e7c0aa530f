"""The benchmarks never touch the service's state: each one's smallest setting runs against a service var/ holding a
champion (the shipped bootstrap model, as a user's would), its pointers and data sets, and every byte of the
registry and the data sets is the same afterwards.

Each benchmark runs from a copy of ``benchmarks/`` (its results land in the copy, not in the checkout's results).
Not run here, for their time: ``loop`` and ``loop_recipe`` (a rendered six-camera site of at least two minutes and
training; about five minutes each at their smallest), ``bootstrap`` (training) and ``gpu_check`` (no GPU here: it
reads nothing). They load their settings through ``benchmarks.own_var`` like the others, which
tests/unit/test_benchmarks_own_var.py holds every benchmark to.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import make_settings
from visionloop.core.registry import ModelRegistry
from visionloop.simulation.bootstrap import run_bootstrap

pytestmark = pytest.mark.integration
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
# module: (its smallest setting, the var/ of its own it works in: <service var>/bench/<name>)
SMALLEST: dict[str, tuple[list[str], str | None]] = {
    "site": (["--cameras", "1", "--seconds", "8"], "site"),
    "gating_tune": (["--cameras", "1", "--seconds", "6"], "gating"),
    "explain": (["--detections", "2", "--max-evals", "40"], None),  # reads the service's champion, writes nothing
    "active_learning": (
        ["--seeds", "1", "--pool", "24", "--gold", "12", "--steps", "4", "--iterations", "1"],
        "active-learning",
    ),
    "serving": (["--seconds", "2", "--clients", "1", "--frames-per-request", "4"], "serving"),
    "pipeline": (
        ["--counts", "1", "--seconds", "3", "--baselines", "none", "--raw-seconds", "2", "--sweep-only"],
        "pipeline",
    ),
}


def fingerprint(var_dir: Path) -> dict[str, str]:
    """Every file and folder of the registry and the data sets, with the sha256 of each file's bytes."""
    prints: dict[str, str] = {}
    for part in ("models", "datasets"):
        for path in sorted((var_dir / part).rglob("*")):
            key = str(path.relative_to(var_dir))
            prints[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
    return prints


def test_every_benchmark_leaves_the_services_registry_and_data_sets_byte_identical(tmp_path: Path) -> None:
    service_var = tmp_path / "var"
    settings = make_settings(service_var)
    champion = run_bootstrap(settings, Console(quiet=True)).version
    before = fingerprint(service_var)
    assert ModelRegistry(settings.var.models).pointers()["champion"] == champion.version
    assert any(key.startswith("datasets/") for key in before) and len(before) > 20

    code = tmp_path / "code"
    shutil.copytree(BENCHMARKS, code / "benchmarks", ignore=shutil.ignore_patterns("results", "__pycache__"))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VISIONLOOP_", "RAY_"))}
    environ["VISIONLOOP_PATHS__VAR_DIR"] = str(service_var)
    changed: dict[str, list[str]] = {}
    for module, (args, own) in SMALLEST.items():
        done = subprocess.run(
            [sys.executable, "-m", f"benchmarks.{module}", *args],
            cwd=code,
            env=environ,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"benchmarks.{module}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        after = fingerprint(service_var)
        changed[module] = sorted(key for key in before.keys() | after.keys() if before.get(key) != after.get(key))
        assert own is None or (service_var / "bench" / own).is_dir(), f"benchmarks.{module} made no var/ of its own"
    assert changed == {module: [] for module in SMALLEST}
    print(f"\nbenchmarks run against a service var/: {', '.join(SMALLEST)}; its registry and data sets unchanged")
