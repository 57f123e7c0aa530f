"""Fuzzed configuration: every invalid settings file or ``VISIONLOOP_*`` variable is one ``ConfigError`` that names
the key and where it came from (file path or variable), never a traceback and never a secret's value; valid
values still load.

The invalid values are built from the schema itself (``Settings.model_fields``, walked recursively): a real key path
gets a wrong-typed, out-of-range or garbage value, or an invented key is added, and the result is written as a
YAML file or as an environment variable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import UnionType
from typing import Any, Literal, TypeGuard, Union, get_args, get_origin

import annotated_types
import pytest
import yaml
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

from tests.reliability import record_reliability
from visionloop.core.config import load_settings
from visionloop.core.errors import ConfigError
from visionloop.core.settings import Settings

FUZZ = hsettings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
FIGURES: Counter[str] = Counter()
TEXT_KINDS = frozenset({"str", "secret", "path"})  # read verbatim from a variable
NULLS = frozenset({"null", "Null", "NULL", "~"})


@dataclass(frozen=True)
class Leaf:
    """One setting of the schema (not a section): its key path, type and constraints."""

    path: tuple[str, ...]
    kind: str
    annotation: Any
    optional: bool
    bounds: tuple[tuple[str, float], ...]
    min_length: int | None
    pattern: str | None

    @property
    def key(self) -> str:
        return ".".join(self.path)

    @property
    def env(self) -> str:
        return "VISIONLOOP_" + "__".join(part.upper() for part in self.path)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    args = get_args(annotation)
    if get_origin(annotation) in (Union, UnionType) and type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return annotation, False


def _is_section(annotation: Any) -> TypeGuard[type[BaseModel]]:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _kind(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is list:
        return "list_model" if _is_section(get_args(annotation)[0]) else "list_str"
    if origin in (Literal, dict, tuple):
        return {Literal: "literal", dict: "dict", tuple: "tuple"}[origin]
    return {bool: "bool", int: "int", float: "float", str: "str", SecretStr: "secret", Path: "path"}[annotation]


def _sections(
    model: type[BaseModel] = Settings, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], type[BaseModel]]]:
    yield prefix, model
    for name, field in model.model_fields.items():
        section = field.annotation
        if _is_section(section):
            yield from _sections(section, (*prefix, name))


def _leaf(path: tuple[str, ...], info: Any) -> Leaf:
    annotation, optional = _unwrap(info.annotation)
    bounds = []
    min_length, pattern = None, None
    for meta in info.metadata:
        for name in ("gt", "ge", "lt", "le"):
            if isinstance(meta, getattr(annotated_types, name.capitalize())):
                bounds.append((name, getattr(meta, name)))
        min_length = getattr(meta, "min_length", min_length)
        pattern = getattr(meta, "pattern", pattern)
    return Leaf(path, _kind(annotation), annotation, optional, tuple(bounds), min_length, pattern)


LEAVES = [
    _leaf((*prefix, name), info)
    for prefix, model in _sections()
    for name, info in model.model_fields.items()
    if not _is_section(info.annotation)
]
SECTION_PATHS = [prefix for prefix, _ in _sections() if prefix]

# --- invalid values -------------------------------------------------------------------------------------------------

GARBAGE = st.sampled_from(["abc", "ten", "12abc", "1.2.3", "--", "x y", "0x", "nope!"])  # no YAML/pydantic number
MAPPING = st.dictionaries(st.sampled_from(["a", "b", "nested"]), st.lists(st.integers(0, 9), max_size=2), min_size=1)
INTS = st.lists(st.integers(0, 9), min_size=1, max_size=3)
FINITE = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6)


def _wrong_type(leaf: Leaf) -> st.SearchStrategy[Any]:
    """Values of the wrong shape: a mapping where a scalar goes, a scalar where a list goes, text for a number."""
    by_kind: dict[str, list[st.SearchStrategy[Any]]] = {
        "int": [GARBAGE, MAPPING, INTS, st.booleans(), st.integers(-1000, 1000).map(lambda n: n + 0.5)],
        "float": [GARBAGE, MAPPING, INTS, st.booleans()],
        "bool": [GARBAGE, MAPPING, INTS, st.integers(2, 10**6)],
        "literal": [GARBAGE, st.integers(), MAPPING, INTS],
        "list_str": [st.integers(), GARBAGE, MAPPING, st.lists(MAPPING, min_size=1, max_size=2)],
        "list_model": [st.integers(), GARBAGE, MAPPING, INTS],
        "dict": [st.integers(), GARBAGE, INTS, MAPPING.map(lambda m: {k: [1, 2] for k in m})],
        "tuple": [st.integers(), GARBAGE, MAPPING],
    }
    options = by_kind.get(leaf.kind, [st.integers(), FINITE, st.booleans(), MAPPING, INTS])  # the text kinds
    if leaf.kind == "tuple":
        size = len(get_args(leaf.annotation))
        options.append(st.lists(st.integers(0, 9), max_size=size + 2).filter(lambda v: len(v) != size))
    if not leaf.optional:
        options.append(st.none())
    return st.one_of(options)


def _past(bound: float, sign: int, delta: float) -> float:
    return bound + sign * delta


def _out_of_range(leaf: Leaf) -> list[st.SearchStrategy[Any]]:
    """Values just past (or on) each bound of a number, too short text or lists, text off a pattern."""
    delta: st.SearchStrategy[Any] = st.integers(1, 10**6) if leaf.kind == "int" else st.floats(1e-3, 1e6)
    options: list[st.SearchStrategy[Any]] = []
    for name, bound in leaf.bounds:
        sign = -1 if name in ("gt", "ge") else 1
        options.append(delta.map(partial(_past, bound, sign)))
        if name in ("gt", "lt"):
            options.append(st.just(bound))
    if leaf.min_length:
        empty: Any = [] if leaf.kind.startswith("list") else ""
        short = st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=leaf.min_length - 1)
        options.append(st.just(empty) if empty == [] else short)
    if leaf.pattern:
        options.append(st.from_regex(r"[a-z]{0,4}[ !@#/:]{1,3}[a-z]{0,4}", fullmatch=True))
    return options


def _invalid(leaf: Leaf) -> st.SearchStrategy[Any]:
    return st.one_of([_wrong_type(leaf), *_out_of_range(leaf)])


def _survives_env(leaf: Leaf, value: Any) -> bool:
    """A text setting takes a variable verbatim, so only text (or an empty variable, null) can be wrong there."""
    return leaf.kind not in TEXT_KINDS or isinstance(value, str) or (value is None and not leaf.optional)


def _env_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


# --- helpers ----------------------------------------------------------------------------------------------------------


def _secret_values(secret: str) -> dict[str, Any]:
    """Every secret-bearing setting set to (or around) ``secret``: no error may echo it."""
    return {
        "api": {"token": secret, "named_tokens": {"ci": f"other-{secret}"}},
        "labeling": {"webhook_secret": secret, "label_studio_token": secret},
        "redis": {"url": f"redis://:{secret}@127.0.0.1:6390/0"},
        "webrtc": {"ice_servers": [{"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": secret}]},
    }


def _secret_env(secret: str) -> dict[str, str]:
    values = _secret_values(secret)
    return {
        "VISIONLOOP_API__TOKEN": secret,
        "VISIONLOOP_LABELING__WEBHOOK_SECRET": secret,
        "VISIONLOOP_LABELING__LABEL_STUDIO_TOKEN": secret,
        "VISIONLOOP_REDIS__URL": values["redis"]["url"],
        "VISIONLOOP_WEBRTC__ICE_SERVERS": json.dumps(values["webrtc"]["ice_servers"]),
    }


def _set(config: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    node = config
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value
    return config


SECRETS = st.text("abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=10, max_size=16).map(
    lambda s: f"S3cr3t{s}"
)


def _expect_clear_error(load: Callable[[], Settings], fragments: list[str], secret: str | None = None) -> str:
    """The load fails with exactly a ConfigError whose message holds every fragment, no traceback, no secret."""
    FIGURES["invalid_configs"] += 1
    try:
        load()
    except ConfigError as exc:
        error: Exception = exc
    except Exception as exc:
        FIGURES["tracebacks"] += 1
        raise AssertionError(f"{type(exc).__name__} escaped instead of a ConfigError: {exc}") from exc
    else:
        FIGURES["invalid_accepted"] += 1
        raise AssertionError(f"an invalid configuration loaded; expected an error naming {fragments}")
    message = str(error)
    assert type(error) is ConfigError
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{missing} not in: {message}"
    assert "Traceback" not in message and 'File "' not in message, message
    if secret is not None and secret in message:
        FIGURES["secret_leaks"] += 1
        raise AssertionError(f"the secret is echoed: {message}")
    FIGURES["clear_errors"] += 1
    return message


def _problem_lines(message: str) -> list[str]:
    return [line for line in message.splitlines()[1:] if line.startswith("  ")]


@pytest.fixture(scope="module", autouse=True)
def _record() -> Iterator[None]:
    FIGURES.clear()
    started = time.monotonic()
    yield
    record_reliability(
        "config_fuzz",
        {
            "invalid_configs": FIGURES["invalid_configs"],
            "clear_errors": FIGURES["clear_errors"],
            "tracebacks": FIGURES["tracebacks"],
            "invalid_accepted": FIGURES["invalid_accepted"],
            "secret_leaks": FIGURES["secret_leaks"],
            "valid_configs_loaded": FIGURES["valid_configs_loaded"],
            "cli_cases": FIGURES["cli_cases"],
            "schema_leaves": len(LEAVES),
            "seconds": round(time.monotonic() - started, 1),
        },
    )


@pytest.fixture(scope="module")
def user_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config_fuzz") / "user.yaml"


def _write(path: Path, config: Any) -> Path:
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


# --- invalid values in the file and in variables ------------------------------------------------------------------


@st.composite
def leaf_and_invalid(draw: st.DrawFn, for_env: bool = False) -> tuple[Leaf, Any]:
    leaf = draw(st.sampled_from(LEAVES))
    value = draw(_invalid(leaf))
    if for_env:
        assume(_survives_env(leaf, value))
    return leaf, value


def test_the_schema_walk_finds_every_kind_of_setting() -> None:
    kinds = Counter(leaf.kind for leaf in LEAVES)
    assert set(kinds) == {"int", "float", "bool", "str", "secret", "path", "literal", "list_str", "list_model"} | {
        "dict",
        "tuple",
    }
    assert len(LEAVES) > 150 and any(leaf.path == ("serving", "max_batch_size") for leaf in LEAVES)


@hsettings(FUZZ, max_examples=120)
@given(case=leaf_and_invalid(), secret=SECRETS)
def test_invalid_value_in_file_names_key_and_file(user_file: Path, case: tuple[Leaf, Any], secret: str) -> None:
    leaf, value = case
    _write(user_file, _set(_secret_values(secret), leaf.path, value))
    message = _expect_clear_error(
        lambda: load_settings(user_file, environ={}), [leaf.key, str(user_file)], secret=secret
    )
    assert all(line.startswith(f"  {leaf.key}") for line in _problem_lines(message)), message  # no collateral


@hsettings(FUZZ, max_examples=100)
@given(case=leaf_and_invalid(for_env=True), secret=SECRETS)
def test_invalid_value_in_variable_names_key_and_variable(case: tuple[Leaf, Any], secret: str) -> None:
    leaf, value = case
    env = {**_secret_env(secret), leaf.env: _env_text(value)}
    message = _expect_clear_error(lambda: load_settings(environ=env), [leaf.key, leaf.env], secret=secret)
    assert all(line.startswith(f"  {leaf.key}") for line in _problem_lines(message)), message


KEY_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(lambda k: "__" not in k)


@hsettings(FUZZ, max_examples=50)
@given(section=st.sampled_from([(), *SECTION_PATHS]), name=KEY_NAMES, in_env=st.booleans(), secret=SECRETS)
def test_unknown_key_names_key_and_source(
    user_file: Path, section: tuple[str, ...], name: str, in_env: bool, secret: str
) -> None:
    model = dict(_sections())[section]
    assume(name not in model.model_fields and (section or name != "config"))  # VISIONLOOP_CONFIG names the file
    path = (*section, name)
    key = ".".join(path)
    if in_env:
        var = "VISIONLOOP_" + "__".join(p.upper() for p in path)
        env = {**_secret_env(secret), var: "1"}
        _expect_clear_error(lambda: load_settings(environ=env), [key, "unknown key", var], secret=secret)
    else:
        _write(user_file, _set(_secret_values(secret), path, 1))
        _expect_clear_error(
            lambda: load_settings(user_file, environ={}), [key, "unknown key", str(user_file)], secret=secret
        )


@hsettings(FUZZ, max_examples=30)
@given(section=st.sampled_from(SECTION_PATHS), value=st.one_of(st.integers(), GARBAGE, INTS), in_env=st.booleans())
def test_scalar_or_list_where_a_section_belongs(
    user_file: Path, section: tuple[str, ...], value: Any, in_env: bool
) -> None:
    key = ".".join(section)
    if in_env:
        var = "VISIONLOOP_" + "__".join(p.upper() for p in section)
        message = _expect_clear_error(lambda: load_settings(environ={var: _env_text(value)}), [key, var])
    else:
        _write(user_file, _set({}, section, value))
        message = _expect_clear_error(lambda: load_settings(user_file, environ={}), [key, str(user_file)])
    assert "valid dictionary" in message


# --- broken files and variables -------------------------------------------------------------------------------------

SYNTAX_BREAKS = [
    "broken: [1, 2\n",
    'broken: "{secret}\n',
    "broken: {{a: 1\n",
    "broken: a: b\n",
    "\tbroken: 1\n",
    "broken: !!python/object/apply:os.system [echo]\n",
    "broken: *undefined_alias\n",
]
BAD_BYTES = [b"\xff", b"\xfe\xfe", b"\x80", b"\xc3(", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]


@st.composite
def broken_file(draw: st.DrawFn, secret: str) -> tuple[bytes, str]:
    """A file that is not a settings mapping: bad YAML syntax, non-UTF-8 bytes, or a top level of another kind."""
    text = yaml.safe_dump(_secret_values(secret))
    lines = text.splitlines(keepends=True)
    at = draw(st.sampled_from([i for i, line in enumerate([*lines, ""]) if not line.startswith((" ", "-"))]))
    how = draw(st.sampled_from(["syntax", "bytes", "top level"]))
    if how == "syntax":
        inserted = draw(st.sampled_from(SYNTAX_BREAKS)).format(secret=secret)
        return "".join([*lines[:at], inserted, *lines[at:]]).encode(), "is not valid YAML"
    if how == "bytes":
        raw = text.encode()
        cut = draw(st.integers(0, len(raw)))
        return raw[:cut] + draw(st.sampled_from(BAD_BYTES)) + raw[cut:], "is not UTF-8 text"
    top = draw(st.one_of(st.integers(), FINITE, st.booleans(), GARBAGE, st.lists(GARBAGE, min_size=1)))
    return yaml.safe_dump(top).encode(), "must hold a mapping"


@hsettings(FUZZ, max_examples=60)
@given(data=st.data(), secret=SECRETS)
def test_broken_file_names_the_file(user_file: Path, data: st.DataObject, secret: str) -> None:
    raw, expected = data.draw(broken_file(secret))
    user_file.write_bytes(raw)
    _expect_clear_error(lambda: load_settings(user_file, environ={}), [expected, str(user_file)], secret=secret)


UNPARSEABLE = [
    "[{secret}",
    '"{secret}',
    "{{a: {secret}",
    "a: b: {secret}",
    "- {secret}\nb: c",
    "*{secret}",
    "!!python/name:os.system ''",
]


@hsettings(FUZZ, max_examples=40)
@given(
    leaf=st.sampled_from([leaf for leaf in LEAVES if leaf.kind not in TEXT_KINDS | {"literal"}]),
    template=st.sampled_from(UNPARSEABLE),
    secret=SECRETS,
)
def test_unparseable_variable_names_key_and_variable(leaf: Leaf, template: str, secret: str) -> None:
    env = {**_secret_env(secret), leaf.env: template.format(secret=secret)}
    _expect_clear_error(lambda: load_settings(environ=env), [leaf.key, leaf.env, "not valid YAML"], secret=secret)


@hsettings(FUZZ, max_examples=20)
@given(leaf=st.sampled_from(LEAVES), before=GARBAGE, secret=SECRETS)
def test_non_utf8_variable_names_key_and_variable(leaf: Leaf, before: str, secret: str) -> None:
    # What os.environ holds for a variable whose bytes are not UTF-8 (surrogateescape).
    env = {**_secret_env(secret), leaf.env: before + b"\xff\xfe".decode("utf-8", "surrogateescape")}
    _expect_clear_error(lambda: load_settings(environ=env), [leaf.key, leaf.env, "not UTF-8"], secret=secret)


def _unreadable(path: Path) -> Path:
    path.write_text("api:\n  port: 1\n")
    path.chmod(0)
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.yaml", "does not exist"),
        (lambda d: d, "is not a file"),
        (lambda d: (d / "dangling.yaml").symlink_to(d / "nowhere") or d / "dangling.yaml", "does not exist"),
        pytest.param(
            lambda d: _unreadable(d / "locked.yaml"),
            "cannot be read: Permission denied",
            marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file"),
        ),
    ],
)
def test_explicit_file_that_cannot_be_read(tmp_path: Path, make: Callable[[Path], Path], expected: str) -> None:
    target = make(tmp_path)
    _expect_clear_error(lambda: load_settings(target, environ={}), [expected, str(target)])
    _expect_clear_error(
        lambda: load_settings(environ={"VISIONLOOP_CONFIG": str(target)}), [expected, "VISIONLOOP_CONFIG"]
    )


@pytest.mark.parametrize(
    ("env", "fragments"),
    [
        ({"VISIONLOOP_SERVING": "5", "VISIONLOOP_SERVING__IMGSZ": "64"}, ["serving", "VISIONLOOP_SERVING", "IMGSZ"]),
        ({"VISIONLOOP_SERVING": "{imgsz: 64}", "VISIONLOOP_SERVING__IMGSZ": "96"}, ["serving.imgsz", "both"]),
        ({"VISIONLOOP_SERVING__IMGSZ": "64", "VISIONLOOP_serving__imgsz": "96"}, ["serving.imgsz", "both"]),
        ({"VISIONLOOP_": "1"}, ["VISIONLOOP_ ", "does not name a settings key"]),
        ({"VISIONLOOP_SERVING__": "1"}, ["VISIONLOOP_SERVING__ ", "does not name a settings key"]),
        ({"VISIONLOOP_SERVING____IMGSZ": "64"}, ["VISIONLOOP_SERVING____IMGSZ", "does not name a settings key"]),
    ],
)
def test_variables_that_contradict_or_name_nothing(env: dict[str, str], fragments: list[str]) -> None:
    _expect_clear_error(lambda: load_settings(environ=env), fragments)


# --- valid values still load ----------------------------------------------------------------------------------------

CROSS_CHECKED = {("serving", "max_batch_size"), ("serving", "max_ongoing_requests"), ("serving", "imgsz")} | {
    ("loop", "labels_dataset"),  # must equal labeling.dataset_name (tests/unit/test_settings_keys.py)
}
UNGENERATED = {("api", "named_tokens"), ("webrtc", "ice_servers")}  # their own properties above cover them
PLAIN_TEXT = st.text(
    st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs")), min_size=1, max_size=16
).filter(lambda s: bool(s.strip()) and s.strip() not in NULLS)
# Text a YAML reader would turn into a number, a boolean, a date or a list: a text setting must still get it verbatim.
YAML_LOOKALIKES = st.sampled_from(["123", "1.5", "true", "no", "2024-01-01", "[a, b]", "{a: 1}", "1_000", "12345678"])
TEXT = st.one_of(PLAIN_TEXT, YAML_LOOKALIKES)


def _number(leaf: Leaf, kind: str) -> st.SearchStrategy[Any]:
    limits = dict(leaf.bounds)
    if kind == "int":
        low = limits.get("ge", limits.get("gt", -(10**9) - 1) + 1)
        high = limits.get("le", limits.get("lt", 10**9 + 1) - 1)
        return st.integers(int(low), int(high))
    return st.floats(
        min_value=limits.get("ge", limits.get("gt", -1e9)),
        max_value=limits.get("le", limits.get("lt", 1e9)),
        exclude_min="gt" in limits,
        exclude_max="lt" in limits,
        allow_nan=False,
        allow_infinity=False,
    )


def _items(args: tuple[Any, ...]) -> st.SearchStrategy[Any]:
    """A list setting's items: one of its choices where they are a Literal (drift.alarm_tests), else any text."""
    inner = args[0] if args else str
    return st.sampled_from(get_args(inner)) if get_origin(inner) is Literal else TEXT


def _valid(leaf: Leaf) -> st.SearchStrategy[Any]:
    args = get_args(leaf.annotation)
    strategies: dict[str, Callable[[], st.SearchStrategy[Any]]] = {
        "bool": st.booleans,
        "int": lambda: _number(leaf, "int"),
        "float": lambda: _number(leaf, "float"),
        "str": lambda: st.from_regex(leaf.pattern, fullmatch=True) if leaf.pattern else TEXT,
        "secret": lambda: TEXT.filter(lambda s: len(s) >= (leaf.min_length or 0)),
        "path": lambda: TEXT,
        "literal": lambda: st.sampled_from(args),
        "list_str": lambda: st.lists(_items(args), min_size=leaf.min_length or 0, max_size=3),
        "dict": lambda: st.dictionaries(TEXT, FINITE, max_size=3),
        "tuple": lambda: st.tuples(*(st.integers(-(10**6), 10**6) if a is int else FINITE for a in args)),
    }
    inner = strategies[leaf.kind]()
    return st.one_of(st.none(), inner) if leaf.optional else inner


def _loaded(settings: Settings, leaf: Leaf) -> Any:
    node: Any = settings
    for part in leaf.path:
        node = getattr(node, part)
    if isinstance(node, SecretStr):
        return node.get_secret_value()
    return list(node) if isinstance(node, tuple) else node


def _expected(leaf: Leaf, value: Any) -> Any:
    if value is None:
        return None
    if leaf.kind == "path":
        return Path(value)
    if leaf.kind == "dict":  # layers merge mappings key by key, so a dict setting keeps the defaults' other keys
        return {**_loaded(Settings(), leaf), **value}
    return list(value) if isinstance(value, tuple) else value


VALID_LEAVES = [leaf for leaf in LEAVES if leaf.path not in CROSS_CHECKED | UNGENERATED]


@st.composite
def valid_settings(draw: st.DrawFn) -> list[tuple[Leaf, Any, bool]]:
    leaves = draw(st.lists(st.sampled_from(VALID_LEAVES), min_size=1, max_size=4, unique_by=lambda leaf: leaf.path))
    return [(leaf, draw(_valid(leaf)), draw(st.booleans())) for leaf in leaves]


@hsettings(FUZZ, max_examples=100)
@given(chosen=valid_settings())
def test_valid_values_load_from_file_and_variables(user_file: Path, chosen: list[tuple[Leaf, Any, bool]]) -> None:
    config: dict[str, Any] = {}
    env: dict[str, str] = {}
    for leaf, value, in_env in chosen:
        if in_env:
            env[leaf.env] = _env_text(value)
        else:
            _set(config, leaf.path, value)
    settings = load_settings(_write(user_file, config), environ=env)
    for leaf, value, _ in chosen:
        assert _loaded(settings, leaf) == _expected(leaf, value), leaf.key
    FIGURES["valid_configs_loaded"] += 1


# --- the CLI: one clean message, no traceback -----------------------------------------------------------------------

CLI_SECRET = "S3cr3tCliToken42"


@pytest.mark.parametrize(
    ("file_bytes", "env", "fragments"),
    [
        (
            f"api:\n  token: {CLI_SECRET}\nserving:\n  max_batch_size: lots\n  '[/bold]': 1\n".encode(),
            {},
            ["serving.max_batch_size", "serving.[/bold]: unknown key", "user.yaml"],
        ),
        (
            None,
            {"VISIONLOOP_API__TOKEN": CLI_SECRET, "VISIONLOOP_SERVING__REPLICAZ": "2"},
            ["serving.replicaz", "VISIONLOOP_SERVING__REPLICAZ"],
        ),
        (f'api:\n  token: "{CLI_SECRET}\n'.encode(), {}, ["not valid YAML", "user.yaml"]),
        (
            None,
            {"VISIONLOOP_SERVING__MAX_BATCH_SIZE": f"[{CLI_SECRET}"},
            ["serving.max_batch_size", "VISIONLOOP_SERVING__MAX_BATCH_SIZE"],
        ),
        (b"serving:\n  imgsz: \xff\n", {}, ["not UTF-8", "user.yaml"]),
    ],
)
def test_cli_prints_one_clean_error(
    tmp_path: Path, file_bytes: bytes | None, env: dict[str, str], fragments: list[str]
) -> None:
    args = ["config", "show"]
    if file_bytes is not None:
        (tmp_path / "user.yaml").write_bytes(file_bytes)
        args = ["--config", str(tmp_path / "user.yaml"), *args]
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONLOOP_")}
    out = subprocess.run(
        [sys.executable, "-m", "visionloop.cli", *args],
        capture_output=True,
        text=True,
        env={**clean_env, "COLUMNS": "200", **env},
        timeout=60,
    )
    FIGURES["cli_cases"] += 1
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    assert out.stderr.startswith("error: ") and out.stderr.count("error: ") == 1, out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and 'File "' not in out.stderr and CLI_SECRET not in out.stderr
