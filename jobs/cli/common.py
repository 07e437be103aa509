"""What every command of the CLI uses: the consoles, the settings, dates as typed, the commands
to type next."""

from __future__ import annotations

import re
import sys
from datetime import date

import typer
from rich.console import Console

from jobs.config import ConfigError, Settings

try:  # typer vendors its own copy of click
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click  # type: ignore[no-redef]


class Screen:
    """The command's consoles: made again for each command (`fresh`), which takes its width
    (COLUMNS) and colours from the environment the command runs in."""

    def __init__(self) -> None:
        self.out = Console()
        self.err = Console(stderr=True)

    def fresh(self) -> None:
        self.out, self.err = Console(), Console(stderr=True)

    def say(self, kind: str, line: str) -> None:
        """`eoy-reset: warning: …` (or note) on stderr, one line, as written."""
        self.err.print(f"eoy-reset: {kind}: {line}", highlight=False, markup=False, soft_wrap=True)


screen = Screen()


def settings_of(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def at_terminal(as_json: bool) -> bool:
    """Whether a confirmation can be typed: stdin is a terminal and no JSON was asked for."""
    return sys.stdin.isatty() and not as_json


def parse_date(value: str, option: str) -> date:
    text = value.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ConfigError(
                f"{option} {text}: no such day in the calendar; give a real day as YYYY-MM-DD"
            ) from None
        raise ConfigError(f"{option} {value!r} is not a date: use YYYY-MM-DD") from None


def given_options(ctx: typer.Context) -> list[str]:
    """The global options this command was given on its command line, as a command to type
    next needs them (a DSN without its password)."""
    from jobs.config import redact_dsn

    parent = ctx.parent
    options: list[str] = []
    for param in parent.command.params if parent is not None else []:
        name = param.name or ""
        if not isinstance(param, typer.core.TyperOption) or param.is_flag or parent is None:
            continue
        if parent.get_parameter_source(name) != click.core.ParameterSource.COMMANDLINE:
            continue
        value = parent.params[name]
        options += [param.opts[0], redact_dsn(value) if name == "pg_dsn" else str(value)]
    return options


def print_commands(ctx: typer.Context, commands: list[list[str]]) -> None:
    """Commands to type next, one a line, whole: a terminal that wraps one still copies it
    as one line."""
    from jobs.output import command_line

    options = given_options(ctx)
    for args in commands:
        screen.out.print(f"  {command_line(args, options)}", highlight=False, soft_wrap=True)
