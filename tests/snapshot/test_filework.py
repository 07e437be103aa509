"""The process that writes and checks a batch's files (`jobs.snapshot.filework`): each file
as the rows sent, never over another file, a file that re-reads otherwise said in one line,
and the process gone once its runner is."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.snapshot import filework
from jobs.snapshot.layout import FILE_MODE
from jobs.snapshot.writer import parquet_options

COLUMNS = ["id", "score", "note"]


def rows() -> pa.Table:
    """Two districts' rows, the first's in two runs."""
    return pa.table(
        {
            "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
            "score": pa.array([0.5, None, -0.0, float("nan"), 2.0], pa.float64()),
            "note": pa.array(["a", "b", None, "<d>", "e"], pa.large_string()),
        }
    )


def parts(folder: Path) -> list[tuple[Any, ...]]:
    return [
        ("d1", str(folder / "d1.parquet"), [(0, 2), (4, 1)], parquet_options(3)),
        ("d2", str(folder / "d2.parquet"), [(2, 2)], parquet_options(2)),
    ]


def test_a_file_process_writes_each_districts_rows_and_answers_their_sha256(
    tmp_path: Path,
) -> None:
    process = filework.FileProcess()
    written = process.submit("progress", rows(), parts(tmp_path), COLUMNS).result(timeout=60)
    assert set(written) == {"d1", "d2"}
    for district, where in (("d1", [(0, 2), (4, 1)]), ("d2", [(2, 2)])):
        path = tmp_path / f"{district}.parquet"
        sha, problem = written[district]
        assert problem is None
        assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        stored = pq.read_table(path)
        assert filework.same_rows(stored, filework.part_of(rows(), where))
    process.proc.stdin.close()  # type: ignore[union-attr]
    assert process.proc.wait(timeout=30) == 0


def test_a_file_process_gives_its_files_the_snapshots_mode() -> None:
    """The process imports nothing of eoy-reset: its mode is written twice, and must agree."""
    assert filework.FILE_MODE == FILE_MODE


def test_a_file_process_never_writes_over_a_file(tmp_path: Path) -> None:
    (tmp_path / "d1.parquet").write_bytes(b"kept")
    process = filework.FileProcess()
    answer = process.submit("progress", rows(), parts(tmp_path)[:1], COLUMNS)
    with pytest.raises(OSError) as failed:
        answer.result(timeout=60)
    assert failed.value.errno == errno.EEXIST
    assert (tmp_path / "d1.parquet").read_bytes() == b"kept"
    process.proc.stdin.close()  # type: ignore[union-attr]
    process.proc.wait(timeout=30)


def test_a_file_that_re_reads_otherwise_is_said_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Here in this process (the process runs the same function): the bytes that reach the
    disk are another table's, one score changed."""
    real_write = filework.write_new

    def changed_on_the_way(path: str, data: Any) -> None:
        table = pq.read_table(pa.BufferReader(data))
        scores = table.column("score").to_pylist()
        scores[0] = 99.0
        table = table.set_column(1, "score", pa.array(scores, pa.float64()))
        out = pa.BufferOutputStream()
        pq.write_table(table, out)
        real_write(path, out.getvalue())

    monkeypatch.setattr(filework, "write_new", changed_on_the_way)
    sha, problem = filework.write_and_check(
        str(tmp_path / "d1.parquet"), "progress", rows(), parquet_options(5), COLUMNS
    )
    assert problem == "progress: the file re-reads with other values than were written into it"
    assert sha == hashlib.sha256((tmp_path / "d1.parquet").read_bytes()).hexdigest()


def test_a_file_process_ends_with_its_runner(tmp_path: Path) -> None:
    """A runner killed outright: its file processes see their input close, and end (a
    Ctrl-C does not end them: it is the runner's)."""
    runner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pyarrow as pa; from jobs.snapshot import filework; "
            "p = filework.file_processes(2); rows = pa.table({'id': [1]}); "
            # each answers once first: both are past their start
            f"[x.submit('t', rows, [(str(i), '{tmp_path}/%d.parquet' % i, [(0, 1)], {{}})], "
            "['id']).result() for i, x in enumerate(p)]; "
            "print(*(x.proc.pid for x in p), flush=True); time.sleep(600)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert runner.stdout is not None
    pids = [int(pid) for pid in runner.stdout.readline().split()]
    assert len(pids) == 2
    for pid in pids:  # a Ctrl-C at the terminal is the runner's to act on
        os.kill(pid, signal.SIGINT)
    time.sleep(0.5)
    assert not any(_zombie(pid) for pid in pids), "a file process ended on a Ctrl-C"
    runner.kill()
    runner.wait()
    for pid in pids:
        for _ in range(300):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            if _zombie(pid):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"file process {pid} outlived its runner")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True
