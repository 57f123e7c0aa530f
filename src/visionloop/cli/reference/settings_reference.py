"""The configuration reference: every key of the settings schema with its type, default, environment variable and
description, in the schema's order (the order of configs/default.yaml)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from visionloop.cli.reference.markdown import GENERATED, cell, code, table
from visionloop.core.config import ENV_NESTING, ENV_PREFIX
from visionloop.core.settings import Settings


@dataclass(frozen=True)
class SettingsKey:
    path: tuple[str, ...]
    type: str
    default: str
    description: str

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + ENV_NESTING.join(self.path).upper()


def _model_of(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def type_name(annotation: Any) -> str:
    """A type as a reader writes it: ``int | None``, ``list[str]``, ``'a' | 'b'``."""
    origin = get_origin(annotation)
    if origin is not None and str(origin) == "typing.Literal":
        return " | ".join(json.dumps(arg) for arg in get_args(annotation))
    text = annotation.__name__ if isinstance(annotation, type) and origin is None else str(annotation)
    text = re.sub(r"\b(typing|pathlib|pydantic\.types|pydantic|visionloop(\.\w+)*)\.", "", text)
    return text.replace("NoneType", "None").replace("Optional[", "None | [")


def _default_of(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return None if field.default is PydanticUndefined else field.default


def default_text(value: Any, required: bool) -> str:
    if required:
        return "(required)"
    if isinstance(value, SecretStr):
        return "(secret)" if value.get_secret_value() else '""'
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Path | Enum):
        value = str(value.value if isinstance(value, Enum) else value)
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, default=str)


def settings_keys(model: type[BaseModel] = Settings, prefix: tuple[str, ...] = ()) -> Iterator[SettingsKey]:
    """Every leaf key (a section is walked into; a list or dict of models is one key)."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        nested = _model_of(field.annotation)
        if nested is not None:
            yield from settings_keys(nested, path)
            continue
        yield SettingsKey(
            path, type_name(field.annotation), default_text(_default_of(field), field.is_required()),
            field.description or "",
        )  # fmt: skip


def sections(model: type[BaseModel] = Settings) -> dict[str, str]:
    """Top-level section -> its description."""
    return {name: f.description or "" for name, f in model.model_fields.items() if _model_of(f.annotation)}


def settings_page() -> str:
    keys = list(settings_keys())
    described = sections()
    parts = [
        GENERATED,
        "# Configuration reference\n",
        f"All {len(keys)} keys of the settings schema (`visionloop.core.settings.Settings`). Values come from the "
        "defaults, then your YAML file (`--config` or `VISIONLOOP_CONFIG`), then environment variables, later layers "
        "winning; an unknown key or a bad value is refused with the key and where it came from. A text key takes its "
        "variable verbatim; any other is read as YAML (`16`, `[a, b]`, `true`).\n",
    ]
    by_section: dict[str, list[SettingsKey]] = {}
    for key in keys:
        by_section.setdefault(key.path[0] if len(key.path) > 1 else "", []).append(key)
    for section, rows in by_section.items():
        parts.append(f"## `{section}`\n\n{described.get(section, '')}\n" if section else "## Top level\n")
        parts.append(
            table(
                ("key", "type", "default", "environment variable", "description"),
                ((code(k.name), code(k.type), code(k.default), code(k.env_var), cell(k.description)) for k in rows),
            )
            + "\n"
        )
    return "\n".join(parts)
