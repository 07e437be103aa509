"""The runner's guards, crash recovery, deltas and concurrency."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import zipfile
from datetime import date, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from jobs.config import PROJECT_DIR, Settings
from jobs.plan.approval import approve_plan
from jobs.plan.planner import load_plan, make_plan, write_plan
from jobs.reset.runner import RunError, restore_district, run_reset
from jobs.snapshot.copy import export_for_district
from jobs.snapshot.layout import district_dir, sha256_file
from jobs.snapshot.verify import verify_snapshot
from jobs.snapshot.writer import part_dir
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import DELETED_TABLES
from jobs.warehouse.locks import LockError, command_lock
from tests.support.runner_helpers import (
    dump_app,
    dump_ledger,
    expected_due,
    insert,
    of_district,
    parquet_rows,
    student_rows,
    without,
)

AS_OF = date(2023, 7, 28)
YEAR = 2023
QUIET = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115


def run(settings: Settings, **kw):
    args = {
        "as_of": AS_OF,
        "school_year": YEAR,
        "yes": True,
        "show_progress": False,
        "console": QUIET,
    }
    args.update(kw)
    return run_reset(settings, **args)


def test_refuses_without_confirmation_or_unknown_district(settings, wh, monkeypatch):
    generate_districts(wh, 3, seed=1, students_per_district=1, show_progress=False)
    state, ledger = dump_app(wh), dump_ledger(wh)
    with pytest.raises(RunError, match="refusing to delete without --plan, --yes"):
        run(settings, yes=False, interactive=False)
    with pytest.raises(RunError, match="unknown district 'nope'"):
        run(settings, districts=["nope"])
    asked: list[str] = []
    monkeypatch.setattr("typer.prompt", lambda text, **kw: asked.append(text) or "yes")
    with pytest.raises(RunError, match="confirmation did not match: nothing was deleted"):
        run(settings, yes=False, interactive=True)
    assert asked == [f"Type {len(expected_due(wh, YEAR, AS_OF))} to confirm"]
    assert dump_app(wh) == state and dump_ledger(wh) == ledger


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_second_duckdb_runner_is_refused(settings, wh):
    with command_lock(settings), pytest.raises(LockError, match="another eoy-reset run holds"):
        run(settings)


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_plan_guard_and_named_districts(settings, wh):
    generate_districts(wh, 8, seed=7, students_per_district=2, show_progress=False)
    due = sorted(expected_due(wh, YEAR, AS_OF))
    moved, unplanned, fine = due[0], due[1], due[2]
    path = settings.snapshot_root.parent / "plan.json"
    plan = make_plan(settings, AS_OF, YEAR)
    plan["due"] = [d for d in plan["due"] if d["district_id"] != unplanned]
    write_plan(plan, path)
    assert load_plan(path)["school_year"] == YEAR
    approve_plan(settings, path, by="reviewer")
    # after approval, a district's rows grow by more than 10 %
    school = wh.scalar("select school_id from app.schools where district_id = %s", [moved])
    t = datetime(2023, 5, 1)
    extra = max(1, plan["due"][0]["rows_total"] // 5)
    insert(
        wh,
        "students",
        [(f"{moved}-late{i}", moved, school, "u", "F", "L", "3", t) for i in range(extra)],
    )

    result = run(settings, plan_path=path, yes=False, districts=[moved, unplanned, fine, "d00005"])
    by_id = {d.district_id: d for d in result.districts}
    assert by_id[moved].status == "refused" and "moved" in by_id[moved].error
    assert by_id[unplanned].status == "refused"
    assert "not in the approved plan" in by_id[unplanned].error
    assert by_id[fine].status == "completed"
    assert sorted(result.failed) == sorted([moved, unplanned])
    assert [n["district_id"] for n in result.not_due] == ["d00005"]
    assert student_rows(wh, moved) > 0 and student_rows(wh, unplanned) > 0
    assert student_rows(wh, fine) == 0


def arrive_during_pass(monkeypatch, wh, district, after_table, arrive) -> None:
    """Rows of `district` arrive while its pass runs, just after `after_table`'s rows were
    taken and deleted. On PostgreSQL another session writes and commits them (the pass reads
    at READ COMMITTED); DuckDB has one writer, so they are written in the pass's own
    transaction, the only way they can appear there."""
    import jobs.reset.onepass

    real = jobs.reset.onepass._rows_of
    done: list[bool] = []

    def rows_then_arrive(tx, table, d, delete, expected=None):
        yield from real(tx, table, d, delete, expected)
        if d == district and table == after_table and not done:
            arrive(wh if wh.target == "postgres" else tx, d)
            done.append(True)

    monkeypatch.setattr(jobs.reset.onepass, "_rows_of", rows_then_arrive)


def test_rows_arriving_after_the_snapshot_become_a_delta(settings, wh, monkeypatch):
    generate_districts(wh, 8, seed=7, students_per_district=2, show_progress=False)
    district = sorted(expected_due(wh, YEAR, AS_OF))[0]
    before = dump_app(wh)
    late_id = f"{district}-late"

    def late_student(w, d):
        school = w.scalar("select school_id from app.schools where district_id = %s", [d])
        t = datetime(2023, 7, 27, 23, 59, 59)
        insert(w, "students", [(late_id, d, school, "u", "F", "L", "K", t)])

    arrive_during_pass(monkeypatch, wh, district, "students", late_student)
    first = run(settings, districts=[district])
    monkeypatch.undo()
    outcome = first.districts[0]
    assert outcome.status == "failed" and "1 rows arrived after the snapshot" in outcome.error
    assert student_rows(wh, district) == 1
    main = district_dir(settings.snapshot_root, YEAR, district)
    main_sha = sha256_file(main / "manifest.json")

    second = run(settings, districts=[district])
    assert second.districts[0].status == "completed"
    assert second.districts[0].parts == ["main", "delta-1"]
    assert student_rows(wh, district) == 0
    assert sha256_file(main / "manifest.json") == main_sha  # never rewritten
    delta = Path(part_dir(settings, YEAR, district, "delta-1"))
    assert verify_snapshot(delta)["ok"] and verify_snapshot(main)["ok"]
    assert len(parquet_rows(delta / "students.parquet")) == 1
    total = wh.scalar(
        "select rows_deleted from eoy_runner.reset_runs where district_id = %s", [district]
    )
    assert total == sum(len(of_district(before[t], t, district)) for t in DELETED_TABLES) + 1

    # the district's copy holds every part: the main snapshot and the late row's delta
    for fmt in ("csv", "parquet"):
        copy = export_for_district(settings, district, YEAR, fmt, settings.snapshot_root.parent)
        assert copy["source"] == "snapshot" and len(copy["parts"]) == 2
        assert sum(t["rows"] for t in copy["tables"].values()) == total
        with zipfile.ZipFile(copy["path"]) as zf:
            if fmt == "csv":
                students = zf.read("students.csv").decode().splitlines()[1:]
            else:
                students = pq.read_table(io.BytesIO(zf.read("students.parquet"))).to_pylist()
        assert len(students) == len(of_district(before["students"], "students", district)) + 1
        assert any(late_id in str(row) for row in students)

    restored = restore_district(settings, district, YEAR)
    assert restored["rows_restored"] == total
    assert student_rows(wh, district) == total


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_run_killed_anywhere_is_finished_by_running_again(settings, wh):
    generate_districts(wh, 8, seed=7, students_per_district=2, show_progress=False)
    due = expected_due(wh, YEAR, AS_OF)
    first = sorted(due)[0]
    before = dump_app(wh)
    wh.close()

    def killed_at(fault: str) -> None:
        env = {
            **os.environ,
            "EOY_FAULT": fault,
            "EOY_TARGET": "duckdb",
            "EOY_DUCKDB_PATH": str(settings.duckdb_path),
            "EOY_SNAPSHOT_ROOT": str(settings.snapshot_root),
        }
        done = subprocess.run(
            [sys.executable, "-m", "jobs", "run", "--as-of", AS_OF.isoformat(), "--yes", "--json"],
            cwd=PROJECT_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == -9, done.stderr

    # in the middle of the first district's pass: rolled back, no snapshot in place
    killed_at("export:progress")
    main = district_dir(settings.snapshot_root, YEAR, first)
    with connect(settings) as w:
        assert student_rows(w, first) == sum(
            len(of_district(before[t], t, first)) for t in DELETED_TABLES
        )
        assert w.scalar("select status from eoy_runner.reset_runs where district_id = %s", [first])
    assert not main.exists()
    # just after its pass committed, before its snapshot folder was put in place
    killed_at("after:commit")
    assert not main.exists()
    staged = [p for p in main.parent.iterdir() if p.name.startswith(f".{first}.tmp-")]
    assert len(staged) == 1 and (staged[0] / "manifest.json").is_file()
    sha = sha256_file(staged[0] / "manifest.json")

    result = run(settings)
    assert result.failed == []
    assert first not in {d.district_id for d in result.districts}  # done already
    with connect(settings) as w:
        after = dump_app(w, ignore_sync_state=True)
        for table in DELETED_TABLES:
            assert after[table] == without(before[table], table, due)
        runs = w.query("select district_id, status from eoy_runner.reset_runs")
        assert dict(runs) == dict.fromkeys(due, "completed")
        deletes = w.query(
            "select district_id, count(*) from eoy_runner.reset_events "
            "where step = 'delete' and status = 'completed' group by district_id"
        )
        assert dict(deletes) == dict.fromkeys(due, 1)  # never deleted twice
    assert sha256_file(main / "manifest.json") == sha  # the committed snapshot, put in place
    assert not [p for p in main.parent.iterdir() if p.name.startswith(".")]
    for district in due:
        folder = district_dir(settings.snapshot_root, YEAR, district)
        assert verify_snapshot(folder)["ok"]
        for table in DELETED_TABLES:
            assert parquet_rows(folder / f"{table}.parquet") == of_district(
                before[table], table, district
            )


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_concurrent_runners_on_postgres_reset_each_district_once(settings, wh):
    generate_districts(wh, 8, seed=7, students_per_district=2, show_progress=False)
    due = expected_due(wh, YEAR, AS_OF)
    results: list[dict] = []
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            results.append(run(settings, workers=2))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    completed = [d.district_id for r in results for d in r.districts if d.status == "completed"]
    assert sorted(completed) == sorted(due)
    others = [d for r in results for d in r.districts if d.status != "completed"]
    assert all(d.status == "skipped" for d in others), others
    assert all(student_rows(wh, d) == 0 for d in due)
    deletes = wh.query(
        "select district_id, count(*) from eoy_runner.reset_events "
        "where step = 'delete' and status = 'completed' group by district_id"
    )
    assert dict(deletes) == dict.fromkeys(due, 1)


def test_demo_refuses_postgres_and_a_warehouse_it_did_not_make(settings, wh):
    from jobs.demo import DemoError, run_demo

    with pytest.raises(DemoError):
        run_demo(settings, QUIET)  # postgres: refused; duckdb: the file is not a demo's
    assert dump_ledger(wh) == ([], 0)


def test_a_late_row_referring_to_snapshotted_rows_is_never_lost(settings, wh, monkeypatch):
    generate_districts(wh, 8, seed=7, students_per_district=2, show_progress=False)
    district = sorted(expected_due(wh, YEAR, AS_OF))[0]
    rows_before = student_rows(wh, district)

    def late_assessment(w, d):
        student = w.scalar("select min(student_id) from app.students where district_id = %s", [d])
        t = datetime(2023, 7, 27, 23, 59, 59)
        insert(w, "assessments", [(f"{d}-late", d, student, "imagine_math", "benchmark", t, 1)])

    arrive_during_pass(monkeypatch, wh, district, "assessments", late_assessment)
    first = run(settings, districts=[district]).districts[0]
    monkeypatch.undo()
    assert first.status == "failed"
    if settings.target == "postgres":  # the foreign key stops the delete: all rolled back
        assert first.step == "delete" and "refer to its rows" in first.error, first.error
        assert student_rows(wh, district) == rows_before + 1
    else:  # no foreign keys: the late row stays behind, the next run takes it as a delta
        assert first.step == "check_retention"
        assert student_rows(wh, district) == 1

    second = run(settings, districts=[district]).districts[0]
    assert second.status == "completed"
    assert second.parts == (["main"] if settings.target == "postgres" else ["main", "delta-1"])
    assert student_rows(wh, district) == 0
    assert second.rows_deleted == rows_before + 1
    assert restore_district(settings, district, YEAR)["rows_restored"] == rows_before + 1
    assert student_rows(wh, district) == rows_before + 1


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_duckdb_memory_is_held_small_only_while_districts_pass(
    settings: Settings, wh: Warehouse
) -> None:
    from jobs.reset.connections import PASS_SETTINGS, Connections

    assert PASS_SETTINGS["memory_limit"] == "256MB"
    default = wh.scalar("select current_setting('memory_limit')")
    with Connections(settings) as connections:
        passing = connections.get()
        # one database in this process: the setting is the database's, seen on every connection
        assert passing.scalar("select current_setting('memory_limit')") == "244.1 MiB"
        assert wh.scalar("select current_setting('memory_limit')") == "244.1 MiB"
    assert wh.scalar("select current_setting('memory_limit')") == default != "244.1 MiB"
