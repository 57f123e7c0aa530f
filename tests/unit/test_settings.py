from __future__ import annotations

from contextlib import ExitStack as DoesNotRaise
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from visionloop.cli.plugins import PLUGIN_CHECKS
from visionloop.core.config import DEFAULT_CONFIG, load_settings
from visionloop.core.errors import ConfigError
from visionloop.core.settings import Settings


def _schema_keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _schema_keys(annotation, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


def _yaml_keys(data: dict[str, Any], model: type[BaseModel] = Settings, prefix: str = "") -> set[str]:
    """Keys of the YAML, walking into sections only where the schema has a section (a dict setting is a leaf)."""
    keys = set()
    for name, value in data.items():
        field = model.model_fields.get(name)
        section = field.annotation if field is not None else None
        if isinstance(value, dict) and isinstance(section, type) and issubclass(section, BaseModel):
            keys |= _yaml_keys(value, section, f"{prefix}{name}.")
        else:
            keys.add(f"{prefix}{name}")
    return keys


# Keys default.yaml only shows commented out: set there, they would stop following their one source.
FOLLOWERS = {"loop.labels_dataset": "labeling.dataset_name"}


def test_default_yaml_lists_every_setting_and_nothing_else() -> None:
    text = DEFAULT_CONFIG.read_text()
    assert _yaml_keys(yaml.safe_load(text)) == _schema_keys(Settings) - set(FOLLOWERS)
    for key, source in FOLLOWERS.items():
        assert f"# {key.rsplit('.', 1)[-1]}:" in text and source in text


def test_default_yaml_matches_schema_defaults() -> None:
    assert load_settings(environ={}) == Settings()


def test_every_field_has_a_description() -> None:
    def walk(model: type[BaseModel]) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                missing += walk(field.annotation)
        return missing

    assert walk(Settings) == []


def test_layers_apply_in_order(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("serving:\n  max_batch_size: 4\n  imgsz: 640\n")
    settings = load_settings(user, environ={"VISIONLOOP_SERVING__IMGSZ": "416"})
    assert settings.serving.max_batch_size == 4  # from the user file
    assert settings.serving.imgsz == 416  # the environment wins over the file
    assert settings.serving.backend == "onnxruntime"  # untouched default


def test_config_file_can_come_from_environment(tmp_path: Path) -> None:
    user = tmp_path / "user.yaml"
    user.write_text("api:\n  port: 9999\n")
    assert load_settings(environ={"VISIONLOOP_CONFIG": str(user)}).api.port == 9999


@pytest.mark.parametrize(
    ("yaml_text", "env", "expected_fragments"),
    [
        (
            "serving:\n  max_bach_size: 4\n",
            {},
            ["serving.max_bach_size", "unknown key; did you mean 'max_batch_size'?", "user.yaml"],
        ),
        ("api:\n  token: short\n", {}, ["api.token: should have at least 8 characters (from", "user.yaml"]),
        ("api:\n  port: 70000\n", {}, ["api.port", "user.yaml"]),
        ("", {"VISIONLOOP_SERVING__BACKEND": "tensorrt"}, ["serving.backend", "VISIONLOOP_SERVING__BACKEND"]),
        ("", {"VISIONLOOP_REDIS__NOPE": "1"}, ["redis.nope", "unknown key", "VISIONLOOP_REDIS__NOPE"]),
        (
            "serving:\n  max_batch_size: 32\n  max_ongoing_requests: 40\n",
            {},
            ["max_ongoing_requests (40) must be >= 2 x max_batch_size (32)", "user.yaml"],
        ),
        ("serving:\n  imgsz: 300\n", {}, ["multiple of 32"]),
        ("- just\n- a list\n", {}, ["must hold a mapping"]),
        ("serving: [\n", {}, ["not valid YAML"]),
    ],
)
def test_bad_settings_name_the_key_and_source(
    tmp_path: Path, yaml_text: str, env: dict[str, str], expected_fragments: list[str]
) -> None:
    user = tmp_path / "user.yaml"
    user.write_text(yaml_text)
    with pytest.raises(ConfigError) as excinfo:
        load_settings(user, environ=env, checks=PLUGIN_CHECKS)  # backend names are checked against the registry
    for fragment in expected_fragments:
        assert fragment in str(excinfo.value)


@pytest.mark.parametrize(
    ("path_exists", "expectation"),
    [(True, DoesNotRaise()), (False, pytest.raises(ConfigError, match="does not exist"))],
)
def test_missing_user_config_is_an_error(tmp_path: Path, path_exists: bool, expectation: Any) -> None:
    user = tmp_path / "user.yaml"
    if path_exists:
        user.write_text("{}\n")
    with expectation:
        load_settings(user, environ={})


def test_token_is_masked_in_output() -> None:
    settings = load_settings(environ={"VISIONLOOP_API__TOKEN": "super-secret-token"})
    assert settings.api.token.get_secret_value() == "super-secret-token"
    assert "super-secret-token" not in str(settings.masked())
    assert settings.masked()["api"]["token"] == "**********"
