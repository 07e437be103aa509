"""Crash safety: kill the runner (SIGKILL, no cleanup) at every named point, run the same
command again, and end in exactly the state of an uninterrupted run (issue: reliability).

The reference is an uninterrupted run on identical data; the comparison covers every app
table, every snapshot file (rows and verification) and the ledger's runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pytest

from jobs.config import PROJECT_DIR, Settings
from jobs.contract import DELETED_TABLES, STEPS
from jobs.generate import generate_districts
from jobs.schema import init_warehouse
from jobs.snapshots import district_dir
from jobs.verify import verify_snapshot
from jobs.warehouse import connect
from tests.runner_helpers import dump_app, parquet_rows

pytestmark = pytest.mark.slow

AS_OF = date(2023, 7, 28)
YEAR = 2023
DISTRICTS, SEED = 4, 11

STEP_POINTS = [f"{edge}:{step}" for step in STEPS for edge in ("before", "after")]
INNER_POINTS = ["export:progress", "delete:assessments", "delete:students", "commit:delete"]
# Every point on DuckDB; the step boundaries that matter most on PostgreSQL.
POSTGRES_POINTS = [
    "after:pause_syncs",
    "export:progress",
    "delete:students",
    "commit:delete",
    "after:delete",
    "before:complete",
]
CASES = [("duckdb", p) for p in STEP_POINTS + INNER_POINTS] + [
    pytest.param("postgres", p, marks=pytest.mark.postgres) for p in POSTGRES_POINTS
]


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EOY_")}
    env.update(
        EOY_TARGET=settings.target,
        EOY_SNAPSHOT_ROOT=str(settings.snapshot_root),
        EOY_DUCKDB_PATH=str(settings.duckdb_path),
        **extra,
    )
    if settings.pg_dsn:
        env["EOY_PG_DSN"] = settings.pg_dsn
    return env


def run_cli(settings: Settings, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobs", "run", "--as-of", AS_OF.isoformat(), "--yes", "--json"],
        cwd=PROJECT_DIR,
        env=cli_env(settings, **extra),
        capture_output=True,
        text=True,
        timeout=600,
    )


def fresh(settings: Settings) -> None:
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        generate_districts(wh, DISTRICTS, seed=SEED, students_per_district=3, show_progress=False)


def outcome(settings: Settings) -> dict[str, object]:
    """What an uninterrupted run leaves: data, snapshots (content), ledger runs."""
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


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    tmp = tmp_path_factory.mktemp("reference")
    settings = Settings(duckdb_path=tmp / "w.duckdb", snapshot_root=tmp / "snapshots")
    fresh(settings)
    done = run_cli(settings)
    assert done.returncode == 0, done.stderr
    return outcome(settings)


@pytest.mark.parametrize(("target", "point"), CASES, indirect=["target"])
def test_killed_run_is_finished_by_running_again(
    settings: Settings, point: str, reference: dict[str, object]
) -> None:
    fresh(settings)
    killed = run_cli(settings, EOY_FAULT=point)
    assert killed.returncode == -9, f"the fault point {point} was never reached: {killed.stderr}"
    again = run_cli(settings)
    assert again.returncode == 0, again.stderr
    got = outcome(settings)
    assert got["data"] == reference["data"]
    assert got["runs"] == reference["runs"]
    assert got["snapshots"] == reference["snapshots"]
    assert got["syncs"] == reference["syncs"]
    assert set(got["deletes"].values()) == {1}, "a district was deleted twice"  # type: ignore[union-attr]


def test_reference_run_reset_someone(reference: dict[str, object]) -> None:
    assert reference["runs"], "the reference run reset no district: the matrix proves nothing"
    assert all(status == "completed" for _, _, status, _ in reference["runs"])  # type: ignore[union-attr]
