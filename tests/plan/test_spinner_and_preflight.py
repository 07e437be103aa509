"""Never silent for seconds: a spinner names the phase while dbt builds (stderr a terminal),
and every file argument is checked before the build (issue #16, item 3)."""

from __future__ import annotations

import os
import pty
import threading
from pathlib import Path

import pytest

from jobs.config import PROJECT_DIR, Settings
from jobs.warehouse.connection import connect
from tests.support import fork_server
from tests.support import operator_data as od
from tests.support.crash_helpers import cli_env
from tests.support.operator_data import eoy, one_line


def with_terminal_stderr(settings: Settings, args: list[str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal: (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    shown: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # every end of the terminal closed, what it held read
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = fork_server.start(
            args, cli_env(settings, COLUMNS="100"), PROJECT_DIR, stderr=os.ttyname(slave)
        )
        out, _ = proc.communicate(timeout=600)
    finally:
        os.close(slave)  # the command has ended: the reader gets the rest, then EIO
    reader.join(timeout=10)
    os.close(master)
    return proc.wait(), out, b"".join(shown).decode(errors="replace")


def models_built(settings: Settings) -> bool:
    with connect(settings) as wh:
        return wh.relation_exists("eoy", "due_districts") or wh.schema_exists("eoy_audit")


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_spinner_names_the_build_at_a_terminal_and_nothing_when_piped(
    settings: Settings, tmp_path: Path
) -> None:
    od.fresh(settings)
    code, out, shown = with_terminal_stderr(settings, ["plan", "--as-of", "2023-07-28"])
    assert code == 0 and "Due districts" in out
    assert "building the reset models as of 2023-07-28…" in shown
    code, out, shown = with_terminal_stderr(
        settings, ["report", "--html", str(tmp_path / "r.html"), "--as-of", "2023-07-28"]
    )
    assert code == 0, shown
    assert "building the audit models as of 2023-07-28…" in shown
    code, out, shown = with_terminal_stderr(settings, ["run", "--as-of", "2023-07-28", "--dry-run"])
    assert code == 0 and "Dry run" in out
    assert "building the reset models as of 2023-07-28…" in shown
    piped = eoy(settings, ["run", "--as-of", "2023-07-28", "--dry-run"])
    assert piped.returncode == 0 and "building" not in piped.stderr


def test_file_arguments_are_checked_before_the_build(settings: Settings, tmp_path: Path) -> None:
    od.fresh(settings)
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (["plan", "--as-of", "2023-07-28", "--out", str(a_file / "p.json")], "--out"),
        (["plan", "--as-of", "2023-07-28", "--out", str(tmp_path)], "is a folder"),
        (["run", "--as-of", "2023-07-28", "--plan", str(tmp_path / "none.json")], "does not exist"),
        (["run", "--as-of", "2023-07-28", "--dry-run", "--plan", str(a_file)], "not valid JSON"),
        (["report", "--html", str(a_file / "r.html")], "is a file, not a folder"),
        (["report", "--html", str(tmp_path)], "is a folder"),
    ]
    for args, needle in cases:
        one_line(eoy(settings, args), needle)
        assert not models_built(settings), args
