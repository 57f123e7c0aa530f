"""The layering of the house is enforced: import-linter's contracts hold, and a new wrong arrow breaks them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from visionloop.core.config import PACKAGE_ROOT

SRC = PACKAGE_ROOT / "src"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((PACKAGE_ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=120,
    )


def test_the_wheel_has_one_top_level_package() -> None:
    assert sorted(p.name for p in SRC.iterdir() if not p.name.endswith(".egg-info")) == ["visionloop"]


def test_every_part_is_named_by_the_contracts() -> None:
    parts = {f"visionloop.{p.name}" for p in (SRC / "visionloop").iterdir() if (p / "__init__.py").is_file()}
    named = {str(m) for c in _contracts() for key in ("source_modules", "forbidden_modules") for m in c.get(key, [])}  # type: ignore[attr-defined]
    assert parts - {"visionloop.core"} <= named | {"visionloop.cli"}, parts - named


def test_the_layering_contracts_hold() -> None:
    out = _lint(PACKAGE_ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert f"{len(_contracts())} kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "arrow", "contract"),
    [
        ("core/errors.py", "import visionloop.serving.app", "The core imports no part"),
        ("core/contracts.py", "import visionloop.monitoring.drift_stats", "The core imports no part"),
        ("serving/router.py", "import visionloop.labeling.selector", "Parts above parts"),
        ("streaming/worker.py", "import visionloop.serving.router", "Parts above parts"),
        ("learning/training.py", "import visionloop.simulation.world", "No real part imports the simulation"),
        ("labeling/worker.py", "import visionloop.cli.app", "No part imports the face"),
        ("learning/loop.py", "import visionloop.monitoring.accuracy", "never import monitoring"),
        ("cli/app.py", "import visionloop.dashboards.app", "Nothing imports the dashboards"),
    ],
)
def test_a_new_wrong_arrow_breaks_a_contract(tmp_path: Path, module: str, arrow: str, contract: str) -> None:
    shutil.copytree(SRC, tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(PACKAGE_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src" / "visionloop" / module
    target.write_text(target.read_text() + f"\n{arrow}  # noqa: E402\n")
    out = _lint(tmp_path)
    assert out.returncode != 0
    assert contract in out.stdout and "BROKEN" in out.stdout
