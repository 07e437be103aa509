"""`eoy-reset restore` refuses, whole, when a row of the snapshot is back in the warehouse."""

from __future__ import annotations

from datetime import date

from jobs.config import Settings
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import Warehouse, connect
from tests.support.crash_helpers import run_cli
from tests.support.runner_helpers import dump_app, dump_ledger, expected_due, insert, of_district

AS_OF = date(2023, 7, 28)
YEAR = 2023


def test_restore_refuses_when_a_snapshot_row_exists_already(
    rooted: Settings, wh: Warehouse
) -> None:
    """With the snapshots in a folder and in an S3 bucket."""
    settings = rooted
    generate_districts(wh, 8, seed=7, students_per_district=2, show_progress=False)
    district = sorted(expected_due(wh, YEAR, AS_OF))[0]
    before = dump_app(wh)
    wh.close()  # DuckDB: one process at a time
    assert run_cli(settings).returncode == 0  # run --yes
    with connect(settings) as w:
        # a classroom of the snapshot is back (a re-import, say); classrooms go back after
        # the students, so a restore that is not one transaction would leave students behind
        insert(w, "classrooms", of_district(before["classrooms"], "classrooms", district)[:1])
        state = dump_app(w)
        assert of_district(state["students"], "students", district) == []
        runs, _ = dump_ledger(w)
    assert [r[2] for r in runs if r[:2] == (district, YEAR)] == ["completed"]

    done = run_cli(settings, ["restore", "--district", district, "--school-year", str(YEAR)])

    assert done.returncode != 0, done.stdout
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("eoy-reset: 1 rows of app.classrooms in snapshot "), lines[0]
    assert lines[0].endswith(" exist already: nothing was restored"), lines[0]
    with connect(settings) as w:
        assert dump_app(w) == state
        assert dump_ledger(w)[0] == runs  # still completed, nothing else about it changed
