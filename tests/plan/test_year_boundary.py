"""A reset of one school year never takes the next year's roster.

Once a district's rostering for school year Y + 1 has completed, its live rows are next
year's: no pass for Y runs (first, delta, or a restored district taken up again), `plan`
shows the district as closed with the reason, and the copy of Y holds Y's rows only.
"""

from __future__ import annotations

import io
import json
import urllib.request
import zipfile
from dataclasses import replace
from datetime import date, datetime

import pytest

from jobs.config import Settings
from jobs.plan.planner import make_plan
from jobs.reset.runner import restore_district
from jobs.snapshot.copy import export_for_district
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.ledger import events
from tests.reset.test_runner import arrive_during_pass, run
from tests.reset.test_sessions_ended import at_fault_point
from tests.support import operator_data as od
from tests.support.crash_helpers import run_cli
from tests.support.runner_helpers import expected_due, insert, student_rows

AS_OF = date(2023, 7, 28)
YEAR = 2023
NEXT = "d-2024-student"


def roster_next_year(wh: Warehouse, district: str) -> None:
    """The district's 2024 rostering completes, and it brings a 2024 student."""
    school = wh.scalar("select school_id from app.schools where district_id = %s", [district])
    t = datetime(2023, 8, 20, 6, 0, 0)
    insert(wh, "students", [(NEXT, district, school, "new24", "New", "Kid", "K", t)])
    wh.execute(
        "insert into app.rostering_runs (district_id, school_year, completed_at) "
        "values (%s, %s, %s)",
        [district, YEAR + 1, t],
    )


def rerun_named(settings: Settings, district: str) -> tuple[int, str, dict]:
    done = run_cli(
        settings,
        ["run", "--yes", "--json", "--as-of", AS_OF.isoformat(), "--school-year", str(YEAR),
         "--district", district],
    )  # fmt: skip
    return done.returncode, done.stderr, json.loads(done.stdout)


def next_year_student_present(wh: Warehouse) -> bool:
    return bool(wh.scalar("select count(*) from app.students where student_id = %s", [NEXT]))


def test_a_restored_district_is_not_reset_again_after_the_next_years_rostering(
    settings: Settings, wh: Warehouse
) -> None:
    generate_districts(wh, 3, seed=5, students_per_district=3, show_progress=False)
    district = sorted(expected_due(wh, YEAR, AS_OF))[0]
    assert run(settings, districts=[district]).districts[0].status == "completed"
    roster_next_year(wh, district)

    restored = restore_district(settings, district, YEAR)
    assert restored["warning"] and "can leave only with the 2024 reset" in restored["warning"]
    rows = student_rows(wh, district)
    assert rows > 1

    code, err, doc = rerun_named(settings, district)
    assert code == 1
    assert len(err.strip().splitlines()) == 1, err
    assert "rostering for 2024 completed on 2023-08-20" in err
    assert doc["not_due"][0]["district_id"] == district
    # nothing was deleted: the restored rows and the 2024 student stay
    assert next_year_student_present(wh)
    assert student_rows(wh, district) == rows


def test_a_delta_after_the_next_years_rostering_is_refused_and_before_it_taken(
    settings: Settings, wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate_districts(wh, 3, seed=6, students_per_district=2, show_progress=False)
    first, second = sorted(expected_due(wh, YEAR, AS_OF))[:2]

    def late_student(w: Warehouse, d: str) -> None:
        school = w.scalar("select school_id from app.schools where district_id = %s", [d])
        t = datetime(2023, 7, 27, 23, 59, 59)
        insert(w, "students", [(f"{d}-late", d, school, f"late{d}", "F", "L", "K", t)])

    for district in (first, second):  # each pass leaves a late row: a delta is owed
        arrive_during_pass(monkeypatch, wh, district, "students", late_student)
        outcome = run(settings, districts=[district]).districts[0]
        monkeypatch.undo()
        assert outcome.status == "failed" and "arrived after the snapshot" in outcome.error

    # the first district's new year is rostered: its delta would take 2024 rows
    roster_next_year(wh, first)
    code, err, _ = rerun_named(settings, first)
    assert code == 1 and "school year 2023 is closed" in err
    assert student_rows(wh, first) == 2  # the late row and the 2024 student stay

    # a run that does not name it skips it and says so; the other's delta is taken
    result = run(settings)
    by_id = {d.district_id: d for d in result.districts}
    assert by_id[first].status == "skipped"
    assert "rostering for 2024 completed" in (by_id[first].error or "")
    assert by_id[second].status == "completed"
    assert by_id[second].parts == ["main", "delta-1"]
    assert student_rows(wh, second) == 0
    assert next_year_student_present(wh)


def test_the_copy_of_a_reset_year_holds_that_years_rows_only(
    settings: Settings, wh: Warehouse
) -> None:
    generate_districts(wh, 3, seed=7, students_per_district=3, show_progress=False)
    district = sorted(expected_due(wh, YEAR, AS_OF))[0]
    out = settings.snapshot_root.parent / "copies"
    before = export_for_district(settings, district, YEAR, "csv", out)
    assert before["source"] == "warehouse"  # before the reset: the live rows
    students = before["tables"]["students"]["rows"]

    assert run(settings, districts=[district]).districts[0].status == "completed"
    roster_next_year(wh, district)
    for fmt in ("csv", "parquet"):
        copy = export_for_district(settings, district, YEAR, fmt, out)
        assert copy["source"] == "snapshot"
        assert copy["tables"]["students"]["rows"] == students
        with zipfile.ZipFile(copy["path"]) as zf:
            assert NEXT.encode() not in zf.read(f"students.{fmt}")


def test_the_plan_shows_a_district_whose_year_the_rostering_closed(
    settings: Settings, wh: Warehouse
) -> None:
    generate_districts(wh, 3, seed=8, students_per_district=2, show_progress=False)
    due = sorted(expected_due(wh, YEAR, AS_OF))
    roster_next_year(wh, due[0])
    plan = make_plan(settings, AS_OF, YEAR)
    assert [d["district_id"] for d in plan["due"]] == due[1:]
    (closed,) = plan["closed"]
    assert closed["district_id"] == due[0]
    assert "rostering for 2024 completed on 2023-08-20" in closed["reason"]
    assert plan["totals"]["closed"] == 1
    shown = run_cli(settings, ["plan", "--as-of", AS_OF.isoformat()], COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    assert "Closed" in shown.stdout and due[0] in shown.stdout


@pytest.mark.s3
def test_share_after_the_next_years_rostering_links_that_years_rows_only(
    settings: Settings, s3_root: str
) -> None:
    """`share` of a reset year, once the next year's rostering completed, uploads the copy of
    the snapshot: the link downloads the year's students, not the 2024 one."""
    s3 = replace(settings, snapshot_root=s3_root)
    od.fresh(s3)
    done = od.eoy(s3, ["run", "--as-of", "2023-07-28", "--yes", "--json"])
    assert done.returncode == 0, done.stderr
    with connect(s3) as wh:
        roster_next_year(wh, "early")
    shared = od.eoy(
        s3, ["share", "--district", "early", "--school-year", "2023", "--expires", "1h"],
        COLUMNS="200",
    )  # fmt: skip
    assert shared.returncode == 0, shared.stderr
    link = shared.stdout.strip().splitlines()[-1]
    assert link.startswith("http")
    with urllib.request.urlopen(link, timeout=30) as response:
        body = response.read()
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        students = zf.read("students.csv").decode()
        readme = zf.read("README.txt").decode()
    assert NEXT not in students and len(students.splitlines()) == 1 + 2
    assert "snapshot" in readme
    with connect(s3) as wh:
        assert next_year_student_present(wh)


@pytest.mark.parametrize("how", ["alone", "batch"])
def test_rostering_completed_after_the_run_chose_the_district_stops_it_in_the_delete(
    settings: Settings, wh: Warehouse, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The run has chosen the district and paused its syncs; its rostering for 2024 completes
    before the deleting transaction begins. The transaction's own check refuses it: nothing
    is deleted, the 2024 student stays, and a later run says the year is closed."""
    generate_districts(wh, 3, seed=9, students_per_district=2, show_progress=False)
    due = sorted(expected_due(wh, YEAR, AS_OF))
    district = due[0]
    rows = student_rows(wh, district)
    rostered_now: list[float] = []

    def rostering_completes(seconds: float) -> None:
        roster_next_year(wh, district)  # another session, committed
        rostered_now.append(seconds)

    with at_fault_point(monkeypatch, "after:pause_syncs", rostering_completes):
        result = run(settings, districts=[district] if how == "alone" else None)
    assert rostered_now, "the run never reached the point after pause_syncs"
    by_id = {d.district_id: d for d in result.districts}
    assert by_id[district].status != "completed"
    assert "rostering for 2024 completed on 2023-08-20" in (by_id[district].error or "")
    assert next_year_student_present(wh)
    assert student_rows(wh, district) == rows + 1  # its rows and the 2024 student
    with connect(settings) as fresh:
        deleted = [e for e in events(fresh, district, YEAR, "delete") if e["status"] == "completed"]
    assert deleted == []
    if how == "batch":  # the others of the batch were reset
        assert all(by_id[d].status == "completed" for d in due[1:])
    code, err, _ = rerun_named(settings, district)
    assert code == 1 and "school year 2023 is closed" in err
