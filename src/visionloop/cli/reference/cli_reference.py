"""The CLI reference: every ``visionloop`` command and sub-command with its help, arguments and options, read from
the Typer application itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import typer
import typer.main

from visionloop.cli.reference.markdown import GENERATED, cell, code, table
from visionloop.cli.reference.settings_reference import type_name

# Typer 0.2x carries its own copy of Click, so commands are read by duck typing rather than Click's classes.
Command = Any
SHELL_COMPLETION = {"install_completion", "show_completion"}


def root_command() -> Command:
    from visionloop.cli.app import app

    return typer.main.get_command(app)


def is_group(command: Command) -> bool:
    return hasattr(command, "list_commands")


def commands(command: Command | None = None, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, Command]]:
    """(full name, command) for every command, groups included, depth first in the help's order."""
    command = command or root_command()
    name = " ".join(("visionloop", *prefix))
    yield name, command
    if is_group(command):
        context = typer.Context(command, info_name=name)
        for sub in command.list_commands(context):
            child = command.get_command(context, sub)
            if child is not None and not child.hidden:
                yield from commands(child, (*prefix, sub))


def _parameter_row(param: Any) -> tuple[str, str, str, str]:
    kind = type_name(param.type_descriptor.annotation)
    if param.param_type_name == "option":
        names = ", ".join([*param.opts, *param.secondary_opts])
        default = "" if param.default is None or (param.is_flag and not param.default) else param.default
        return code(names), code(kind), code(default), cell(param.help or "")
    required = "(required)" if param.required else code("" if param.default is None else param.default)
    return code((param.name or "").upper()), code(kind), required, cell(getattr(param, "help", "") or "")


def _help(command: Command) -> str:
    text = command.help or command.short_help or ""
    return "\n".join(line.strip() for line in text.strip().splitlines())


def cli_page() -> str:
    parts = [
        GENERATED,
        "# CLI reference\n",
        "Every command of `visionloop`, as `visionloop <command> --help` prints it. Options shared by every command "
        "(`--config`) come first; a command's own options after it.\n",
    ]
    for name, command in commands():
        params = [p for p in command.params if p.name not in SHELL_COMPLETION]
        level = "#" * min(2 + name.count(" ") - 1, 4) if " " in name else "##"
        parts.append(f"{level} `{name}`\n")
        if _help(command):
            parts.append(_help(command) + "\n")
        if is_group(command):
            parts.append("Sub-commands: " + ", ".join(f"`{sub}`" for sub in sorted(command.commands)) + ".\n")
        if params:
            parts.append(table(("name", "type", "default", "help"), map(_parameter_row, params)) + "\n")
    return "\n".join(parts)
