"""A committed delete never loses its verified snapshot.

Two ways it once did, reproduced here against the real drivers:
- the driver loses the server's answer to COMMIT after the server committed: the pass took
  the commit for failed and removed the snapshot of rows that were gone;
- the district's lock lived on one session while the delete ran on another: when the lock's
  session ended, a second runner took the district and removed the first one's staging.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import adbc_driver_manager
import adbc_driver_manager.dbapi as adbc_dbapi
import duckdb
import psycopg
import pytest

import jobs.reset.commit as commit
import jobs.warehouse.connection as connection
from jobs.config import Settings
from jobs.snapshot.store import open_store
from jobs.warehouse.connection import connect
from tests.support.crash_helpers import (
    RUN,
    YEAR,
    assert_same_end_state,
    fresh,
    lock_holders,
    outcome,
    reference_outcome,
    run_cli,
    start_cli,
    wait_for,
)

TARGETS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
DISTRICT = "d00001"
ALONE = [*RUN, "--district", DISTRICT]
LOST = "server closed the connection unexpectedly"


def _deletes(sql: str) -> bool:
    return "delete from app." in sql.lower()


@contextmanager
def commits_lose_their_answer(
    monkeypatch: pytest.MonkeyPatch, *, reach_server: bool = True
) -> Iterator[list[str]]:
    """Every COMMIT of a transaction that deleted app rows raises as a dropped connection
    does: after the server committed (`reach_server`), or before it heard of it (the
    transaction then rolls back). Yields the commits it broke."""
    broken: list[str] = []

    real_execute = adbc_dbapi.Cursor.execute
    real_commit = adbc_dbapi.Connection.commit
    real_rollback = adbc_dbapi.Connection.rollback

    def execute(self: Any, operation: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(operation, str) and _deletes(operation):
            self._conn._eoy_deleted = True
        return real_execute(self, operation, *args, **kwargs)

    def commit(self: Any) -> None:
        if not getattr(self, "_eoy_deleted", False):
            return real_commit(self)
        self._eoy_deleted = False
        (real_commit if reach_server else real_rollback)(self)
        broken.append("postgres")
        raise adbc_driver_manager.OperationalError(
            f"IO: [libpq] {LOST}", status_code=adbc_driver_manager.AdbcStatusCode.IO
        )

    monkeypatch.setattr(adbc_dbapi.Cursor, "execute", execute)
    monkeypatch.setattr(adbc_dbapi.Connection, "commit", commit)

    class LosesCommitAnswers:
        """A DuckDB connection whose COMMIT after a delete raises once it committed."""

        def __init__(self, con: Any):
            self._con = con
            self._deleted = False

        def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
            if sql.strip().lower() == "commit" and self._deleted:
                self._deleted = False
                self._con.execute(sql if reach_server else "rollback")
                broken.append("duckdb")
                raise duckdb.IOException(f"IO Error: {LOST}")
            if sql.strip().lower() == "rollback":
                self._deleted = False
            elif _deletes(sql):
                self._deleted = True
            return self._con.execute(sql, *args, **kwargs)

        def sql(self, query: str, *args: Any, **kwargs: Any) -> Any:
            if _deletes(query):
                self._deleted = True
            return self._con.sql(query, *args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._con, name)

    real_init = connection.DuckDBWarehouse.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self.con = LosesCommitAnswers(self.con)

    monkeypatch.setattr(connection.DuckDBWarehouse, "__init__", init)
    try:
        yield broken
    finally:
        monkeypatch.undo()


def restores(settings: Settings, district: str) -> None:
    done = run_cli(settings, ["restore", "--district", district, "--school-year", str(YEAR)])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("args", [ALONE, RUN], ids=["district-alone", "batch"])
def test_a_commit_whose_answer_is_lost_keeps_and_publishes_its_snapshot(
    settings: Settings,
    args: list[str],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    fresh(settings)
    with commits_lose_their_answer(monkeypatch) as broken:
        done = run_cli(settings, args)
    assert broken, "no commit lost its answer: the test proves nothing"
    assert done.returncode == 0, done.stderr
    districts = json.loads(done.stdout)["districts"]
    assert {d["status"] for d in districts} == {"completed"}, districts
    rerun = run_cli(settings)  # the rest, if only one was named; nothing twice
    assert rerun.returncode == 0, rerun.stderr
    assert_same_end_state(outcome(settings), reference)
    for district in districts:
        restores(settings, district["district_id"])


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_a_commit_that_failed_before_the_server_committed_deletes_nothing(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same lost answer, but the server never committed: the ledger says so, the
    snapshot goes, and the rerun takes the district whole."""
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    fresh(settings)
    with connect(settings) as wh:
        before = wh.scalar("select count(*) from app.students")
    with commits_lose_their_answer(monkeypatch, reach_server=False) as broken:
        done = run_cli(settings, ALONE)
    assert broken
    assert done.returncode == 1
    (district,) = json.loads(done.stdout)["districts"]
    assert district["status"] == "failed" and "nothing was deleted" in district["error"]
    with connect(settings) as wh:
        assert wh.scalar("select count(*) from app.students") == before
    assert not open_store(settings).is_complete(open_store(settings).location(YEAR, DISTRICT))
    again = run_cli(settings)
    assert again.returncode == 0, again.stderr
    assert_same_end_state(outcome(settings), reference)


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_a_commit_whose_outcome_cannot_be_learnt_keeps_the_snapshot_for_the_rerun(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer lost and the warehouse unreachable to ask: nothing is discarded, the
    district fails in one line, and the next run puts the committed snapshot in place."""
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    fresh(settings)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise connection.WarehouseError("cannot reach the warehouse: connection refused")

    with commits_lose_their_answer(monkeypatch) as broken:
        monkeypatch.setattr(commit, "connect", unreachable)
        done = run_cli(settings, ALONE)
    assert broken
    assert done.returncode == 1
    (district,) = json.loads(done.stdout)["districts"]
    assert district["step"] == "complete" and "snapshot is kept" in district["error"]
    again = run_cli(settings)
    assert again.returncode == 0, again.stderr
    assert_same_end_state(outcome(settings), reference)
    restores(settings, DISTRICT)


@pytest.mark.s3
@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_a_lost_commit_answer_keeps_the_snapshot_in_a_bucket(
    settings: Settings, s3_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    settings = replace(settings, snapshot_root=s3_root)
    fresh(settings)
    with commits_lose_their_answer(monkeypatch) as broken:
        done = run_cli(settings)
    assert broken
    assert done.returncode == 0, done.stderr
    districts = [d["district_id"] for d in json.loads(done.stdout)["districts"]]
    store = open_store(settings)
    for district in districts:
        assert store.is_complete(store.location(YEAR, district)), district
    restores(settings, districts[0])


# ---------------------------------------------------------------------------------------
# the lock lives on the session that deletes
# ---------------------------------------------------------------------------------------
@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_a_second_runner_cannot_take_a_district_whose_lock_session_ended_mid_pass(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    fresh(settings)
    year_dir = Path(settings.snapshot_root) / str(YEAR)
    # the first runner waits inside its pass, its files verified and its manifest written
    first = start_cli(settings, ALONE, EOY_PAUSE="after:verify:6@1")
    with psycopg.connect(settings.pg_dsn or "", autocommit=True) as admin:
        wait_for(
            lambda: any((p / "manifest.json").exists() for p in year_dir.glob(".d00001.tmp-*")),
            "the first runner's verified staging",
        )
        holders = lock_holders(admin, DISTRICT)
        assert holders, "the first runner holds no lock on the district"
        for pid in holders:  # the lock's session ends (a server timeout, a network cut)
            admin.execute("select pg_terminate_backend(%s)", [pid])
        wait_for(lambda: not lock_holders(admin, DISTRICT), "the lock to be released")
        second = run_cli(settings, ALONE)
    first.communicate(timeout=300)
    assert first.returncode == 1  # its pass ended with its session: nothing of it committed
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["districts"][0]["status"] == "completed"
    rest = run_cli(settings)
    assert rest.returncode == 0, rest.stderr
    # one complete snapshot holding every deleted row, deleted once, and it restores
    assert_same_end_state(outcome(settings), reference)
    assert not list(year_dir.glob(".d00001.*")), "a staging folder was left behind"
    restores(settings, DISTRICT)
