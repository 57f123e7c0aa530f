from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def module_var_dir(tmp_path_factory: pytest.TempPathFactory, model_registry_template: Path) -> Path:
    """A var/ shared by one test module (one Ray cluster per module), with the champion registered."""
    target = tmp_path_factory.mktemp("var")
    shutil.copytree(model_registry_template / "models", target / "models")
    shutil.copytree(model_registry_template / "ultralytics", target / "ultralytics")
    return target
