"""One command from the command line: run it, and turn whatever stops it into one line on
stderr (and `{"ok": false, …}` with --json) and an exit code."""

from __future__ import annotations

import functools
import re
import sys

import typer

from jobs.cli.app import GLOBAL_OPTIONS, app
from jobs.cli.common import click, screen
from jobs.config import debug, scrub
from jobs.errors import EoyError
from jobs.output import emit_failure, json_requested


def usage_line(exc: click.exceptions.UsageError) -> str:
    """A usage error in one line, with the fix."""
    ctx = exc.ctx
    command = ctx.info_name if ctx is not None and ctx.parent is not None else None
    helper = f"`eoy-reset {command} --help`" if command else "`eoy-reset --help`"
    if isinstance(exc, click.exceptions.NoSuchOption):
        option = exc.option_name
        if option in GLOBAL_OPTIONS and command:
            return (
                f"{option} is a global option: put it before the command, "
                f"`eoy-reset {option} VALUE {command} …`"
            )
        return f"{command or 'eoy-reset'} has no option {option}: see {helper}"
    text = " ".join(exc.format_message().split())
    param = getattr(exc, "param", None)
    given_year = _option_value("--school-year")
    if param is not None and "--school-year" in getattr(param, "opts", []) and given_year:
        return _school_year_hint(given_year)
    return f"{text.rstrip('.')}: see {helper}"


def _school_year_hint(given: str) -> str:
    """`--school-year 2022-23` is 2023: the year the school year ends."""
    found = re.search(r"^(\d{4})[-/](\d{2,4})$", given)
    if found:
        start, end = found.group(1), found.group(2)
        year = int(start[:2] + end[-2:]) if len(end) == 2 else int(end)
        year += 100 if year <= int(start) else 0
        return (
            f"--school-year {start}-{end}: use {year}, the year the school year ends "
            f"(--school-year {year})"
        )
    return (
        f"--school-year {given!r} is not a year: give the calendar year the school year "
        "ends in, like 2023 for 2022-23"
    )


def _option_value(option: str) -> str | None:
    """The value given to an option on the command line (for a usage error's hint)."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def _fail(message: str, code: int) -> None:
    print(f"eoy-reset: {message}", file=sys.stderr)
    if json_requested():
        emit_failure(message)
    sys.exit(code)


@functools.cache
def _command() -> click.Command:
    """The click command typer makes of `app`: made once per process, however many commands
    the process runs (a tenth of a second each time)."""
    return typer.main.get_command(app)


def main() -> None:
    """One command, from sys.argv and the environment as they are now."""
    from jobs.faults import ignored_switches_warning
    from jobs.output import INTERRUPTED, interrupted, interrupts, new_command

    screen.fresh()
    new_command()
    warning = ignored_switches_warning()
    if warning:
        print(warning, file=sys.stderr)
    try:
        with interrupts():
            try:
                rv = _command()(standalone_mode=False, prog_name="eoy-reset")
            finally:  # whatever dbt, a driver or typer made of Ctrl-C, it says this
                if interrupted():
                    _fail(INTERRUPTED, 130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.UsageError as exc:
        _fail(scrub(usage_line(exc)), exc.exit_code)
    except click.exceptions.ClickException as exc:
        _fail(scrub(" ".join(exc.format_message().split())), exc.exit_code)
    except typer.Abort:
        _fail("aborted: nothing more was done", 130)
    except KeyboardInterrupt:
        _fail(INTERRUPTED, 130)
    except EoyError as exc:
        _fail(scrub(str(exc)), exc.exit_code)
    except Exception as exc:
        if debug():
            raise
        first = scrub((str(exc).strip().splitlines() or [""])[0])
        _fail(f"unexpected {type(exc).__name__}: {first} (EOY_DEBUG=1 shows more)", 1)
    sys.exit(rv if isinstance(rv, int) else 0)
