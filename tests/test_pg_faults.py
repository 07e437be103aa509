"""PostgreSQL faults mid-delete: the runner's connection terminated inside the delete
transaction rolls back, fails with one clear line, and the rerun completes
(issue: reliability, item 2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psycopg
import pytest

from jobs.config import PROJECT_DIR, Settings
from jobs.contract import DELETED_TABLES
from jobs.generate import generate_districts
from jobs.warehouse import Warehouse

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


def runner(settings: Settings, **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOY_")}
    env.update(
        EOY_TARGET="postgres",
        EOY_PG_DSN=settings.pg_dsn or "",
        EOY_SNAPSHOT_ROOT=str(settings.snapshot_root),
        **extra,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "jobs", "run", "--as-of", "2023-07-28", "--yes", "--json"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_connection_killed_mid_delete_rolls_back_and_rerun_completes(
    settings: Settings, wh: Warehouse
) -> None:
    generate_districts(wh, 4, seed=9, students_per_district=3, show_progress=False)
    before = rows_by_district(wh)
    proc = runner(settings, EOY_PAUSE="delete:students:6")
    killed = 0
    deadline = time.monotonic() + 240
    with psycopg.connect(settings.pg_dsn or "", autocommit=True) as admin:
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            # the runner sits in its delete transaction, students already deleted
            killed = len(
                admin.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where datname = current_database() and pid <> pg_backend_pid() "
                    "and state = 'idle in transaction' "
                    "and query like 'delete from app.%%students%%'"
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

    again = runner(settings)
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
