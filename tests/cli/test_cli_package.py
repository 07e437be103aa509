"""The CLI package stays thin: every command is listed once in the order --help shows, each
shared option is declared once, every result goes out through output.emit, and the script
entry the package installs still reaches main."""

from __future__ import annotations

import re
import tomllib
from importlib import import_module
from pathlib import Path

import typer

from jobs.cli.app import COMMANDS, USERS_COMMANDS, app

ROOT = Path(__file__).resolve().parents[2]
CLI = ROOT / "jobs" / "cli"


def cli_text() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(CLI.glob("*.py"))}


def test_the_script_entry_reaches_main() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["eoy-reset"].partition(":")
    entry = getattr(import_module(module), name)
    assert callable(entry)
    assert entry.__module__ == "jobs.cli.entry"


def test_every_command_is_listed_once_in_the_order_help_shows() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    names = [name for name, _ in COMMANDS]
    assert len(names) == len(set(names))
    assert group.list_commands(None) == [*names, "users"]  # type: ignore[arg-type]
    users = group.commands["users"]
    assert isinstance(users, typer.core.TyperGroup)
    assert users.list_commands(None) == [n for n, _ in USERS_COMMANDS]  # type: ignore[arg-type]


def test_each_shared_option_is_declared_once() -> None:
    text = "\n".join(cli_text().values())
    for declaration in (
        'typer.Option("--json"',
        'typer.Option("--yes"',
        'typer.Option("--as-of", help="The day to plan for',
        'typer.Option("--district", help="District id.")',
        'typer.Option("--school-year", help="School year.")',
        '"Default: the year of --as-of."',
        '"Default: the latest school year in the ledger, else this year."',
        'typer.Option("--format"',
    ):
        assert text.count(declaration) == 1, declaration


def test_every_result_goes_out_through_emit() -> None:
    for name, text in cli_text().items():
        assert "emit_json(" not in text, f"{name}: print the document through output.emit"
        assert not re.search(r"\bif as_json\b", text), f"{name}: let output.emit choose"
        assert "typer.prompt(" not in text, f"{name}: ask through terminal.typed_confirmation"
