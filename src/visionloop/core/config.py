"""Load the layered settings; every problem with them (a file missing, unreadable, not UTF-8 or not YAML, a variable
that names no key or holds no value, a bad value) is one ConfigError naming the key and the file or variable it came
from, and never echoing a value: it may be a secret."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from visionloop.core.errors import ConfigError
from visionloop.core.layout import CHECKOUT_ROOT, shipped_config
from visionloop.core.settings import Settings
from visionloop.core.settings.base import KEYS_CONTEXT

ENV_PREFIX = "VISIONLOOP_"
ENV_NESTING = "__"
# Variables the CLI itself reads that are not settings keys.
ENV_NOT_SETTINGS = frozenset({"VISIONLOOP_CONFIG"})
PACKAGE_ROOT = CHECKOUT_ROOT  # the checkout (tests and scripts find configs/ and pyproject.toml from it)
# configs/default.yaml of a source checkout, else the copy a wheel installs under <prefix>/share.
DEFAULT_CONFIG = shipped_config("default.yaml")


@dataclass(frozen=True)
class Layer:
    """One source of settings: its name for error messages, the nested values it sets and, for the environment,
    which variable set each key path."""

    source: str
    values: dict[str, Any]
    origins: dict[tuple[str, ...], str] = field(default_factory=dict)


# A quoted alias or tag name in PyYAML's message ('<scalar>', ',' and '\\t' say what is wrong and are kept).
QUOTED_NAME = re.compile(r"'(?!<)[^'\s]{3,}'")


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, without PyYAML's snippet of the offending line nor a quoted alias or tag name:
    either may hold a secret. A quoted single character ('\\t') is kept, it says what to fix."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = QUOTED_NAME.sub("'...'", exc.problem or exc.context or "syntax error")
        return f"{problem}{where}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _parse_yaml(text: str, what: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{what} nests too deeply to be read") from None


def _read_text(path: Path, what: str) -> str:
    if not path.exists():
        raise ConfigError(f"{what} does not exist")
    if not path.is_file():
        raise ConfigError(f"{what} is not a file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{what} cannot be read: {exc.strerror or type(exc).__name__}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{what} is not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line}") from None


def _read_yaml(path: Path, named_by: str = "") -> dict[str, Any]:
    what = f"config file '{path}'" + (f" (named by {named_by})" if named_by else "")
    data = _parse_yaml(_read_text(path, what), what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must hold a mapping of sections, not {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    """A value's kind in YAML words, for messages (never the value itself: it may be a secret)."""
    kinds: tuple[tuple[type | tuple[type, ...], str], ...] = (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "text"),
        (Mapping, "a mapping"),
        ((list, tuple), "a list"),
        (type(None), "null"),
    )
    return next((name for types, name in kinds if isinstance(value, types)), type(value).__name__)


def _unwrap_optional(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (Union, UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _annotation_at(path: Sequence[str]) -> Any:
    """The schema's type at a key path (through sections, dict values, list items); None where there is no such key."""
    annotation: Any = Settings
    for part in path:
        annotation = _unwrap_optional(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = annotation.model_fields.get(part)
            if found is None:
                return None
            annotation = found.annotation
        elif get_origin(annotation) in (dict, list):
            annotation = get_args(annotation)[-1]
        else:
            return None
    return annotation


def _is_text(annotation: Any) -> bool:
    inner = _unwrap_optional(annotation)
    if get_origin(inner) is Literal:
        return all(isinstance(arg, str) for arg in get_args(inner))
    return inner in (str, SecretStr, Path)


def _env_path(name: str) -> tuple[str, ...]:
    path = tuple(name[len(ENV_PREFIX) :].lower().split(ENV_NESTING))
    if "" in path:
        raise ConfigError(
            f"environment variable {name} does not name a settings key: write VISIONLOOP_<SECTION>__<KEY>, "
            f"the parts joined by '{ENV_NESTING}'"
        )
    return path


def _env_value(name: str, raw: str, path: tuple[str, ...]) -> Any:
    """A text setting takes the variable verbatim (a token of digits stays text); any other is read as YAML, so
    "16" is 16 and "[a, b]" a list, like a value written in the file. Empty unsets (null)."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{_key(path)}: environment variable {name} is not UTF-8 text") from None
    annotation = _annotation_at(path)
    optional = annotation is not None and _unwrap_optional(annotation) is not annotation
    if not raw.strip() or (optional and raw.strip() in ("null", "Null", "NULL", "~")):
        return None
    if _is_text(annotation):
        return raw
    return _parse_yaml(raw, f"{_key(path)}: the value of environment variable {name}")


def _origin(origins: Mapping[tuple[str, ...], str], path: tuple[str, ...]) -> str | None:
    """The variable that set ``path`` or the section holding it."""
    return next((origins[path[:n]] for n in range(len(path), 0, -1) if path[:n] in origins), None)


def _conflict(layer: Layer, path: tuple[str, ...], name: str) -> ConfigError:
    """A section set whole and a key inside it, or two spellings of one name (the names are case-insensitive)."""
    return ConfigError(f"{_key(path)}: set by both environment variables {_origin(layer.origins, path)} and {name}")


def _place(layer: Layer, path: tuple[str, ...], value: Any, name: str) -> None:
    node = layer.values
    for depth, part in enumerate(path[:-1]):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise _conflict(layer, path[: depth + 1], name)
    if path[-1] in node:
        raise _conflict(layer, path, name)
    node[path[-1]] = value
    layer.origins[path] = name


def _env_layer(environ: Mapping[str, str]) -> Layer:
    layer = Layer("environment (VISIONLOOP_*)", {})
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name in ENV_NOT_SETTINGS:
            continue
        path = _env_path(name)
        _place(layer, path, _env_value(name, raw, path), name)
    return layer


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_path(values: Mapping[str, Any], path: tuple[Any, ...]) -> bool:
    node: Any = values
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _env_source(layer: Layer, loc: tuple[Any, ...]) -> str:
    path = tuple(str(p) for p in loc)
    exact = _origin(layer.origins, path)
    if exact is not None:
        return f"environment variable {exact}"
    inside = sorted(name for key, name in layer.origins.items() if key[: len(path)] == path)
    if not inside:
        return layer.source
    return "environment variable" + ("s " if len(inside) > 1 else " ") + ", ".join(inside)


def _source_of(layers: list[Layer], loc: tuple[Any, ...]) -> str:
    """The last layer that sets the key (or its closest parent) is the one to blame."""
    for depth in range(len(loc), 0, -1):
        for layer in reversed(layers):
            if _has_path(layer.values, loc[:depth]):
                return _env_source(layer, loc[:depth]) if layer.origins else layer.source
    return layers[0].source


def _key(loc: Sequence[Any]) -> str:
    """``serving.max_batch_size``, ``model.class_names[0]``: the key path as a user writes it."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) and key else f".{part}" if key else str(part)
    return key or "<root>"


def _unknown_key(loc: tuple[Any, ...]) -> str:
    section = _unwrap_optional(_annotation_at([str(p) for p in loc[:-1]]))
    if not (isinstance(section, type) and issubclass(section, BaseModel)):
        return "unknown key"
    close = difflib.get_close_matches(str(loc[-1]), list(section.model_fields), n=1)
    return f"unknown key; did you mean '{close[0]}'?" if close else "unknown key"


def _message(error: Any) -> str:
    """Pydantic's words for one error, never the input: that may be a secret; its kind (a mapping, text) is safe."""
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        return _unknown_key(loc)
    if loc and loc[-1] == "[key]":
        return f"the key itself: {error['msg']}"
    if error["type"].endswith("_type"):
        return f"{error['msg']}, not {_kind(error['input'])}"
    if error["type"] == "too_short" and isinstance(error["input"], str | SecretStr):  # a secret: pydantic says "items"
        return f"should have at least {error['ctx']['min_length']} characters"
    return str(error["msg"])


def _problem(error: Any, layers: list[Layer]) -> str:
    """One line: the key, what is wrong, where it came from. A check across sections (Settings' model validators)
    has no key of its own: its message names the keys, and each key's source is given."""
    keys = (error.get("ctx") or {}).get(KEYS_CONTEXT)
    if keys:
        sources = ", ".join(f"{key} from {_source_of(layers, tuple(key.split('.')))}" for key in keys)
        return f"  {error['msg']} ({sources})"
    loc = tuple(p for p in error["loc"] if p != "[key]")
    return f"  {_key(loc)}: {_message(error)} (from {_source_of(layers, loc)})"


def _describe(exc: ValidationError, layers: list[Layer]) -> str:
    return "invalid settings:\n" + "\n".join(_problem(error, layers) for error in exc.errors())


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
    named_by = ""
    if user_config is None and env.get("VISIONLOOP_CONFIG"):
        user_config, named_by = Path(env["VISIONLOOP_CONFIG"]), "VISIONLOOP_CONFIG"
    layers = [Layer(str(default_config), _read_yaml(default_config))]
    if user_config is not None:
        layers.append(Layer(str(user_config), _read_yaml(user_config, named_by)))
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
        lines = [f"  {_key(loc)}: {message} (from {_source_of(layers, loc)})" for loc, message in problems]
        raise ConfigError("invalid settings:\n" + "\n".join(lines))
    return settings
