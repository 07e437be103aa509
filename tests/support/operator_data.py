"""A few small districts of school year 2023 for the operator's-day tests.

- `early`: requested 2023-07-03, due from then on;
- `default`: no request, due from the default date 2023-07-28;
- `blocked`: rostering starts 2023-07-20, before its reset date: never due;
- `later`: requested 2023-08-15, not due on 2023-07-28.
"""

from __future__ import annotations

import os
import pty
import subprocess
from datetime import date
from pathlib import Path

from jobs.config import PROJECT_DIR, Settings
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.schema import init_warehouse
from tests.support import fork_server
from tests.support.crash_helpers import cli_env
from tests.support.in_process import run_in_process
from tests.support.reset_data import insert_rows, request
from tests.support.runner_helpers import small_district

AS_OF = date(2023, 7, 28)
DAY_BEFORE = date(2023, 7, 27)
YEAR = 2023
DISTRICTS = ("early", "default", "blocked", "later")


def load(wh: Warehouse) -> None:
    for district in DISTRICTS:
        small_district(wh, district, students=2)
    insert_rows(
        wh,
        "district_reset_requests",
        [
            request("early", date(2023, 7, 3)),
            request("blocked", None, rostering=date(2023, 7, 20)),
            request("later", date(2023, 8, 15)),
        ],
    )


def fresh(settings: Settings) -> None:
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        load(wh)


def reset_early_and_default(settings: Settings) -> None:
    """`fresh`, then a run on 2023-07-28: `early` and `default` reset (a scenario of several
    snapshot tests, made once)."""
    fresh(settings)
    done = eoy(settings, ["run", "--as-of", "2023-07-28", "--yes"])
    assert done.returncode == 0, done.stderr


def eoy(
    settings: Settings,
    args: list[str],
    answer: str | None = None,
    cwd: Path = PROJECT_DIR,
    **env: str,
) -> subprocess.CompletedProcess[str]:
    """`eoy-reset <args>` with stdin not a terminal (in this process unless a fault or pause
    is asked for), or, given `answer`, in a terminal that types it."""
    environ = cli_env(settings, **env)
    if answer is None and "EOY_FAULT" not in env and "EOY_PAUSE" not in env:
        return run_in_process(args, environ, cwd)
    if answer is None:
        forked = fork_server.start(args, environ, cwd)
        out, err = forked.communicate(timeout=600)
        return subprocess.CompletedProcess(forked.args, forked.wait(), out, err)
    master, slave = pty.openpty()
    try:
        # the answer waits in the terminal's input until the command reads it
        os.write(master, answer.encode() + b"\n")
        forked = fork_server.start(args, environ, cwd, stdin=os.ttyname(slave))
        out, err = forked.communicate(timeout=600)
    finally:
        os.close(slave)
        os.close(master)
    return subprocess.CompletedProcess(forked.args, forked.wait(), out, err)


def one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """The failure's one line on stderr, holding every needle."""
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("eoy-reset: ") and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
