"""The layering of the house is enforced: import-linter's contracts hold, and a new wrong arrow breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from visionloop.config import PACKAGE_ROOT

PARTS = ["visionloop", "serving", "streaming", "labeling", "learning", "dashboards", "simulation"]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((PACKAGE_ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=120,
    )


def test_every_spine_module_is_bound_by_the_spine_contract() -> None:
    spine = {f"visionloop.{p.stem}" for p in (PACKAGE_ROOT / "visionloop").glob("*.py") if p.stem != "__init__"}
    listed = set(_contracts()[0]["source_modules"])  # type: ignore[arg-type]
    assert spine == listed, "add new spine modules to the first import-linter contract in pyproject.toml"


def test_the_layering_contracts_hold() -> None:
    out = _lint(PACKAGE_ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert f"{len(_contracts())} kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "arrow", "contract"),
    [
        ("visionloop/errors.py", "import serving.app", "The spine imports no part"),
        ("serving/router.py", "import labeling.selector", "Parts above parts"),
        ("streaming/worker.py", "import serving.router", "Parts above parts"),
        ("learning/training.py", "import simulation.world", "No real part imports the simulation"),
        ("labeling/worker.py", "import visionloop.cli.app", "No part imports the face"),
    ],
)
def test_a_new_wrong_arrow_breaks_a_contract(tmp_path: Path, module: str, arrow: str, contract: str) -> None:
    for part in PARTS:
        shutil.copytree(PACKAGE_ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PACKAGE_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{arrow}  # noqa: E402\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert f"{contract}" in out.stdout and "BROKEN" in out.stdout
