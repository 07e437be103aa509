"""Districts in batches (`jobs.reset.batch`): one transaction and one statement per table for
several districts ends exactly as a transaction each, and so do batches passing two at a
time; a batch that rolls back over the rows of one district is taken district by district;
a failure the batch cannot pin on one district fails each district of the batch in one line
and deletes nothing.

The reference is an uninterrupted run in batches on DuckDB (`reference_outcome`); the same
generated data is run here district by district and in failing batches, on both targets.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jobs.reset.batch as batch
import jobs.reset.district as district_pass
import jobs.reset.runner as runner
import jobs.snapshot.filework as filework
import jobs.snapshot.writer as writer
from jobs.config import Settings
from jobs.snapshot.store import open_store
from jobs.snapshot.writer import MAIN, SMALL_FILE_ROWS
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import connect
from jobs.warehouse.schema import init_warehouse
from tests.support.crash_helpers import (
    AS_OF,
    YEAR,
    assert_same_end_state,
    fresh,
    outcome,
    reference_outcome,
    run_cli,
)
from tests.support.runner_helpers import dump_app, expected_due, student_rows

TARGETS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]


def delete_details(settings: Settings) -> list[dict[str, Any]]:
    with connect(settings) as wh:
        text = "cast(detail as text)" if wh.target == "postgres" else "cast(detail as varchar)"
        rows = wh.query(
            f"select {text} from eoy_runner.reset_events "
            "where step = 'delete' and status = 'completed' order by district_id"
        )
    return [json.loads(detail) for (detail,) in rows]


def leftovers(settings: Settings) -> list[str]:
    """Anything in the year's snapshot folder but the districts' own folders."""
    year = Path(settings.snapshot_root) / str(YEAR)
    names = sorted(p.name for p in year.iterdir()) if year.exists() else []
    return [n for n in names if not n.startswith("d") or "." in n or "~" in n]


def count_batches_in_flight(monkeypatch: pytest.MonkeyPatch, meet: int = 1) -> list[int]:
    """[the most batches passing at once], kept up to date while the run goes. With `meet`,
    the first `meet` batches wait inside for each other (a minute at most) before they go
    on: a runner that passes them one after another fails there, and a loaded machine
    cannot end one before the next begins."""
    lock, now, most = threading.Lock(), [0], [0]
    real = district_pass.take_batch
    met = threading.Barrier(meet, timeout=60)
    entered = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
            entered[0] += 1
            waits = meet > 1 and entered[0] <= meet
        try:
            if waits:
                met.wait()
            return real(*args, **kwargs)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(district_pass, "take_batch", counted)
    return most


@pytest.mark.parametrize("size", [32, 2, 1], ids=["batch", "batches", "alone"])
@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_a_batch_ends_exactly_as_its_districts_one_by_one(
    settings: Settings,
    size: int,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))  # in one batch
    fresh(settings)
    monkeypatch.setattr(runner, "BATCH_DISTRICTS", size)  # 1: every district alone
    in_flight = count_batches_in_flight(monkeypatch, meet=2 if size == 2 else 1)
    done = run_cli(settings)
    assert done.returncode == 0, done.stderr
    assert_same_end_state(outcome(settings), reference)
    created = [d["created_at"] for d in delete_details(settings)]
    assert len(created) >= 4, "fewer than two batches of two: the test proves nothing"
    # one transaction for all of them, one a batch, or one each
    assert len(set(created)) == -(-len(created) // size)
    assert in_flight == [{32: 1, 2: 2, 1: 0}[size]]  # batches of two pass two at a time


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_a_batch_that_raises_stops_the_run_with_the_batch_beside_it_finished(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of two districts passing two at a time: the second batch raises (not
    a district's failure: the warehouse broke, say) while the first passes. The first commits
    whole, no batch starts after the error, the command fails in one line, and running it
    again resets every due district."""
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        generate_districts(wh, 12, seed=7, students_per_district=2, show_progress=False)
        due = expected_due(wh, YEAR, AS_OF)
    assert len(due) >= 6, "fewer than three batches of two: the test proves nothing"
    monkeypatch.setattr(runner, "BATCH_DISTRICTS", 2)
    started: list[list[str]] = []
    raising, lock = threading.Event(), threading.Lock()
    real = runner._run_unit

    def second_raises(connections: Any, unit: Any, year: int, progress: Any) -> Any:
        with lock:  # the two batches begin at once: each learns which it is
            started.append([c["district_id"] for c in unit])
            first = len(started) == 1
        if first:  # passes once the second is raising: beside it, and after
            assert raising.wait(60)
            return real(connections, unit, year, progress)
        raising.set()
        raise RuntimeError("the warehouse went away")

    monkeypatch.setattr(runner, "_run_unit", second_raises)
    failed = run_cli(settings)
    assert failed.returncode != 0
    assert "the warehouse went away" in failed.stderr and "Traceback" not in failed.stderr
    assert len(failed.stderr.splitlines()) == 1, failed.stderr
    assert len(started) == 2, started  # nothing started after the error
    with connect(settings) as wh:
        runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
        assert all(student_rows(wh, d) == 0 for d in started[0])
        assert all(student_rows(wh, d) > 0 for d in due - set(started[0]))
    assert runs == dict.fromkeys(started[0], "completed")

    monkeypatch.undo()
    again = run_cli(settings)
    assert again.returncode == 0, again.stderr
    with connect(settings) as wh:
        runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
        assert all(student_rows(wh, d) == 0 for d in due)
    assert runs == dict.fromkeys(due, "completed")


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_a_batch_that_rolls_back_over_one_districts_rows_goes_district_by_district(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    fresh(settings)
    changed: list[str] = []
    real_write = batch._write

    def write_then_change_a_score(pending: Any, table: str, rows: pa.Table) -> None:
        """The first progress file of a batch: same rows, one score changed on disk."""
        real_write(pending, table, rows)
        if table == "progress" and rows.num_rows and not changed:
            changed.append(pending.location)
            path = Path(pending.folder) / "progress.parquet"
            data = pq.read_table(path)
            scores = data.column("score").to_pylist()
            scores[0] = (scores[0] or 0) + 1
            at = data.schema.get_field_index("score")
            data = data.set_column(at, "score", pa.array(scores, pa.float64()))
            pq.write_table(data, path, compression="zstd")

    monkeypatch.setattr(batch, "FILE_PROCESSES", 0)  # the files on this process's threads
    monkeypatch.setattr(batch, "_write", write_then_change_a_score)
    done = run_cli(settings)
    assert done.returncode == 0, done.stderr
    assert changed, "no batch wrote a progress file: the test proves nothing"
    # each district alone, after the batch rolled back whole: deleted once, snapshots whole
    assert_same_end_state(outcome(settings), reference)
    assert leftovers(settings) == []  # the rolled-back batch's files are gone


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_a_file_process_killed_mid_batch_costs_the_batch_a_retry_and_nothing_else(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process writing a batch's files is killed while it writes them: the batch rolls
    back and its districts are taken alone; the next batch has a new process; the run ends
    as an uninterrupted one, and leaves nothing in staging."""
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    fresh(settings)
    killed: list[Any] = []
    real_submit = batch._submit_files

    def submit_then_kill(*args: Any) -> Any:
        if killed:
            return real_submit(*args)
        # the first table of the first batch: the process is stopped before it is asked, so
        # it cannot answer before it is killed (its input pipe holds the whole request)
        process = filework.file_processes(batch.FILE_PROCESSES)[0]
        fcntl.fcntl(process.proc.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        os.kill(process.proc.pid, signal.SIGSTOP)
        files = real_submit(*args)
        process.proc.kill()
        killed.extend([process.proc.wait(), files[0].exception(timeout=60)])
        return files

    monkeypatch.setattr(batch, "_submit_files", submit_then_kill)
    done = run_cli(settings)
    assert done.returncode == 0, done.stderr
    assert killed, "no file process was killed: the test proves nothing"
    assert killed[0] == -9
    # its request failed (the files unanswered): the batch rolled back and went alone
    assert isinstance(killed[1], OSError) and filework.ENDED in str(killed[1]), killed
    assert {d["status"] for d in json.loads(done.stdout)["districts"]} == {"completed"}
    assert_same_end_state(outcome(settings), reference)
    assert leftovers(settings) == []


@pytest.mark.parametrize("target", TARGETS, indirect=True)
@pytest.mark.parametrize("failure", ["database", "disk"])
def test_a_batch_that_fails_is_taken_district_by_district_in_the_same_run(
    settings: Settings,
    failure: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure of the batch's statement (a value the warehouse refused) or of its files is
    not every district's: each is taken alone at once, and each completes (before, every
    district of the batch failed with the first one's message and waited for the next run)."""
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    fresh(settings)
    failures: list[str] = []
    real_rows = batch._rows

    def refused(*args: Any, **kwargs: Any) -> Any:
        failures.append(failure)
        if failure == "disk":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_rows(*args, **kwargs)
        raise duckdb.ConversionException("Conversion Error: could not convert string")

    monkeypatch.setattr(batch, "FILE_PROCESSES", 0)  # the files on this process's threads
    monkeypatch.setattr(batch, "_rows" if failure == "database" else "_write", refused)
    done = run_cli(settings)
    assert done.returncode == 0, done.stderr
    assert failures, "no batch passed: the test proves nothing"
    assert {d["status"] for d in json.loads(done.stdout)["districts"]} == {"completed"}
    assert_same_end_state(outcome(settings), reference)
    assert leftovers(settings) == []


@pytest.mark.parametrize("target", TARGETS, indirect=True)
def test_a_failure_of_every_district_fails_each_and_deletes_nothing(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = reference_outcome(tmp_path_factory.mktemp("reference"))
    fresh(settings)
    with connect(settings) as wh:
        before = dump_app(wh, ignore_sync_state=True)

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # the batch's writer (on this process's threads) and a district's own alike
    monkeypatch.setattr(batch, "FILE_PROCESSES", 0)
    monkeypatch.setattr(batch.pq, "write_table", disk_full)
    monkeypatch.setattr(writer.pq, "ParquetWriter", disk_full)
    failed = run_cli(settings)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and len(failed.stderr.splitlines()) == 1
    doc = json.loads(failed.stdout)
    assert doc["districts"] and {d["status"] for d in doc["districts"]} == {"failed"}
    for district in doc["districts"]:
        assert district["step"] == "export", district["error"]
        assert "No space left on device" in district["error"], district
        assert "nothing was deleted" in district["error"], district
    with connect(settings) as wh:
        assert dump_app(wh, ignore_sync_state=True) == before
        runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
        deletes = wh.scalar("select count(*) from eoy_runner.reset_events where step = 'delete'")
    assert runs == dict.fromkeys((d["district_id"] for d in doc["districts"]), "failed")
    assert deletes == 0
    assert leftovers(settings) == []

    monkeypatch.undo()
    again = run_cli(settings)
    assert again.returncode == 0, again.stderr
    assert_same_end_state(outcome(settings), reference)


def test_a_file_compares_with_the_rows_as_their_fingerprint_takes_them() -> None:
    """Doubles by their bits (-0.0 is not 0.0, a NaN is itself), nulls where nulls are."""

    def rows(*scores: float | None) -> pa.Table:
        return pa.table({"score": pa.array(scores, pa.float64())})

    assert filework.same_rows(rows(1.5, None, float("nan")), rows(1.5, None, float("nan")))
    assert not filework.same_rows(rows(0.0), rows(-0.0))
    assert not filework.same_rows(rows(1.0, None), rows(None, 1.0))
    assert not filework.same_rows(rows(1.0), rows(1.0, 1.0))
    assert filework.same_rows(rows(1.0, 2.0).slice(1), rows(2.0))


def test_a_file_in_memory_and_a_file_streamed_are_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A district's file is encoded in memory and written in one call, or streamed when its
    rows are large: the same bytes either way, and only the owner may read them."""
    settings = Settings(target="duckdb", snapshot_root=tmp_path / "snapshots")
    pending = open_store(settings).begin(YEAR, "d00001", MAIN)
    table = pa.table({"n": pa.array(range(5000), pa.int64()), "s": pa.array(["x"] * 5000)})
    try:
        written = {}
        for how, limit in (("memory", batch.WRITE_IN_MEMORY), ("stream", 0)):
            monkeypatch.setattr(batch, "WRITE_IN_MEMORY", limit)
            batch._write(pending, f"progress_{how}", table)
            path = Path(pending.folder) / f"progress_{how}.parquet"
            assert path.stat().st_mode & 0o777 == 0o600
            assert pq.read_table(path).equals(table)
            written[how] = path.read_bytes()
        assert written["memory"] == written["stream"]
    finally:
        pending.discard()


def test_a_small_file_is_written_with_lz4_and_a_larger_one_with_zstd(tmp_path: Path) -> None:
    """zstd's context for each column costs more than it saves on a small file."""
    settings = Settings(target="duckdb", snapshot_root=tmp_path / "snapshots")
    pending = open_store(settings).begin(YEAR, "d00001", MAIN)
    try:
        for rows, codec in ((SMALL_FILE_ROWS - 1, "LZ4"), (SMALL_FILE_ROWS, "ZSTD")):
            table = pa.table({"n": pa.array(range(rows), pa.int64())})
            batch._write(pending, f"progress_{codec}", table)  # a new file each: as a pass
            stored = pq.ParquetFile(Path(pending.folder) / f"progress_{codec}.parquet")
            assert stored.metadata.row_group(0).column(0).compression == codec
            assert stored.read().equals(table)
    finally:
        pending.discard()
