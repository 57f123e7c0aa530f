"""The generated reference pages miss nothing: every settings key (with its environment variable), every CLI
command, every HTTP operation and every metric appears in the page generated for it. Each list of what must appear
is read independently of the generator (a settings instance walked at run time, Typer's registrations, the
OpenAPI document, a scan of the source), so a generator that skips something fails here; the checker itself is
shown to catch a removed line. ``make docs`` then builds the site with ``mkdocs --strict``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import BaseModel

import visionloop
from visionloop.cli.app import app
from visionloop.cli.reference import pages, write_reference
from visionloop.cli.reference.api_reference import api_page, openapi_document
from visionloop.cli.reference.cli_reference import cli_page
from visionloop.cli.reference.markdown import cell, code, table
from visionloop.cli.reference.metrics_reference import metrics_page
from visionloop.cli.reference.settings_reference import settings_page, type_name
from visionloop.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _instance_keys(node: BaseModel, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """Leaf key paths of a settings instance: walks into every value that is itself a settings section."""
    for name in type(node).model_fields:
        value = getattr(node, name)
        if isinstance(value, BaseModel):
            yield from _instance_keys(value, (*prefix, name))
        else:
            yield ".".join((*prefix, name))


def _typer_commands(typer_app: typer.Typer, prefix: str = "visionloop") -> Iterator[str]:
    """Full names of the commands and groups registered on the Typer app (read from its registrations)."""
    for command in typer_app.registered_commands:
        name = command.name or (command.callback.__name__.replace("_", "-") if command.callback else "")
        yield f"{prefix} {name}"
    for group in typer_app.registered_groups:
        assert group.typer_instance is not None and group.name
        yield f"{prefix} {group.name}"
        yield from _typer_commands(group.typer_instance, f"{prefix} {group.name}")


def missing_keys(page: str, keys: list[str]) -> list[str]:
    """Keys without a row of their own in the configuration page (key and variable in one table row)."""
    rows = {line.split("|")[1].strip().strip("`"): line for line in page.splitlines() if line.startswith("| `")}
    variable = "VISIONLOOP_{}".format
    return [k for k in keys if k not in rows or f"`{variable(k.replace('.', '__').upper())}`" not in rows[k]]


def missing_commands(page: str, names: list[str]) -> list[str]:
    headings = {m.group(1) for m in re.finditer(r"^#+ `(visionloop[^`]*)`$", page, re.MULTILINE)}
    return [name for name in names if name not in headings]


@pytest.fixture(scope="module")
def configuration() -> str:
    return settings_page()


@pytest.fixture(scope="module")
def cli() -> str:
    return cli_page()


def test_every_settings_key_has_a_row_with_its_variable(configuration: str) -> None:
    keys = list(_instance_keys(Settings()))
    assert len(keys) > 200 and "bootstrap.use_shipped" in keys
    assert missing_keys(configuration, keys) == []


def test_a_settings_key_missing_from_the_page_is_caught(configuration: str) -> None:
    without = "\n".join(line for line in configuration.splitlines() if "`cameras.rtsp_client`" not in line)
    assert missing_keys(without, list(_instance_keys(Settings()))) == ["cameras.rtsp_client"]


def test_every_default_yaml_key_is_in_the_reference(configuration: str) -> None:
    """The shipped defaults file and the reference name the same keys (a section is walked into)."""

    def leaves(data: dict[str, Any], model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[str]:
        for name, value in data.items():
            annotation = model.model_fields[name].annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, dict):
                yield from leaves(value, annotation, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}"

    written = list(leaves(yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())))
    assert written and missing_keys(configuration, written) == []


def test_every_cli_command_has_a_section(cli: str) -> None:
    names = list(_typer_commands(app))
    assert {"visionloop bootstrap", "visionloop cameras add", "visionloop models promote"} <= set(names)
    assert missing_commands(cli, ["visionloop", *names]) == []


def test_a_cli_command_missing_from_the_page_is_caught(cli: str) -> None:
    without = cli.replace("### `visionloop models rollback`", "### models rollback")
    assert missing_commands(without, list(_typer_commands(app))) == ["visionloop models rollback"]


def test_every_option_of_a_command_is_listed(cli: str) -> None:
    section = cli.split("## `visionloop bootstrap`", 1)[1].split("\n## ", 1)[0]
    assert "`--from-scratch, --no-from-scratch`" in section and "`--ship, --no-ship`" in section


def test_every_http_operation_is_documented() -> None:
    page, document = api_page(), openapi_document()
    for path, item in document["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in page, (method, path)
    assert "(needs the bearer token)" in page and "(no token)" in page


def test_every_metric_defined_in_the_source_is_documented() -> None:
    """Names found by a plain scan of the source for Ray metric constructors, independent of the page's AST walk."""
    package = Path(visionloop.__file__).resolve().parent
    pattern = re.compile(r"metrics\.(?:Counter|Gauge|Histogram)\(\s*\"(visionloop_\w+)\"", re.MULTILINE)
    names = {m.group(1) for path in package.rglob("*.py") for m in pattern.finditer(path.read_text())}
    page = metrics_page()
    assert len(names) >= 15
    assert [name for name in sorted(names) if f"`ray_{name}" not in page] == []


def test_pages_are_written_and_every_page_is_in_the_nav(tmp_path: Path) -> None:
    written = write_reference(tmp_path)
    assert sorted(p.name for p in written) == sorted(pages())
    nav = (ROOT / "mkdocs.yml").read_text()
    for name in pages():
        assert f"reference/{name}" in nav
    docs = ROOT / "docs"
    for page in docs.rglob("*.md"):
        if "reference" not in page.relative_to(docs).parts:
            assert str(page.relative_to(docs)) in nav, page


def test_table_cells_survive_pipes_brackets_and_line_breaks() -> None:
    assert cell("a | b\n<prefix>") == "a \\| b &lt;prefix&gt;"
    assert code("x`y | z") == "`x'y | z`" and code("") == ""
    assert table(("a", "b"), [("1", "2")]).splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |"]
    assert type_name(int | None) == "int | None"
