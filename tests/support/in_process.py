"""`eoy-reset` in the test's own process: the entry point `python -m jobs` runs
(`jobs.cli.main`), with the command's own argv, environment, working folder, stdin (empty, not
a terminal) and captured output, for a command that needs no process of its own.

A new interpreter costs seconds before the first line of the command (importing dbt, polars,
pyarrow; dbt's first parse in a process); here that is paid once per test process. A command
that must be killed, raced against another runner or given a terminal still runs as a
subprocess (`crash_helpers.start_cli`, `operator_data.eoy(answer=…)`).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class _Output(io.StringIO):
    """A captured stream as a pipe looks to the command: text, not a terminal."""

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """os.environ is exactly env for the block; keys are changed one by one, never cleared,
    so that threads of this process (the S3 server) never see an empty environment."""
    saved = dict(os.environ)
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    os.environ.update(env)
    try:
        yield
    finally:
        for key in [k for k in os.environ if k not in saved]:
            del os.environ[key]
        os.environ.update(saved)


def close_dbt_duckdb() -> None:
    """dbt-duckdb keeps the database of its last build open in this process until the next
    build: close it, so that another process (or a file copy) can have the database."""
    from jobs.plan.dbt import release_duckdb

    release_duckdb()


def exit_code(exc: SystemExit) -> int:
    """The process's exit code for a SystemExit, as the interpreter gives it."""
    return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)


def run_in_process(
    args: list[str], env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """`eoy-reset <args>` with this environment (the whole of it) in cwd, as
    subprocess.run(…, stdin=DEVNULL, capture_output=True, text=True) would return it."""
    from jobs.cli import main

    out, err = _Output(), _Output()
    streams = sys.stdin, sys.stdout, sys.stderr
    argv, here = sys.argv, os.getcwd()
    code: int
    with _environment(env):
        sys.argv = ["eoy-reset", *args]
        sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), out, err
        os.chdir(cwd)
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exit_code(exc)
        finally:
            sys.stdin, sys.stdout, sys.stderr = streams
            sys.argv = argv
            os.chdir(here)
            close_dbt_duckdb()
    return subprocess.CompletedProcess(["eoy-reset", *args], code, out.getvalue(), err.getvalue())


def counted_parses(monkeypatch: Any) -> list[str]:
    """The parses of a dbt project this process makes from here on (the project's name for
    each), with no parse kept in memory yet: as a new process starts."""
    import jobs.plan.dbt as dbt

    made: list[str] = []
    frozen = dbt._frozen

    def counted(manifest: Any) -> bytes:
        made.append(manifest.metadata.project_name or "")
        return frozen(manifest)

    monkeypatch.setattr(dbt, "_frozen", counted)
    monkeypatch.setattr(dbt, "_MANIFESTS", type(dbt._MANIFESTS)())
    return made
