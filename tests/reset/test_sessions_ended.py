"""Sessions the server ends under a runner, and two runners putting one part in place.

The smaller points of the review of committed deletes that lost their snapshot, each against
the real thing: a PostgreSQL backend ended with `pg_terminate_backend` (as a server timeout or
a network cut ends it), a bucket of a real S3 API, a real file system.
- the lock-session scenario on a bucket: the first runner's lock session ends mid-pass, a
  second runner takes the district, and the first one's staging objects are not touched;
- `swap_in`: runners putting the same committed part in place at once leave it in place, whole;
- the dbt lock: leaving it after the server ended its session raises nothing, and the lock is
  free for the next build;
- a runner connection the server ended during one district is replaced before the next.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest

import jobs.faults as faults
import jobs.reset.runner as runner
from jobs.config import Settings
from jobs.snapshot.folder import swap_in
from jobs.snapshot.store import open_store
from jobs.snapshot.verify import verify_snapshot
from jobs.warehouse.connection import connect
from jobs.warehouse.contract import DELETED_TABLES
from jobs.warehouse.locks import dbt_lock
from tests.reset.test_runner import run
from tests.support.crash_helpers import (
    RUN,
    YEAR,
    assert_same_end_state,
    fresh,
    lock_holders,
    reference_outcome,
    run_cli,
    start_cli,
    wait_for,
)
from tests.support.runner_helpers import dump_app, local_part, parquet_rows
from tests.support.s3_server import ThrowawayS3

DISTRICT = "d00001"
ALONE = [*RUN, "--district", DISTRICT]
POSTGRES = pytest.param("postgres", marks=pytest.mark.postgres)


@contextmanager
def at_fault_point(
    monkeypatch: pytest.MonkeyPatch, point: str, act: Callable[[float], None]
) -> Iterator[None]:
    """`act` runs where the runner first reaches the fault point (the test-only switch's
    pause, of no seconds, does it), whichever module of the runner reaches it."""
    with monkeypatch.context() as patch:
        patch.setenv("EOY_PAUSE", f"{point}:0@1")
        patch.setattr(faults, "time", SimpleNamespace(sleep=act))
        patch.setattr(faults, "_hits", {})
        yield


def terminate_others(settings: Settings, admin: psycopg.Connection[Any]) -> list[int]:
    """End every backend of the test's database but the admin's own: the runner's sessions."""
    pids = [
        int(pid)
        for (pid,) in admin.execute(
            "select pid from pg_stat_activity where datname = current_database() "
            "and pid <> pg_backend_pid()"
        ).fetchall()
    ]
    for pid in pids:
        admin.execute("select pg_terminate_backend(%s)", [pid])
    return pids


# ---------------------------------------------------------------------------------------
# the lock's session ends mid-pass, snapshots in a bucket
# ---------------------------------------------------------------------------------------
def staging_keys(server: ThrowawayS3, root: str) -> list[str]:
    """The keys of the district's staging objects in the bucket (`.d00001.tmp-…/…`)."""
    parts = urlsplit(root)
    listed = server.client().list_objects_v2(
        Bucket=parts.netloc, Prefix=f"{parts.path.strip('/')}/{YEAR}/.{DISTRICT}."
    )
    return sorted(o["Key"] for o in listed.get("Contents", []))


def bucket_outcome(settings: Settings) -> dict[str, Any]:
    """`crash_helpers.outcome`, with each district's snapshot read from the bucket."""
    with connect(settings) as wh:
        data = dump_app(wh, ignore_sync_state=True)
        runs = sorted(
            wh.query(
                "select district_id, school_year, status, rows_deleted from eoy_runner.reset_runs"
            )
        )
        deletes = dict(
            wh.query(
                "select district_id, sum(cast(1 as integer)) from eoy_runner.reset_events "
                "where step = 'delete' and status = 'completed' group by district_id"
            )
        )
        syncs = wh.query("select district_id, status from app.import_syncs order by sync_id")
    snapshots = {}
    for district, *_ in runs:
        with local_part(settings, district, YEAR) as folder:
            checked = verify_snapshot(folder)
            assert checked["ok"], checked["problems"]
            snapshots[district] = {t: parquet_rows(folder / f"{t}.parquet") for t in DELETED_TABLES}
    return {"data": data, "runs": runs, "deletes": deletes, "snapshots": snapshots, "syncs": syncs}


@pytest.mark.s3
@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_a_second_runner_leaves_the_staging_in_a_bucket_of_a_pass_whose_lock_session_ended(
    settings: Settings,
    s3_root: str,
    s3_server: ThrowawayS3,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The first runner waits in its pass, its parts verified in the bucket's staging; its
    lock's backend is ended, and with it the deleting transaction (the lock lives on the
    session that deletes), so the first can no longer commit; a second runner completes
    the district. The end state is one complete snapshot holding every deleted row, no
    staging object is left, and it restores."""
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    settings = replace(settings, snapshot_root=s3_root)
    fresh(settings)
    first = start_cli(settings, ALONE, EOY_PAUSE="after:verify:6@1")
    with psycopg.connect(settings.pg_dsn or "", autocommit=True) as admin:
        wait_for(
            lambda: any(k.endswith("/manifest.json") for k in staging_keys(s3_server, s3_root)),
            "the first runner's verified staging in the bucket",
        )
        staged = staging_keys(s3_server, s3_root)
        holders = lock_holders(admin, DISTRICT)
        assert holders, "the first runner holds no lock on the district"
        for pid in holders:
            admin.execute("select pg_terminate_backend(%s)", [pid])
        wait_for(lambda: not lock_holders(admin, DISTRICT), "the lock to be released")
        # while the first runner's pass is still open, a second runner starts
        second = run_cli(settings, ALONE)
    first.communicate(timeout=300)
    assert first.returncode == 1  # its pass ended with its session: nothing of it committed
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["districts"][0]["status"] == "completed"
    assert any(k.endswith("/manifest.json") for k in staged)
    rest = run_cli(settings)
    assert rest.returncode == 0, rest.stderr
    assert_same_end_state(bucket_outcome(settings), reference)
    assert staging_keys(s3_server, s3_root) == [], "a staging object was left behind"
    done = run_cli(settings, ["restore", "--district", DISTRICT, "--school-year", str(YEAR)])
    assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------
# two runners put one committed part in place
# ---------------------------------------------------------------------------------------
def test_runners_putting_one_part_in_place_at_once_leave_it_whole(tmp_path: Path) -> None:
    """Each runner settles the year when it starts, so two may `swap_in` the same staging
    folder over an older part at the same moment. Whatever the interleaving: the new part is
    in place, whole; one of them placed it, the others are told another did (the staging is
    gone); no folder the part replaced is left, and the part is never removed."""
    for attempt in range(300):
        year = tmp_path / str(attempt)
        final, staging = year / "d1", year / ".d1.tmp-1-0a1b2c3d"
        for folder, text in ((final, "older"), (staging, "new")):
            folder.mkdir(parents=True)
            for n in range(3):
                (folder / f"part-{n}").write_text(text)
        said = at_once(RUNNERS, staging, final)
        assert said.count("placed") == 1, (attempt, said)
        assert final.is_dir(), f"attempt {attempt}: the part is gone ({said})"
        assert {p.name: p.read_text() for p in final.iterdir()} == {
            f"part-{n}": "new" for n in range(3)
        }, f"attempt {attempt}: the older part is in place ({said})"
        assert sorted(p.name for p in year.iterdir()) == ["d1"], attempt


RUNNERS = 4


def at_once(runners: int, staging: Path, final: Path) -> list[str]:
    """`swap_in(staging, final)` by several threads released together: what each was told."""
    start = threading.Barrier(runners)
    said: list[str] = []

    def put_in_place() -> None:
        start.wait()
        try:
            swap_in(staging, final)
            said.append("placed")
        except FileNotFoundError:
            said.append("placed by another")

    threads = [threading.Thread(target=put_in_place) for _ in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return said


# ---------------------------------------------------------------------------------------
# the dbt lock's session ended by the server
# ---------------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_the_dbt_lock_is_left_quietly_when_the_server_ended_its_session(
    settings: Settings, wh: Any
) -> None:
    """A build outlived the lock's session (`idle_session_timeout`, a restart): leaving the
    lock raises nothing, and the next build takes it at once."""

    def advisory_holders(admin: psycopg.Connection[Any]) -> list[int]:
        return [
            int(pid)
            for (pid,) in admin.execute(
                "select pid from pg_locks where locktype = 'advisory' and granted "
                "and database = (select oid from pg_database where datname = current_database())"
            ).fetchall()
        ]

    with psycopg.connect(settings.pg_dsn or "", autocommit=True) as admin:
        with dbt_lock(settings):
            (holder,) = advisory_holders(admin)
            admin.execute("select pg_terminate_backend(%s)", [holder])
            wait_for(lambda: not advisory_holders(admin), "the lock's session to end")
        # the next build's lock, taken at once (the ended session released it)
        admin.execute("set lock_timeout = '5s'")
        with dbt_lock(settings):
            assert len(advisory_holders(admin)) == 1
        assert advisory_holders(admin) == []


# ---------------------------------------------------------------------------------------
# a runner connection the server ended
# ---------------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"], indirect=True)
@pytest.mark.parametrize("when", ["mid-pass", "between districts"])
def test_a_connection_the_server_ended_is_replaced_before_the_next_district(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """Districts alone, one after another on one thread. The runner's sessions are ended:
    during the first district's pass (it fails, in the ledger), or after it completed, while
    the connections sit idle. Every later district opens new ones and completes; none fails
    for the dead connection."""
    fresh(settings)
    monkeypatch.setattr(runner, "BATCH_DISTRICTS", 1)  # every district alone, in order
    point = "after:pause_syncs" if when == "mid-pass" else "after:complete"
    ended: list[int] = []

    def end_sessions(seconds: float) -> None:
        with psycopg.connect(settings.pg_dsn or "", autocommit=True) as admin:
            ended.extend(terminate_others(settings, admin))

    with at_fault_point(monkeypatch, point, end_sessions):
        result = run(settings)
    assert ended, "no runner session was ended"
    statuses = [(d.district_id, d.status) for d in result.districts]
    first, *later = statuses
    assert len(later) >= 2, statuses
    assert all(status == "completed" for _, status in later), result.districts
    if when == "mid-pass":
        assert first[1] == "failed", result.districts[0]
        with connect(settings) as wh:
            assert (
                wh.scalar(
                    "select status from eoy_runner.reset_runs where district_id = %s", [first[0]]
                )
                == "failed"
            )
        again = run(settings)
        assert [d.status for d in again.districts] == ["completed"]
    else:
        assert first[1] == "completed"
    assert all(
        open_store(settings).is_complete(open_store(settings).location(YEAR, d))
        for d, _ in statuses
    )
