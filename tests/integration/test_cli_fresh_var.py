"""The learning commands as the README orders them, on a brand-new empty var/, each in its own process.

Every command that writes under var/ must create what it needs: a user's first 'visionloop train' happens on a
machine where nothing made var/runs before it. Budgets are the smallest that run the real code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from visionloop.core.config import PACKAGE_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def visionloop(tmp_path: Path) -> Callable[..., str]:
    var = tmp_path / "var"
    env = {
        **os.environ,
        "COLUMNS": "200",
        "VISIONLOOP_PATHS__VAR_DIR": str(var),
        "VISIONLOOP_WORLD__IMAGE_SIZE": "[96, 96]",
        "VISIONLOOP_TRAINING__IMGSZ": "64",
        "VISIONLOOP_SERVING__IMGSZ": "64",
        "VISIONLOOP_TRAINING__BATCH": "4",
        "VISIONLOOP_TRAINING__EPOCHS": "1",
        "VISIONLOOP_TRAINING__PATIENCE": "0",
        "VISIONLOOP_RAY__NUM_CPUS": "2",
    }

    def run(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "visionloop.cli", *args],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=PACKAGE_ROOT,
            env=env,
        )
        assert out.returncode == 0, f"visionloop {' '.join(args)} failed:\n{out.stderr[-3000:]}"
        assert "Traceback" not in out.stderr, out.stderr[-3000:]
        return out.stdout

    assert not var.exists()
    return run


def test_readme_learning_commands_run_on_an_empty_var(visionloop: Callable[..., str], tmp_path: Path) -> None:
    world, gold = tmp_path / "worldA", tmp_path / "gold"
    visionloop("world", "generate", "--domain", "A", "--seed", "1", "--images", "16", "--out", str(world))
    visionloop("world", "generate", "--domain", "A", "--seed", "2", "--images", "8", "--out", str(gold))
    visionloop("data", "create", "shapes", "--from", str(world))
    visionloop("data", "create", "shapes-gold", "--from", str(gold), "--gold")
    visionloop("train", "--data", "shapes", "--base", "yolov8n.yaml", "--epochs", "1")
    report = json.loads(visionloop("eval", "--model", "champion", "--data", "shapes-gold", "--json"))
    assert report["model"] == "v1" and "map50" in report  # the first trained model became champion
    visionloop("models", "export", "champion", "--format", "torchscript")
    visionloop("models", "export", "v1", "--format", "onnx", "--out", str(tmp_path / "v1.onnx"))
    assert (tmp_path / "var" / "exports" / "v1" / "model.torchscript").is_file()
    assert (tmp_path / "v1.onnx").is_file()
    assert sorted(p.name for p in (tmp_path / "var" / "models" / "v1").iterdir()) == [
        "meta.json",
        "model.int8.onnx",  # made at export, calibrated on the training images
        "model.onnx",
        "model.pt",
    ]
    kfold = json.loads(visionloop("eval", "--model", "champion", "--data", "shapes", "--kfold", "2", "--json"))
    assert kfold["k"] == 2
    trials = json.loads(visionloop("tune", "--data", "shapes", "--trials", "1", "--epochs", "1", "--json"))
    assert len(trials) == 1 and "lr0" in trials[0]
    rows = json.loads(
        visionloop("models", "compare", "--data", "shapes", "--gold", "shapes-gold", "--arch", "yolov8n.yaml", "--json")
    )
    assert [r["architecture"] for r in rows] == ["yolov8n.yaml"]
