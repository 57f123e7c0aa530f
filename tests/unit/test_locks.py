"""The locks install on a machine that has never seen them: index pins only, checked by scripts/check_lock.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from visionloop.core.config import PACKAGE_ROOT
from visionloop.labeling.label_studio_server import LABEL_STUDIO_LOCK, LABEL_STUDIO_VERSION

CHECK = PACKAGE_ROOT / "scripts" / "check_lock.py"


def _check(*locks: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(CHECK), *map(str, locks)], capture_output=True, text=True, timeout=60)


def test_the_project_locks_hold_index_pins_only() -> None:
    out = _check(PACKAGE_ROOT / "requirements.lock", LABEL_STUDIO_LOCK)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(
    "line",
    [
        "playwright @ file:///tmp/vl/pw/playwright-1.65.2-py3-none-manylinux1_x86_64.whl#sha256=5893",
        "torch @ https://download.example/torch-2.14.1.whl",
        "-e git+https://example.org/repo.git#egg=thing",
        "./wheels/thing-1.0-py3-none-any.whl",
        "numpy>=2.0",
        "numpy",
    ],
)
def test_a_line_a_fresh_machine_cannot_install_is_refused_by_number(tmp_path: Path, line: str) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"# a comment\nsix==1.17.0\n\n{line}\nidna==3.20\n")
    out = _check(lock)
    assert out.returncode == 1
    assert f"{lock}:4: {line}" in out.stderr


def test_the_label_studio_lock_pins_the_version_the_server_runs() -> None:
    pins = dict(
        line.split("==", 1) for line in LABEL_STUDIO_LOCK.read_text().splitlines() if line and not line.startswith("#")
    )
    assert pins["label-studio"] == LABEL_STUDIO_VERSION
