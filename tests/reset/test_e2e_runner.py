"""The whole reset on both targets: run, rerun, resume syncs, restore, run a restored district."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from rich.console import Console

from jobs.reset.runner import (
    render_status,
    render_summary,
    reset_status,
    restore_district,
    resume_syncs,
    run_reset,
)
from jobs.snapshot.store import open_store
from jobs.snapshot.verify import verify_snapshot
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.contract import DELETED_TABLES, RETAINED_TABLES
from jobs.warehouse.ledger import utcnow
from tests.support.runner_helpers import (
    assert_syncs_paused,
    dump_app,
    dump_ledger,
    expected_due,
    insert,
    local_part,
    of_district,
    parquet_rows,
    part_location,
    student_rows,
    without,
    without_sync_state,
)

AS_OF = date(2023, 7, 28)
YEAR = 2023
QUIET = Console(file=open("/dev/null", "w"), width=120)  # noqa: SIM115


def run(settings, **kw):
    args = {
        "as_of": AS_OF,
        "school_year": YEAR,
        "yes": True,
        "show_progress": False,
        "console": QUIET,
    }
    args.update(kw)
    return run_reset(settings, **args)


def test_reset_end_to_end(rooted, wh):
    """On both targets, with the snapshots in a folder and in an S3 bucket."""
    settings = rooted
    generate_districts(wh, 8, seed=7, students_per_district=2, show_progress=False)
    due = expected_due(wh, YEAR, AS_OF)
    assert 2 <= len(due) < 8, "the calendar mix should make some districts due, not all"
    # last year's sync history on a due district; syncs paused by hand on a due district and
    # on one not due
    last_year = (datetime(2022, 7, 29, 6, 0), datetime(2022, 8, 21, 6, 0))
    wh.execute(
        "update app.import_syncs set paused_at = %s, resumed_at = %s where district_id = %s",
        [*last_year, sorted(due)[0]],
    )
    idle = sorted(set(r[0] for r in wh.query("select district_id from app.districts")) - due)[0]
    wh.execute(
        "update app.import_syncs set status = 'paused', paused_at = %s where district_id = %s",
        [last_year[0], idle],
    )
    by_hand = sorted(due)[1]
    insert(wh, "import_syncs", [(f"{by_hand}-x", by_hand, "clever", "paused", *last_year, None)])
    before = dump_app(wh)

    # --dry-run: says who would run, changes nothing (not even the ledger)
    ledger = dump_ledger(wh)
    dry = run(settings, dry_run=True, yes=False)
    assert {d.district_id for d in dry.districts} == due
    assert all(d.status == "would_run" for d in dry.districts)
    assert dump_app(wh) == before and dump_ledger(wh) == ledger
    assert open_store(settings).snapshots() == []
    if not open_store(settings).object_store:
        assert not Path(settings.snapshot_root).exists()
    render_summary(QUIET, dry)

    started = utcnow()
    result = run(settings)
    assert result.failed == []
    assert {d.district_id for d in result.districts} == due
    assert all(d.status == "completed" for d in result.districts)
    render_summary(QUIET, result)

    after = dump_app(wh, ignore_sync_state=True)
    unsynced = dump_app(wh)
    for table in DELETED_TABLES:
        # exactly the due districts lost exactly their rows, and each is in its snapshot
        assert after[table] == without(before[table], table, due)
        for district in due:
            with local_part(settings, district, YEAR) as folder:
                assert parquet_rows(folder / f"{table}.parquet") == of_district(
                    before[table], table, district
                )
    for table in RETAINED_TABLES:
        if table != "import_syncs":
            assert unsynced[table] == before[table], table
    # the sync configuration stays; only the due districts' active syncs were paused
    assert after["import_syncs"] == without_sync_state(before["import_syncs"])
    assert_syncs_paused(before["import_syncs"], unsynced["import_syncs"], due, started)
    for district in due:
        assert verify_snapshot(part_location(settings, district, YEAR))["ok"]
    assert len(open_store(settings).snapshots()) == len(due)
    runs = wh.query_dicts("select * from eoy_runner.reset_runs")
    assert {r["district_id"] for r in runs if r["status"] == "completed"} == due
    assert sum(r["rows_deleted"] for r in runs) == sum(
        len(before[t]) - len(after[t]) for t in DELETED_TABLES
    )
    steps = [
        r[0]
        for r in wh.query(
            "select step from eoy_runner.reset_events where district_id = %s and status = "
            "'completed' order by event_id",
            [sorted(due)[0]],
        )
    ]
    assert steps == ["pause_syncs", "export", "verify", "delete", "check_retention", "complete"]

    # rerun: a no-op
    state, ledger = dump_app(wh), dump_ledger(wh)
    again = run(settings)
    assert again.districts == [] and again.failed == []
    assert dump_app(wh) == state and dump_ledger(wh) == ledger

    # status
    status = reset_status(settings, YEAR)
    assert {d["district_id"]: d["status"] for d in status["districts"]} == dict.fromkeys(
        due, "completed"
    )
    assert all(d["last_step"] == "complete" for d in status["districts"])
    render_status(QUIET, status)

    # resume-syncs: only once the new school year is rostered, and only once
    first, second = sorted(due)[:2]
    assert resume_syncs(settings)["resumed"] == []
    insert(wh, "rostering_runs", [(first, YEAR + 1, datetime(2023, 8, 20, 6, 0))])
    assert resume_syncs(settings)["resumed"] == [first]
    assert resume_syncs(settings)["resumed"] == []
    active = {
        r[0] for r in wh.query("select district_id from app.import_syncs where status = 'active'")
    }
    assert first in active and second not in active

    # restore: the exact rows come back, and the district is held from automatic resets
    done = restore_district(settings, second, YEAR)
    assert done["rows_restored"] == sum(
        len(of_district(before[t], t, second)) for t in DELETED_TABLES
    )
    restored = dump_app(wh)
    for table in DELETED_TABLES:
        assert of_district(restored[table], table, second) == of_district(
            before[table], table, second
        )
    assert (
        wh.scalar("select status from eoy_runner.reset_runs where district_id = %s", [second])
        == "restored"
    )
    assert run(settings).districts == []
    assert student_rows(wh, second) > 0

    # named explicitly, a restored district is reset again; its snapshot is reused
    named = run(settings, districts=[second])
    assert [d.status for d in named.districts] == ["completed"]
    assert student_rows(wh, second) == 0
    assert verify_snapshot(part_location(settings, second, YEAR))["ok"]
