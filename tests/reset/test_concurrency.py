"""Runners started at once (issue: reliability, item 3): on PostgreSQL any number of them
reset each due district exactly once, and the only thing one may report about another is
that it holds a district; on DuckDB the second runner is refused cleanly and changes nothing.
An operator's restore racing a run of the same district is serialised: it waits for the run
(PostgreSQL, the district's advisory lock) or is refused (DuckDB, the warehouse's file lock).
"""

from __future__ import annotations

import contextlib
import json
import time
from datetime import date
from pathlib import Path

import pytest

from jobs.config import Settings
from jobs.snapshot.layout import district_dir
from jobs.snapshot.verify import verify_snapshot
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import DELETED_TABLES
from jobs.warehouse.ledger import get_run, get_runs, start_runs
from jobs.warehouse.locks import (
    LockError,
    lock_path,
    release_district_lock,
    release_district_locks,
    try_district_lock,
    try_district_locks,
    wait_district_lock,
)
from tests.support.crash_helpers import (
    AS_OF,
    IN_DELETE,
    RUN,
    YEAR,
    assert_same_end_state,
    fresh,
    outcome,
    reference_outcome,
    run_cli,
    start_cli,
)
from tests.support.runner_helpers import dump_app, expected_due, of_district, student_rows

# what one runner may say of a district another runner has (or had) in hand
LOCKED_BY_ANOTHER = {"locked by another runner", "already completed by another runner"}


def step_counts(wh: Warehouse, step: str, status: str) -> dict[str, int]:
    rows = wh.query(
        "select district_id, count(*) from eoy_runner.reset_events "
        "where step = %s and status = %s group by district_id",
        [step, status],
    )
    return {d: int(n) for d, n in rows}


@pytest.mark.parametrize("runners", [2, 4])
@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_runners_started_at_once_reset_each_district_once(
    settings: Settings, wh: Warehouse, runners: int
) -> None:
    generate_districts(wh, 16, seed=7, students_per_district=2, show_progress=False)
    due = expected_due(wh, YEAR, AS_OF)
    # each district takes at least 4 s (its transaction open): the runners that build the
    # models after the first one (dbt builds take turns) still find districts to race for
    procs = [
        start_cli(settings, [*RUN, "--workers", "2"], EOY_PAUSE="after:export:4")
        for _ in range(runners)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert err.strip() == "", err  # no warning, no traceback
        results.append(json.loads(out))

    by_runner = [
        {d["district_id"] for d in r["districts"] if d["status"] == "completed"} for r in results
    ]
    completed = [d for done in by_runner for d in done]
    assert sorted(completed) == sorted(due)  # each due district by exactly one runner
    others = [d for r in results for d in r["districts"] if d["status"] != "completed"]
    assert all(d["status"] == "skipped" and d["error"] in LOCKED_BY_ANOTHER for d in others), others
    assert sum(1 for done in by_runner if done) >= 2, "one runner did everything: no overlap"
    held = [d for d in others if d["error"] == "locked by another runner"]
    assert held, "no runner ever met a district another one held: they never raced"
    print(
        f"{runners} runners, {len(due)} due: completed {[len(d) for d in by_runner]}, "
        f"skipped as held {len(held)}, as completed {len(others) - len(held)}"
    )

    assert step_counts(wh, "delete", "completed") == dict.fromkeys(due, 1)
    assert step_counts(wh, "complete", "completed") == dict.fromkeys(due, 1)
    assert wh.scalar("select count(*) from eoy_runner.reset_events where status = 'failed'") == 0
    runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
    assert runs == dict.fromkeys(due, "completed")
    for district in due:
        assert student_rows(wh, district) == 0
        assert verify_snapshot(district_dir(settings.snapshot_root, YEAR, district))["ok"]


def worker_pids(runner: int) -> list[int]:
    """The runner's worker processes (multiprocessing's spawned children)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
            if int(fields[1]) == runner and b"spawn_main" in cmdline:
                found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped has died)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_worker_processes_die_with_a_killed_runner(settings: Settings, wh: Warehouse) -> None:
    """`--workers 2` on PostgreSQL: worker processes; kill -9 of the runner kills them too
    (nothing keeps deleting after the operator's kill), nothing half-done is left, and the
    same command run again resets every due district exactly once."""
    generate_districts(wh, 8, seed=7, students_per_district=2, show_progress=False)
    due = expected_due(wh, YEAR, AS_OF)
    runner = start_cli(settings, [*RUN, "--workers", "2"], EOY_PAUSE="after:export:60")
    deadline = time.monotonic() + 120
    while (
        len(workers := worker_pids(runner.pid)) < 2
        or wh.scalar("select count(*) from eoy_runner.reset_runs where status = 'running'") < 2
    ):
        assert runner.poll() is None and time.monotonic() < deadline, runner.communicate()
        time.sleep(0.05)
    assert len(workers) == 2, workers  # each inside a district's transaction now
    runner.kill()
    runner.wait()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its runner"
        time.sleep(0.05)
    for district in due:  # both passes rolled back with their workers
        assert student_rows(wh, district) > 0
    assert wh.scalar("select count(*) from eoy_runner.reset_events where step = 'delete'") == 0

    again = run_cli(settings, [*RUN, "--workers", "2"])
    assert again.returncode == 0, again.stderr
    assert {d["status"] for d in json.loads(again.stdout)["districts"]} == {"completed"}
    assert step_counts(wh, "delete", "completed") == dict.fromkeys(due, 1)
    for district in due:
        assert student_rows(wh, district) == 0
        assert verify_snapshot(district_dir(settings.snapshot_root, YEAR, district))["ok"]


def wait_until(path: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_second_duckdb_runner_is_refused_cleanly_and_changes_nothing(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    fresh(settings)
    first = start_cli(settings, EOY_PAUSE="after:complete:1.5")
    # its first snapshot folder: the first runner is inside its run, holding the warehouse
    wait_until(district_dir(settings.snapshot_root, YEAR, "d00001"))
    second = run_cli(settings)
    assert first.poll() is None, "the first runner ended before the second one started"
    assert second.returncode == 2
    held = (
        f"another eoy-reset run holds the warehouse {settings.duckdb_path}: "
        "wait for it to finish, then run again"
    )
    assert json.loads(second.stdout) == {"ok": False, "error": held}  # it asked for --json
    assert second.stderr.splitlines() == [f"eoy-reset: {held}"]
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert_same_end_state(outcome(settings), reference)  # as if the second never ran


# ---------------------------------------------------------------------------------------
# an operator's restore racing a run of the same district
# ---------------------------------------------------------------------------------------
RESTORE = ["restore", "--district", "d00001", "--school-year", str(YEAR), "--json"]
RERUN = [*RUN, "--district", "d00001"]


def district_data(settings: Settings, district: str) -> dict[str, list[tuple[object, ...]]]:
    with connect(settings) as wh:
        data = dump_app(wh)
    return {t: of_district(data[t], t, district) for t in DELETED_TABLES}


def ledger_of(settings: Settings, district: str) -> list[tuple[str, str]]:
    with connect(settings) as wh:
        rows = wh.query(
            "select step, status from eoy_runner.reset_events where district_id = %s "
            "and step in ('delete', 'restore', 'complete') and status <> 'started' "
            "order by event_id",
            [district],
        )
        assert (
            wh.scalar("select count(*) from eoy_runner.reset_events where status = 'failed'") == 0
        )
    return [(s, st) for s, st in rows]


def reset_then_restored(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    """Every district reset, then d00001 restored: an operator may now run it again."""
    fresh(settings)
    original = district_data(settings, "d00001")
    assert run_cli(settings).returncode == 0
    assert run_cli(settings, RESTORE).returncode == 0
    assert district_data(settings, "d00001") == original
    return original


def flock_held(path: Path) -> bool:
    """Whether any process holds a flock on the file (read from /proc/locks, taking none)."""
    if not path.exists():
        return False
    inode = path.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()  # 1: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF
        if fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
            return True
    return False


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_restore_during_a_run_of_the_district_waits_for_it(settings: Settings) -> None:
    original = reset_then_restored(settings)
    # the operator resets it again; its delete holds 4 s
    run = start_cli(settings, RERUN, EOY_PAUSE="export:students:4")
    with connect(settings) as wh:
        deadline = time.monotonic() + 120
        while not wh.query(IN_DELETE):
            assert run.poll() is None and time.monotonic() < deadline, "no delete to race"
            time.sleep(0.05)
    restore = start_cli(settings, RESTORE)
    time.sleep(1.5)
    assert restore.poll() is None, "the restore did not wait for the run holding the district"
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    out, err = restore.communicate(timeout=300)
    assert restore.returncode == 0, err
    # the restore came after the run, whole: the rows of the second reset are back, once
    assert json.loads(out)["rows_restored"] == sum(len(r) for r in original.values())
    assert district_data(settings, "d00001") == original
    assert ledger_of(settings, "d00001") == [
        ("delete", "completed"),
        ("complete", "completed"),
        ("restore", "completed"),
        ("delete", "completed"),
        ("complete", "completed"),
        ("restore", "completed"),
    ]


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_district_restored_while_a_run_is_under_way_is_left_restored(
    settings: Settings,
) -> None:
    fresh(settings)
    original = district_data(settings, "d00004")
    # d00004's rows were deleted, but its run is not complete (as check_retention leaves it
    # when rows arrived after the snapshot): the next run takes it up again
    done = run_cli(settings, [*RUN, "--district", "d00004"])
    assert done.returncode == 0, done.stderr
    with connect(settings) as wh:
        wh.execute(
            "update eoy_runner.reset_runs set status = 'failed' where district_id = 'd00004'"
        )
    # a full run starts (d00004 is among its due districts, last), and waits 3 s after each
    # district it completes (d00001 to d00003 pass together, in one batch)
    run = start_cli(settings, EOY_PAUSE="after:complete:3")
    with connect(settings) as wh:
        deadline = time.monotonic() + 120
        while not wh.query(
            "select 1 from eoy_runner.reset_events where district_id = 'd00001' "
            "and step = 'check_retention' and status = 'completed'"
        ):
            assert run.poll() is None and time.monotonic() < deadline, "d00001 never got there"
            time.sleep(0.05)
    # meanwhile the operator restores d00004, which nobody holds
    restored = run_cli(settings, [*RESTORE[:2], "d00004", *RESTORE[3:]])
    assert restored.returncode == 0, restored.stderr
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    by_id = {d["district_id"]: d for d in json.loads(out)["districts"]}
    assert by_id["d00004"]["status"] == "skipped", by_id["d00004"]
    assert "restored" in by_id["d00004"]["error"]
    assert {d: o["status"] for d, o in by_id.items() if d != "d00004"} == dict.fromkeys(
        ["d00001", "d00002", "d00003"], "completed"
    )
    # the operator's restore stands: nothing of d00004 was deleted again
    assert district_data(settings, "d00004") == original
    assert ledger_of(settings, "d00004") == [
        ("delete", "completed"),
        ("complete", "completed"),
        ("restore", "completed"),
    ]


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_restore_during_a_duckdb_run_is_refused_cleanly(settings: Settings) -> None:
    original = reset_then_restored(settings)
    before = ledger_of(settings, "d00001")
    run = start_cli(settings, RERUN, EOY_PAUSE="before:complete:3")
    deadline = time.monotonic() + 120
    while not flock_held(lock_path(settings)):
        assert run.poll() is None and time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    refused = run_cli(settings, RESTORE)
    assert run.poll() is None, "the run ended before the restore started"
    assert refused.returncode == 2
    held = (
        f"another eoy-reset run holds the warehouse {settings.duckdb_path}: "
        "wait for it to finish, then run again"
    )
    assert json.loads(refused.stdout) == {"ok": False, "error": held}  # it asked for --json
    assert refused.stderr.splitlines() == [f"eoy-reset: {held}"]
    _, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    # the run reset the district again; the refused restore left no trace
    assert district_data(settings, "d00001") == {t: [] for t in DELETED_TABLES}
    assert ledger_of(settings, "d00001") == [
        *before,
        ("delete", "completed"),
        ("complete", "completed"),
    ]
    # once the run is over, the operator's restore goes through
    assert run_cli(settings, RESTORE).returncode == 0
    assert district_data(settings, "d00001") == original


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_one_lock_a_district_whatever_the_school_year(settings: Settings, wh: Warehouse) -> None:
    """A restore of last year's reset and a run of this year's never work a district at once."""
    with connect(settings) as other:
        assert try_district_lock(wh, "D", YEAR)
        assert not try_district_lock(other, "D", YEAR + 1)
        assert try_district_lock(other, "E", YEAR)  # other districts go on
        with pytest.raises(LockError, match="another eoy-reset process"):
            wait_district_lock(other, "D", YEAR - 1, timeout=0.5)
        release_district_lock(wh, "D", YEAR)
        assert try_district_lock(other, "D", YEAR + 1)


@pytest.mark.parametrize(
    "target", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_batch_takes_and_releases_its_districts_locks_in_one_statement_each(
    settings: Settings, wh: Warehouse
) -> None:
    """A batch's districts are locked together: it holds the free ones only, and the same
    lock as one district's (a district id with a quote is a district id like any other)."""
    with connect(settings) as other:
        assert try_district_lock(other, "B", YEAR)
        assert try_district_locks(wh, ["A", "B", "C'D"], YEAR) == {"A", "C'D"}
        assert not try_district_lock(other, "C'D", YEAR + 1)
        release_district_locks(wh, ["A", "C'D"], YEAR)
        assert try_district_locks(other, ["A", "C'D"], YEAR) == {"A", "C'D"}
        assert try_district_locks(wh, [], YEAR) == set()
    # and the run rows there are, read for the batch in one query
    start_runs(wh, YEAR, [("A", date(YEAR, 7, 1)), ("C'D", date(YEAR, 7, 1))])
    runs = get_runs(wh, ["A", "B", "C'D"], YEAR)
    assert sorted(runs) == ["A", "C'D"] and runs["A"] == get_run(wh, "A", YEAR)
    assert get_runs(wh, ["A"], YEAR + 1) == {} and get_runs(wh, [], YEAR) == {}
