"""Load the layered settings and turn validation failures into errors that name the key and its source."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from visionloop.errors import ConfigError
from visionloop.settings import Settings

ENV_PREFIX = "VISIONLOOP_"
ENV_NESTING = "__"
# Variables the CLI itself reads that are not settings keys.
ENV_NOT_SETTINGS = frozenset({"VISIONLOOP_CONFIG"})
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


def _default_config() -> Path:
    """configs/default.yaml of a source checkout, else the copy a wheel installs under <prefix>/share."""
    in_checkout = PACKAGE_ROOT / "configs" / "default.yaml"
    if in_checkout.is_file():
        return in_checkout
    return Path(sys.prefix) / "share" / "visionloop" / "configs" / "default.yaml"


DEFAULT_CONFIG = _default_config()


@dataclass(frozen=True)
class Layer:
    """One source of settings: its name for error messages and the nested values it sets."""

    source: str
    values: dict[str, Any]


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file '{path}' is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of sections, not {type(data).__name__}")
    return data


def _env_layer(environ: Mapping[str, str]) -> Layer:
    values: dict[str, Any] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        path = name[len(ENV_PREFIX) :].lower().split(ENV_NESTING)
        node = values
        for part in path[:-1]:
            node = node.setdefault(part, {})
        # YAML parsing turns "16" into 16 and "[a, b]" into a list, like a value written in the file.
        node[path[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return Layer("environment (VISIONLOOP_*)", values)


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_path(values: Mapping[str, Any], path: tuple[str | int, ...]) -> bool:
    node: Any = values
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _value_at(values: Mapping[str, Any], path: tuple[str | int, ...]) -> Any:
    node: Any = values
    for part in path:
        node = node[part]
    return node


def _source_of(layers: list[Layer], loc: tuple[str | int, ...]) -> str:
    """The last layer that sets the key (or its closest parent) is the one to blame."""
    for depth in range(len(loc), 0, -1):
        for layer in reversed(layers):
            if _has_path(layer.values, loc[:depth]):
                if not layer.source.startswith("environment"):
                    return layer.source
                name = ENV_PREFIX + ENV_NESTING.join(str(p).upper() for p in loc[:depth])
                exact = depth == len(loc) and not isinstance(_value_at(layer.values, loc), Mapping)
                return f"environment variable {name}" if exact else f"environment variables {name}{ENV_NESTING}*"
    return layers[0].source


def _describe(exc: ValidationError, layers: list[Layer]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = ".".join(str(p) for p in loc) or "<root>"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"  {key}: {message} (from {_source_of(layers, loc)})")
    return "invalid settings:\n" + "\n".join(lines)


# A check the schema cannot make itself (names that only the parts' registries know): it returns, for each bad
# value, the key's location and what is wrong. The face passes the parts' checks; the source is found here.
SettingsCheck = Callable[[Settings], list[tuple[tuple[str, ...], str]]]


def load_settings(
    user_config: Path | None = None,
    environ: Mapping[str, str] | None = None,
    default_config: Path = DEFAULT_CONFIG,
    checks: Sequence[SettingsCheck] = (),
) -> Settings:
    """Validate defaults, then the user's YAML, then ``VISIONLOOP_*`` variables, later layers winning; then run
    ``checks``. Every problem names the key and the file or environment variable it came from."""
    env = os.environ if environ is None else environ
    if user_config is None and env.get("VISIONLOOP_CONFIG"):
        user_config = Path(env["VISIONLOOP_CONFIG"])
    layers = [Layer(str(default_config), _read_yaml(default_config))]
    if user_config is not None:
        layers.append(Layer(str(user_config), _read_yaml(user_config)))
    layers.append(_env_layer(env))
    merged: dict[str, Any] = {}
    for layer in layers:
        merged = _deep_merge(merged, layer.values)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, layers)) from None
    problems = [problem for check in checks for problem in check(settings)]
    if problems:
        lines = [f"  {'.'.join(loc)}: {message} (from {_source_of(layers, loc)})" for loc, message in problems]
        raise ConfigError("invalid settings:\n" + "\n".join(lines))
    return settings
