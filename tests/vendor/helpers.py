"""What the vendor schema's tests and benchmark share: `eoy-reset --project-dir <the vendor
project>` in this process or in one of its own, the project ready (`dbt deps`) or copied,
and the warehouse's and the snapshots' rows to compare."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from jobs.config import Settings
from jobs.warehouse.connection import Warehouse, connect
from tests.support.crash_helpers import cli_env
from tests.support.fork_server import Forked, start
from tests.support.in_process import close_dbt_duckdb, run_in_process
from tests.support.locks import file_lock
from tests.vendor.schema import DELETED, PROJECT, RETAINED, SCHEMA, TABLES

REPO = PROJECT.parent.parent.parent
YEAR = 2023
AS_OF = "2023-07-28"  # the 2023 default reset date: every org unit is due
# what dbt makes in a project folder, never copied
_MADE = ("dbt_packages", "target", "logs", "package-lock.yml")


def ready_project(lock: Path, project: Path = PROJECT) -> Path:
    """The vendor project with eoy-reset installed (`dbt deps`), as its engineer leaves it;
    one xdist worker installs it, the others wait for it."""
    with file_lock(lock):
        if not installed(project):
            from dbt.cli.main import dbtRunner

            logs = lock.parent / "vendor-deps-logs"
            done = dbtRunner().invoke(
                ["deps", "--project-dir", str(project), "--log-path", str(logs), "--quiet"]
            )
            assert done.success, f"dbt deps failed in {project}: {done.exception}"
    return project


def installed(project: Path) -> bool:
    """Whether eoy-reset is installed in the project's dbt_packages."""
    return (project / "dbt_packages" / "eoy_reset" / "dbt_project.yml").is_file()


def copy_project(to: Path) -> Path:
    """A copy of the vendor project (without what dbt made there), whose packages.yml points
    at this checkout by its absolute path: a project a test may change."""
    shutil.copytree(PROJECT, to, ignore=shutil.ignore_patterns(*_MADE))
    (to / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n", encoding="utf-8")
    return to


def env(settings: Settings, project: Path | None = None, **extra: str) -> dict[str, str]:
    """The command's environment: the warehouse's variables, and the project when given
    (EOY_PROJECT_DIR, the option's variable)."""
    if project is not None:
        extra = {"EOY_PROJECT_DIR": str(project), **extra}
    return cli_env(settings, **extra)


def eoy(
    settings: Settings, project: Path, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`eoy-reset --project-dir PROJECT <args>` to its end, in this process, in the
    warehouse's folder (nothing of a command lands in the checkout)."""
    where = cwd or Path(settings.duckdb_path).resolve().parent
    done = run_in_process(["--project-dir", str(project), *args], env(settings), where)
    close_dbt_duckdb()  # the next command, or a copy of the file, may want the database
    return done


def eoy_json(settings: Settings, project: Path, *args: str) -> dict[str, Any]:
    done = eoy(settings, project, *args, "--json")
    assert done.returncode == 0, f"eoy-reset {' '.join(args)}: {done.stderr}"
    return dict(json.loads(done.stdout))


def start_eoy(settings: Settings, project: Path, *args: str, **extra: str) -> Forked:
    """`eoy-reset <args>` in a process of its own, the project named by EOY_PROJECT_DIR."""
    close_dbt_duckdb()
    where = Path(settings.duckdb_path).resolve().parent
    return start(list(args), env(settings, project, **extra), where)


def warehouse(settings: Settings) -> Warehouse:
    """The vendor's warehouse as the tests read it: `init` there makes eoy_runner only, and
    the demo's `app` never exists."""
    return connect(settings, require_init=False)


def one_line(stderr: str) -> str:
    """A refusal's message: exactly one line."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"not one line: {stderr!r}"
    return lines[0]


def columns_of(table: str) -> list[str]:
    return [c for c, _, _ in next(t for t in TABLES if t.name == table).columns]


def _norm(value: Any) -> Any:
    return value if not isinstance(value, float) else round(value, 6)


def _sortable(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, "" if v is None else str(v)) for v in row)


def dump(wh: Warehouse, tables: tuple[str, ...] = DELETED + RETAINED) -> dict[str, list[Any]]:
    """Every row of each table, as sorted tuples of the table's columns."""
    out = {}
    for table in tables:
        cols = columns_of(table)
        rows = wh.query(f"select {', '.join(cols)} from {SCHEMA}.{table}")
        out[table] = sorted((tuple(_norm(v) for v in r) for r in rows), key=_sortable)
    return out


def snapshot_rows(folder: Path) -> dict[str, list[Any]]:
    """The rows of each deleted table in a snapshot folder, like dump's."""
    out = {}
    for table in DELETED:
        path = folder / f"{table}.parquet"
        assert path.is_file(), f"{folder} has no {table}.parquet"
        cols = columns_of(table)
        data = pq.read_table(path).to_pylist()
        out[table] = sorted(
            (tuple(_norm(r[c]) for c in cols) for r in data),
            key=_sortable,
        )
    return out


def snapshot_folder(settings: Settings, district: int) -> Path:
    """`<root>/<school year>/<the district id as text>`: an integer id is its text form."""
    return Path(settings.snapshot_root) / str(YEAR) / str(district)
