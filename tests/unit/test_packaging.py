"""What `pip install .` installs: one top-level import package, with the data files the parts read at run time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from visionloop.core.config import PACKAGE_ROOT


def test_the_wheel_holds_one_top_level_package_and_its_data(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy: the build writes build/ and egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(PACKAGE_ROOT / name, source / name)
    shutil.copytree(PACKAGE_ROOT / "configs", source / "configs")
    shutil.copytree(PACKAGE_ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # No build isolation: the locked setuptools builds it, so the test needs no package index.
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), "."],
        cwd=source,
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("visionloop-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert packages == {"visionloop"}
    top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(top_level).decode().split() == ["visionloop"]
    for data in (
        "visionloop/py.typed",
        "visionloop/labeling/label-studio.lock",
        "visionloop/streaming/webrtc/page/index.html",
        "visionloop/dashboards/alerts.yml",
        "visionloop/dashboards/app.py",
        "visionloop/simulation/shipped/bootstrap.pt",  # the shipped bootstrap model and its card
        "visionloop/simulation/shipped/bootstrap-card.json",
    ):
        assert data in names, data
    assert any(n.endswith("share/visionloop/configs/default.yaml") for n in names)


def test_an_installed_copy_finds_the_shipped_configs_in_its_shared_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visionloop.core import layout

    site = tmp_path / "site-packages"  # no checkout around an installed copy
    shared = tmp_path / "share" / "visionloop"
    (shared / "configs").mkdir(parents=True)
    (shared / "configs" / "domains.yaml").write_text("{}")
    monkeypatch.setattr(layout, "CHECKOUT_ROOT", site)
    monkeypatch.setattr(layout, "SHARED_DATA", shared)
    assert layout.shipped_config("domains.yaml") == shared / "configs" / "domains.yaml"
    assert layout.shipped_config("missing.yaml") == site / "configs" / "missing.yaml"  # the error names a place
    assert layout.project_path(Path("/etc/x.yaml")) == Path("/etc/x.yaml")
    monkeypatch.setattr(layout, "CHECKOUT_ROOT", PACKAGE_ROOT)
    assert layout.shipped_config("domains.yaml") == PACKAGE_ROOT / "configs" / "domains.yaml"  # a checkout wins
