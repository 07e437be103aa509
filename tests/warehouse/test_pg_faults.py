"""PostgreSQL faults mid-delete: the runner's connection terminated, or the whole server
restarted, inside the delete transaction rolls back, fails with one clear line, and the rerun
completes (issue: reliability, item 2)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from jobs.config import Settings
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import DELETED_TABLES
from tests.support.crash_helpers import (
    IN_DELETE,
    assert_same_end_state,
    fresh,
    outcome,
    reference_outcome,
    run_cli,
    start_cli,
)
from tests.support.throwaway_pg import ThrowawayPostgres

pytestmark = pytest.mark.postgres


@pytest.fixture
def target() -> str:
    return "postgres"


def rows_by_district(wh: Warehouse) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in DELETED_TABLES:
        for district, n in wh.query(f"select district_id, count(*) from app.{table} group by 1"):
            counts[district] = counts.get(district, 0) + int(n)
    return counts


def completed(wh: Warehouse) -> set[str]:
    return {
        r[0]
        for r in wh.query(
            "select district_id from eoy_runner.reset_runs where status = 'completed'"
        )
    }


def test_connection_killed_mid_delete_rolls_back_and_rerun_completes(
    settings: Settings, wh: Warehouse
) -> None:
    generate_districts(wh, 4, seed=9, students_per_district=3, show_progress=False)
    before = rows_by_district(wh)
    proc = start_cli(settings, EOY_PAUSE="export:students:6@1")
    killed = 0
    deadline = time.monotonic() + 240
    with psycopg.connect(settings.pg_dsn or "", autocommit=True) as admin:
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            # the runner sits in its district's transaction, students already deleted
            # (ADBC streams `delete … returning` through COPY, so the statement is wrapped)
            killed = len(
                admin.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = current_database() and pid <> pg_backend_pid() "
                    "and state = 'idle in transaction' "
                    "and query ilike '%%delete from app.%%students%%'"
                ).fetchall()
            )
            time.sleep(0.2)
    out, err = proc.communicate(timeout=300)
    assert killed, f"never saw the delete transaction: {err}"
    assert proc.returncode != 0
    assert "Traceback" not in err
    done, now = completed(wh), rows_by_district(wh)
    # the other districts carry on; the terminated one rolled back whole
    failed = json.loads(out)["failed"]
    assert failed, out
    assert all(d not in done and now[d] == before[d] for d in failed)
    for district, n in before.items():
        assert now.get(district, 0) == (0 if district in done else n), district

    again = start_cli(settings)
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    due = int(wh.scalar("select count(*) from eoy_runner.reset_runs where status = 'completed'"))
    assert due > 0
    left = wh.scalar(
        "select count(*) from app.students s join eoy_runner.reset_runs r "
        "on r.district_id = s.district_id where r.status = 'completed'"
    )
    assert left == 0
    deletes = wh.query(
        "select district_id, count(*) from eoy_runner.reset_events "
        "where step = 'delete' and status = 'completed' group by district_id"
    )
    assert {n for _, n in deletes} == {1}


@pytest.fixture
def own_server() -> Iterator[ThrowawayPostgres]:
    """A server of this test's own: restarting the session's would break every other test."""
    server = ThrowawayPostgres().start()
    try:
        yield server
    finally:
        server.destroy()


def wait_for(dsn: str, sql: str, proc: subprocess.Popen[str], seconds: float = 240) -> bool:
    """Poll until `sql` returns a row (while `proc` runs)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        with psycopg.connect(dsn, autocommit=True) as admin:
            if admin.execute(sql).fetchall():
                return True
        time.sleep(0.1)
    return False


def test_server_restarted_mid_delete_rolls_back_and_rerun_completes(
    own_server: ThrowawayPostgres, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    settings = Settings(
        target="postgres",
        pg_dsn=own_server.dsn("postgres"),
        snapshot_root=tmp_path / "snapshots",
        duckdb_path=tmp_path / "unused.duckdb",
    )
    fresh(settings)
    with connect(settings) as wh:
        before = rows_by_district(wh)
    # the first district's delete waits 4 s with its students gone, uncommitted
    proc = start_cli(settings, EOY_PAUSE="export:students:4@1")
    assert wait_for(settings.pg_dsn or "", IN_DELETE, proc), "never saw the delete transaction"
    own_server.restart("fast")
    out, err = proc.communicate(timeout=300)

    assert proc.returncode == 1, err
    assert "Traceback" not in err
    result = json.loads(out)
    first = result["districts"][0]
    assert first["status"] == "failed" and first["step"] == "delete", first
    assert "rolled back" in first["error"] and "\n" not in first["error"], first["error"]
    with connect(settings) as wh:
        now, done = rows_by_district(wh), completed(wh)
        status = wh.scalar(
            "select status from eoy_runner.reset_runs where district_id = %s",
            [first["district_id"]],
        )
    assert now[first["district_id"]] == before[first["district_id"]]  # rolled back whole
    assert status == "failed"
    for district, n in before.items():  # the others carried on after the restart
        assert now.get(district, 0) == (0 if district in done else n), district

    again = run_cli(settings)
    assert again.returncode == 0, again.stderr
    assert_same_end_state(outcome(settings), reference)
