"""The CLI as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "visionloop.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=60,
    )


def test_config_show_json_masks_the_token() -> None:
    out = _run("config", "show", "--json", env={"VISIONLOOP_API__TOKEN": "hunter2-hunter2"})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["api"]["token"] == "**********"
    assert "hunter2" not in out.stdout
    assert data["serving"]["max_ongoing_requests"] >= 2 * data["serving"]["max_batch_size"]


def test_config_show_yaml_applies_the_user_file(tmp_path: Path) -> None:
    user = tmp_path / "mine.yaml"
    user.write_text("serving:\n  imgsz: 640\n")
    out = _run("--config", str(user), "config", "show")
    assert out.returncode == 0, out.stderr
    assert "imgsz: 640" in out.stdout


def test_unknown_key_fails_naming_key_and_file(tmp_path: Path) -> None:
    user = tmp_path / "typo.yaml"
    user.write_text("serving:\n  replicaz: 2\n")
    out = _run("--config", str(user), "config", "show")
    assert out.returncode == 2
    message = " ".join((out.stdout + out.stderr).split())
    assert "serving.replicaz" in message and "unknown key" in message and "typo.yaml" in message


def test_models_list_on_a_registry(var_dir: Path) -> None:
    out = _run("models", "list", "--json", env={"VISIONLOOP_PATHS__VAR_DIR": str(var_dir)})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["pointers"]["champion"] == "v1"
    assert data["versions"][0]["source"] == "untrained"


def test_promote_reject_rollback_and_history_from_the_shell(var_dir: Path) -> None:
    from visionloop.core.registry import ModelRegistry, Role

    env = {"VISIONLOOP_PATHS__VAR_DIR": str(var_dir), "VISIONLOOP_REDIS__EMBEDDED_PORT": "1"}  # no Redis: queued
    registry = ModelRegistry(var_dir / "models")
    v1 = registry.get("v1")
    for _ in range(2):
        registry.register(v1.onnx_path, v1.torch_path, meta={"source": "test"})
    registry.set_pointer(Role.SHADOW, "v2")
    refused = _run("models", "promote", env=env)
    assert refused.returncode != 0 and "no PROMOTE verdict" in " ".join((refused.stdout + refused.stderr).split())
    out = _run("models", "promote", "--force", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["pointers"] == {"champion": "v2", "shadow": None}
    assert _run("models", "reject", "v3", env=env).returncode == 0
    out = _run("models", "rollback", "--json", env=env)
    assert json.loads(out.stdout)["to"] == "v1", out.stderr
    history = json.loads(_run("models", "history", "--json", env=env).stdout)
    actions = [(c["action"], c["to"], c["by"].startswith("cli:")) for c in history["changes"]]
    assert actions[-2:] == [("promote", "v2", True), ("rollback", "v1", True)]
    roles = {v["version"]: v["role"] for v in history["versions"]}
    assert roles == {"v1": "champion", "v2": "rejected", "v3": "rejected"}
    pending = [json.loads(line)["kind"] for line in (var_dir / "events.pending.jsonl").read_text().splitlines()]
    assert {"model_promoted", "model_rejected", "model_rolled_back"} <= set(pending)
    table = _run("models", "history", env=env)
    assert table.returncode == 0 and "rollback" in table.stdout, table.stderr


def test_world_and_data_commands_chain(tmp_path: Path) -> None:
    env = {"VISIONLOOP_PATHS__VAR_DIR": str(tmp_path / "var")}
    out = _run(
        "world", "generate", "--domain", "B", "--seed", "3", "--images", "12", "--out", str(tmp_path / "w"), env=env
    )
    assert out.returncode == 0, out.stderr
    assert len(list((tmp_path / "w" / "images").glob("*.jpg"))) == 12
    out = _run("data", "create", "night", "--from", str(tmp_path / "w"), env=env)
    assert out.returncode == 0, out.stderr
    assert "night/v1" in out.stderr
    listing = json.loads(_run("data", "list", "--json", env=env).stdout)
    assert listing[0]["ref"] == "night/v1"
    assert sum(c["images"] for c in listing[0]["counts"].values()) == 12
    assert _run("data", "verify", "night", env=env).returncode == 0
    out = _run("world", "generate", "--domain", "Z", "--out", str(tmp_path / "z"), env=env)
    assert out.returncode == 2 and "unknown domain 'Z'" in " ".join((out.stdout + out.stderr).split())


def test_world_video_command(tmp_path: Path) -> None:
    out = _run("world", "video", "--domain", "A", "--seconds", "0.5", "--fps", "10", "--out", str(tmp_path / "a.mp4"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.mp4").stat().st_size > 1000
    assert len((tmp_path / "a.mp4.jsonl").read_text().splitlines()) == 5


def test_models_quantize_registers_an_int8_copy(var_dir: Path, tmp_path: Path) -> None:
    from tests.unit.test_quantize import tiny_dataset

    data = tiny_dataset(tmp_path / "data", images=3)
    env = {"VISIONLOOP_PATHS__VAR_DIR": str(var_dir), "VISIONLOOP_SERVING__INT8_CALIBRATION_IMAGES": "3"}
    out = _run("models", "quantize", "v1", "--data", str(data), "--gold", str(data), env=env)
    assert out.returncode == 0, out.stderr
    assert "registered v2: v1 with model.int8.onnx" in out.stdout and "gold mAP50: fp32" in out.stdout
    assert (var_dir / "models" / "v2" / "model.int8.onnx").is_file()
    missing = _run("models", "quantize", "v1", env={"VISIONLOOP_PATHS__VAR_DIR": str(var_dir)})
    assert missing.returncode != 0 and "pass --data" in missing.stdout + missing.stderr  # v1 names no training set
