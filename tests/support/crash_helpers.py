"""Helpers of the reliability tests: the `eoy-reset run` command as a subprocess, the small
warehouse they all reset, and the end state of an uninterrupted run to compare against.

A case starts from a warehouse copied from one generated once (a DuckDB file copy, a
PostgreSQL `create database ... template ...`), always at the same path or database name, so
dbt's parse cache stays valid from one case to the next.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from jobs.config import PROJECT_DIR, Settings
from jobs.snapshot.layout import district_dir
from jobs.snapshot.verify import verify_snapshot
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import connect
from jobs.warehouse.contract import DELETED_TABLES
from jobs.warehouse.locks import district_key
from jobs.warehouse.schema import init_warehouse
from tests.conftest import with_dbname
from tests.support import fork_server
from tests.support.fork_server import Forked
from tests.support.in_process import run_in_process
from tests.support.locks import file_lock
from tests.support.runner_helpers import dump_app, parquet_rows

AS_OF = date(2023, 7, 28)
YEAR = 2023
DISTRICTS, SEED = 4, 11
RUN = ["run", "--as-of", AS_OF.isoformat(), "--yes", "--json"]
# PostgreSQL: a runner paused inside its district's transaction, the students already
# deleted (ADBC streams `delete … returning` through COPY, so the statement is wrapped)
IN_DELETE = (
    "select pid from pg_stat_activity where datname = current_database() "
    "and pid <> pg_backend_pid() and state = 'idle in transaction' "
    "and query ilike '%delete from app.%students%'"
)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The subprocess's environment: the settings' EOY_* only, and the switch that lets
    EOY_FAULT / EOY_RAISE / EOY_PAUSE act only when a case asks for one of them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOY_")}
    if {"EOY_FAULT", "EOY_RAISE", "EOY_PAUSE"} & set(extra):
        extra = {"EOY_TEST_FAULTS": "1", **extra}
    env.update(
        EOY_TARGET=settings.target,
        EOY_SNAPSHOT_ROOT=str(settings.snapshot_root),
        EOY_DUCKDB_PATH=str(settings.duckdb_path),
        **extra,
    )
    if settings.pg_dsn:
        env["EOY_PG_DSN"] = settings.pg_dsn
    return env


def start_cli(settings: Settings, args: list[str] | None = None, **extra: str) -> Forked:
    """`eoy-reset <args>` (default: run --yes --json) in the background, a process of its own."""
    return fork_server.start(args or RUN, cli_env(settings, **extra), PROJECT_DIR)


def run_cli(
    settings: Settings, args: list[str] | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """`eoy-reset <args>` to its end: in this process, or, when a fault, a pause or smaller
    batches are asked for (the command kills itself or waits to be killed, or its batches
    are set in its own process), in a process of its own."""
    if {"EOY_FAULT", "EOY_PAUSE", "EOY_TEST_BATCH_DISTRICTS"} & set(extra):
        proc = start_cli(settings, args, **extra)
        out, err = proc.communicate(timeout=600)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return run_in_process(args or RUN, cli_env(settings, **extra), PROJECT_DIR)


def lock_holders(admin: psycopg.Connection[Any], district: str) -> list[int]:
    """PostgreSQL: the sessions holding the district's advisory lock (a bigint key: its high
    and low 32 bits in pg_locks' classid and objid)."""
    row = admin.execute(
        "select ('x' || substr(md5(%s), 1, 16))::bit(64)::bigint", [district_key(district, YEAR)]
    ).fetchone()
    assert row is not None
    key = int(row[0]) & 0xFFFFFFFFFFFFFFFF
    rows = admin.execute(
        "select distinct pid from pg_locks where locktype = 'advisory' and granted "
        "and database = (select oid from pg_database where datname = current_database()) "
        "and classid::bigint = %s and objid::bigint = %s",
        [key >> 32, key & 0xFFFFFFFF],
    ).fetchall()
    return [int(r[0]) for r in rows]


def wait_for(check: Callable[[], bool], what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def fresh(settings: Settings) -> None:
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        generate_districts(wh, DISTRICTS, seed=SEED, students_per_district=3, show_progress=False)


def outcome(settings: Settings) -> dict[str, Any]:
    """What a run leaves: data, snapshots (content, verified), ledger runs and deletes."""
    with connect(settings) as wh:
        data = dump_app(wh, ignore_sync_state=True)
        runs = sorted(
            (d, y, s, n)
            for d, y, s, n in wh.query(
                "select district_id, school_year, status, rows_deleted from eoy_runner.reset_runs"
            )
        )
        deletes = dict(
            wh.query(
                "select district_id, sum(cast(1 as integer)) from eoy_runner.reset_events "
                "where step = 'delete' and status = 'completed' group by district_id"
            )
        )
        paused = wh.query("select district_id, status from app.import_syncs order by sync_id")
    snapshots = {}
    for district, _, _, _ in runs:
        folder = district_dir(settings.snapshot_root, YEAR, district)
        result = verify_snapshot(folder)
        assert result["ok"], result["problems"]
        snapshots[district] = {t: parquet_rows(folder / f"{t}.parquet") for t in DELETED_TABLES}
    return {"data": data, "runs": runs, "deletes": deletes, "snapshots": snapshots, "syncs": paused}


def assert_same_end_state(got: dict[str, Any], reference: dict[str, Any]) -> None:
    assert got["data"] == reference["data"]
    assert got["runs"] == reference["runs"]
    assert got["snapshots"] == reference["snapshots"]
    assert got["syncs"] == reference["syncs"]
    assert got["deletes"] == dict.fromkeys(reference["deletes"], 1), "deleted twice, or never"


_REFERENCE: dict[str, Any] = {}


def _run_root(root: Path) -> Path:
    """The folder every xdist worker of this run shares, from a folder the tmp_path_factory of
    this process made (`<worker's base temp>/<name>`): the run's base temp."""
    base = root.parent
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def reference_outcome(root: Path) -> dict[str, Any]:
    """The end state of one uninterrupted run (DuckDB), made once per test run: the first
    process that needs it makes it in root and saves it beside the run's base temp, where
    the other xdist workers read it (the same generated data and day: the same end state)."""
    if not _REFERENCE:
        shared = _run_root(root)
        saved = shared / "reference-outcome.pickle"
        with file_lock(shared / "reference-outcome.lock"):
            if saved.exists():
                _REFERENCE.update(pickle.loads(saved.read_bytes()))
                return _REFERENCE
            settings = Settings(duckdb_path=root / "w.duckdb", snapshot_root=root / "snapshots")
            fresh(settings)
            began = time.monotonic()
            done = run_cli(settings)
            seconds = time.monotonic() - began
            assert done.returncode == 0, done.stderr
            made = {**outcome(settings), "seconds": seconds}
            assert made["runs"], "the reference run reset no district: it proves nothing"
            saved.write_bytes(pickle.dumps(made))
            _REFERENCE.update(made)
    return _REFERENCE


class Pristine:
    """The generated warehouse of one target, copied afresh for each case."""

    PREFIX = "eoy"

    def __init__(self, target: str, root: Path, base_dsn: str | None = None):
        self.target, self.root, self.base_dsn = target, root, base_dsn
        tag = uuid.uuid4().hex[:10]
        self.template, self.case = f"{self.PREFIX}_tpl_{tag}", f"{self.PREFIX}_case_{tag}"
        self.settings = self._settings(self.case, root / "case")
        source = self._settings(self.template, root / "template")
        if target == "postgres":
            self._admin(f"create database {self.template}")
        try:
            self._fill(source)
        except BaseException:
            self.close()  # no database of a failed start is left on the server
            raise

    def _fill(self, source: Settings) -> None:
        """The template's data: generated districts."""
        fresh(source)

    def _settings(self, dbname: str, folder: Path) -> Settings:
        folder.mkdir(parents=True, exist_ok=True)
        dsn = None
        if self.target == "postgres":
            assert self.base_dsn
            dsn = with_dbname(self.base_dsn, dbname)
        return Settings(
            target=self.target,
            duckdb_path=folder / "warehouse.duckdb",
            snapshot_root=folder / "snapshots",
            pg_dsn=dsn,
        )

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.base_dsn or "", autocommit=True) as con:
            con.execute(sql)

    def copy(self) -> Settings:
        """A warehouse equal to the generated one, and no snapshots, at the case's place."""
        shutil.rmtree(self.settings.snapshot_root, ignore_errors=True)
        if self.target == "postgres":
            self._admin(f"drop database if exists {self.case} with (force)")
            self._admin(f"create database {self.case} template {self.template}")
            return self.settings
        path = Path(self.settings.duckdb_path)
        path.with_name(path.name + ".wal").unlink(missing_ok=True)
        shutil.copyfile(self.root / "template" / "warehouse.duckdb", path)
        return self.settings

    def close(self) -> None:
        if self.target == "postgres":
            for name in (self.case, self.template):
                self._admin(f"drop database if exists {name} with (force)")
