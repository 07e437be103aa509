"""The one pass: what a district's reset deletes is what its snapshot holds, row for row, and
every way the pass can find a mismatch rolls the whole district back (issue: one pass)."""

from __future__ import annotations

import os
import threading
import time
from datetime import date

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

import jobs.reset.onepass
from jobs.config import Settings
from jobs.reset.runner import run_reset
from jobs.snapshot.layout import district_dir, read_manifest
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import DuckDBWarehouse, Warehouse, connect
from tests.support.runner_helpers import dump_app, expected_due, small_district, student_rows

AS_OF = date(2023, 7, 28)
YEAR = 2023
QUIET = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115


def run(settings: Settings, **kw):
    args = {"as_of": AS_OF, "school_year": YEAR, "yes": True, "show_progress": False}
    return run_reset(settings, console=QUIET, **{**args, **kw})


def assert_rolled_back(settings: Settings, wh: Warehouse, before, outcome, step: str) -> None:
    """The district failed at `step`, nothing of it changed but its paused syncs, and no
    snapshot of it is in place or left half-written."""
    assert outcome.status == "failed", outcome
    assert outcome.step == step, outcome
    assert "\n" not in outcome.error
    assert dump_app(wh, ignore_sync_state=True) == before
    deletes = wh.scalar(
        "select count(*) from eoy_runner.reset_events where step = 'delete' "
        "and status = 'completed'"
    )
    assert deletes == 0
    status = wh.scalar(
        "select status from eoy_runner.reset_runs where district_id = %s",
        [outcome.district_id],
    )
    assert status == "failed"
    folder = district_dir(settings.snapshot_root, YEAR, outcome.district_id)
    assert not folder.exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def one_district(wh: Warehouse) -> tuple[str, dict]:
    for d in ("a", "b"):
        small_district(wh, d, students=3)
    return "a", dump_app(wh, ignore_sync_state=True)


def test_a_file_that_does_not_read_back_as_streamed_rolls_back(settings, wh, monkeypatch):
    district, before = one_district(wh)
    real = jobs.snapshot.writer.write_table

    def write_then_change(batches, table, pending, *args, **kw):
        taken = real(batches, table, pending, *args, **kw)
        path = pending.folder / taken.name
        if table == "progress":  # same rows, one score changed on disk
            data = pq.read_table(path)
            scores = data.column("score").to_pylist()
            scores[0] = (scores[0] or 0) + 1
            data = data.set_column(
                data.schema.get_field_index("score"), "score", pa.array(scores, pa.float64())
            )
            pq.write_table(data, path, compression="zstd")
        return taken

    monkeypatch.setattr(jobs.reset.onepass, "write_table", write_then_change)
    outcome = run(settings, districts=[district]).districts[0]
    assert "progress: the file re-reads with other content fingerprint" in outcome.error
    assert outcome.error.endswith("nothing was deleted")
    assert_rolled_back(settings, wh, before, outcome, "verify")


def test_retained_rows_changed_inside_the_pass_roll_back(settings, wh, monkeypatch):
    district, before = one_district(wh)
    real = jobs.reset.onepass._rows_of

    def rows_then_touch_an_educator(tx, table, d, delete, expected=None):
        yield from real(tx, table, d, delete, expected)
        if table == "students":  # as a trigger or cascade on the delete would
            tx.execute("update app.educators set last_name = 'X' where district_id = %s", [d])

    monkeypatch.setattr(jobs.reset.onepass, "_rows_of", rows_then_touch_an_educator)
    outcome = run(settings, districts=[district]).districts[0]
    assert outcome.error == (
        "retained rows of the district changed during its delete (educators): "
        "rolled back, nothing was deleted; run again"
    )
    assert_rolled_back(settings, wh, before, outcome, "delete")


def test_a_row_of_another_district_coming_out_rolls_back(settings, wh, monkeypatch):
    district, before = one_district(wh)
    real = jobs.snapshot.source.columns_sql

    def progress_claims_district_b(table, target):
        cols = real(table, target)
        if table != "progress":
            return cols
        return cols.replace(
            f'cast("district_id" as {"text" if target == "postgres" else "varchar"})', "'b'"
        )

    monkeypatch.setattr(jobs.reset.onepass, "columns_sql", progress_claims_district_b)
    outcome = run(settings, districts=[district]).districts[0]
    assert outcome.error == (
        "progress: a row of another district came out of the district's statement: "
        "rolled back, nothing was deleted"
    )
    assert_rolled_back(settings, wh, before, outcome, "delete")


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_delete_that_removes_other_rows_than_were_read_rolls_back(settings, wh, monkeypatch):
    """DuckDB reads a large table's rows, then deletes them in the same transaction: the
    delete must count the rows read. (Smaller tables, and every PostgreSQL table, come out
    of the delete itself.)"""
    district, before = one_district(wh)
    monkeypatch.setattr(jobs.reset.onepass, "RETURNING_ROWS", 0)  # every table counts as large
    real = DuckDBWarehouse.execute

    def execute(self, sql, params=None):
        if sql.startswith('delete from app."progress"'):  # a row slips in between
            real(
                self,
                "insert into app.progress values ('a-x', 'a', 'a-s0', 'imagine_math', 'L9', "
                "'done', null, 0.5)",
            )
        return real(self, sql, params)

    monkeypatch.setattr(DuckDBWarehouse, "execute", execute)
    outcome = run(settings, districts=[district]).districts[0]
    monkeypatch.undo()
    assert outcome.error == (
        "progress: the delete removed 4 rows, the snapshot holds 3: "
        "rolled back, nothing was deleted; run again"
    )
    assert_rolled_back(settings, wh, before, outcome, "delete")


def test_a_kill_before_the_commit_leaves_no_snapshot_and_after_it_a_complete_one(settings, wh):
    from tests.support.crash_helpers import run_cli

    district, _ = one_district(wh)
    args = ["run", "--as-of", AS_OF.isoformat(), "--yes", "--json", "--district", district]
    folder = district_dir(settings.snapshot_root, YEAR, district)
    wh.close()
    killed = run_cli(settings, args, EOY_FAULT="commit:delete")
    assert killed.returncode == -9
    assert not folder.exists()
    with connect(settings) as w:
        assert student_rows(w, district) == 19
    killed = run_cli(settings, args, EOY_FAULT="after:commit")
    assert killed.returncode == -9
    with connect(settings) as w:
        assert student_rows(w, district) == 0
    again = run_cli(settings, args)
    assert again.returncode == 0, again.stderr
    assert read_manifest(folder)["tables"]["students"]["rows"] == 3
    from jobs.snapshot.verify import verify_snapshot

    assert verify_snapshot(folder)["ok"]


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_edits_made_during_the_run_are_in_the_snapshot(settings, wh):
    """Another session updates one of a due district's rows every few milliseconds while
    `run` works: the row's last written value is in the snapshot, and the row is gone."""
    generate_districts(wh, 6, seed=5, students_per_district=40, show_progress=False)
    district = sorted(expected_due(wh, YEAR, AS_OF))[-1]
    row = wh.scalar("select max(progress_id) from app.progress where district_id = %s", [district])
    last: list[float] = []
    stop = threading.Event()

    def keep_editing() -> None:
        with psycopg.connect(settings.pg_dsn or "", autocommit=True) as con:
            n = 0
            while not stop.is_set():
                n += 1
                changed = con.execute(
                    "update app.progress set score = %s where progress_id = %s", [n, row]
                ).rowcount
                if changed:
                    last.append(float(n))
                time.sleep(0.003)

    editor = threading.Thread(target=keep_editing)
    editor.start()
    try:
        time.sleep(0.2)
        for _ in range(3):  # rerun while it fails
            result = run(settings)
            if not result.failed:
                break
        assert not result.failed, result.failed
        time.sleep(0.1)
    finally:
        stop.set()
        editor.join()
    assert len(last) > 10, "the editor never got going"
    assert wh.scalar("select count(*) from app.progress where progress_id = %s", [row]) == 0
    data = pq.read_table(
        district_dir(settings.snapshot_root, YEAR, district) / "progress.parquet"
    ).to_pylist()
    kept = [r["score"] for r in data if r["progress_id"] == row]
    assert kept == [last[-1]]


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_duckdb_student_tables_carry_no_art_index_and_init_rebuilds_old_ones(settings, wh):
    from jobs.warehouse.contract import DELETED_TABLES
    from jobs.warehouse.schema import init_warehouse

    def indexed_tables() -> set[str]:
        rows = wh.query(
            "select table_name from duckdb_constraints() where schema_name = 'app' "
            "and constraint_type in ('PRIMARY KEY', 'UNIQUE') union "
            "select table_name from duckdb_indexes() where schema_name = 'app'"
        )
        return {r[0] for r in rows}

    assert not indexed_tables() & set(DELETED_TABLES)
    assert {"districts", "schools", "educators"} <= indexed_tables()
    # a warehouse of an earlier version: a primary key and an index, rows out of order
    wh.execute("drop table app.pathways")
    wh.execute(
        "create table app.pathways (pathway_id varchar primary key, district_id varchar not "
        "null, student_id varchar, product varchar, pathway_name varchar, grade_band varchar, "
        "assigned_at timestamp)"
    )
    wh.execute("create index ix_old on app.pathways (district_id)")
    for i, d in enumerate(["c", "a", "b", "a"]):
        wh.execute(
            "insert into app.pathways values (%s, %s, 's', 'imagine_math', 'P', '3_plus', null)",
            [f"p{i}", d],
        )
    init_warehouse(wh)
    assert "pathways" not in indexed_tables()
    assert wh.query("select pathway_id, district_id from app.pathways") == [
        ("p1", "a"),
        ("p3", "a"),
        ("p2", "b"),
        ("p0", "c"),
    ]


def test_cleaning_a_districts_leftovers_never_touches_another_districts(tmp_path):
    """`d1` and `d1.x` are two districts: cleaning after one never removes the staging
    folder of the other (which may be an export running in another worker)."""
    from jobs.snapshot.store import FolderStore

    year_dir = tmp_path / "2023"
    mine = [".d1.tmp-12-abcdef01", ".d1.old-0123abcd"]
    others = [
        ".d1.x.tmp-12-abcdef01",
        ".d1.x.old-0123abcd",
        ".d1~delta-1.tmp-3-00000000",
        ".d1.tmp-12-abcdef01-extra",
        "d1",
        "d1.x",
    ]
    for name in mine + others:
        (year_dir / name).mkdir(parents=True)
    FolderStore.clean_leftovers(year_dir, "d1")
    assert sorted(p.name for p in year_dir.iterdir()) == sorted(others)


@pytest.mark.parametrize("returning_rows", [0, 10**6])
@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_duckdb_takes_small_and_large_tables_row_for_row(settings, wh, monkeypatch, returning_rows):
    """Large tables are read then deleted (streaming), small ones come out of `delete …
    returning`: either way the snapshot holds exactly the rows that went."""
    from jobs.warehouse.contract import DELETED_TABLES
    from tests.support.runner_helpers import dump_app as dump
    from tests.support.runner_helpers import of_district, parquet_rows, without

    monkeypatch.setattr(jobs.reset.onepass, "RETURNING_ROWS", returning_rows)
    district, _ = one_district(wh)
    before = dump(wh)
    outcome = run(settings, districts=[district]).districts[0]
    assert outcome.status == "completed", outcome
    folder = district_dir(settings.snapshot_root, YEAR, district)
    after = dump(wh)
    for table in DELETED_TABLES:
        assert parquet_rows(folder / f"{table}.parquet") == of_district(
            before[table], table, district
        )
        assert after[table] == without(before[table], table, {district})
