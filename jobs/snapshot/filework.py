"""A batch's snapshot files written and checked in a process of their own.

A batch of a hundred districts makes a file of each table for each district: some nine
thousand files of a hundred rows in a reset of a thousand districts. Each file's own work is
small (encoded, written, read back, compared: a fraction of a millisecond), but on threads of
the runner it waits for the interpreter's lock behind the batches' statements and
fingerprints: measured at ten times its own cost. Here it runs beside the runner with an
interpreter of its own.

The runner sends each table of a batch once (its rows as an Arrow stream, and where each
district's rows are and its file goes); the process writes each district's file (created
with the snapshot's mode, never over another), reads it back as stored and compares it with
the rows, value for value, and answers each file's sha256, or the one-line problem. It reads
its requests until its input closes: it ends with the runner, however the runner ends.

Run as a script (`python -P filework.py`): it imports only pyarrow and the standard library,
so that it starts in a fraction of a second.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from concurrent.futures import Future
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

FILE_MODE = 0o600  # the snapshot's files' (jobs/snapshot/layout.py; this script imports no jobs)
HEADER = struct.Struct("<Q")

# a district's rows in a table of the batch: the (offset, length) runs that hold them
Runs = list[tuple[int, int]]


def part_of(rows: pa.Table, runs: Runs) -> pa.Table:
    """A district's rows, in the order the table gave them (slices: nothing copied)."""
    if len(runs) == 1:
        return rows.slice(*runs[0])
    return pa.concat_tables([rows.slice(start, n) for start, n in runs] or [rows.slice(0, 0)])


def _bits(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Doubles as their IEEE-754 bits (as the content fingerprint takes them: -0.0 is not
    0.0, a NaN is itself); every other type as it is."""
    if not pa.types.is_floating(column.type):
        return column
    return pa.chunked_array([c.view(pa.int64()) for c in column.chunks], pa.int64())


def same_rows(stored: pa.Table, written: pa.Table) -> bool:
    """The same rows in the same order, value for value (nulls where nulls are)."""
    if stored.num_rows != written.num_rows or stored.column_names != written.column_names:
        return False
    return all(
        _bits(a).equals(_bits(b)) for a, b in zip(stored.columns, written.columns, strict=True)
    )


def write_new(path: str, data: Any) -> None:
    """A new file, created with the snapshot's mode (a umask can only take rights away) and
    written in one call."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def wrong_columns(table: str, names: list[str]) -> str:
    return f"{table}: the file's columns {names} are not the contract's"


def unreadable(table: str, exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{table}: the file does not read back: {first}"


def compared(stored: pa.Table, rows: pa.Table, table: str) -> str | None:
    """The problem in one line when a file's rows as read back are not the rows written into
    it, value for value; None when they are."""
    if stored.schema != rows.schema:
        stored = stored.cast(rows.schema)
    if same_rows(stored, rows):
        return None
    what = "rows" if stored.num_rows != rows.num_rows else "values"
    return f"{table}: the file re-reads with other {what} than were written into it"


def write_and_check(
    path: str, table: str, rows: pa.Table, options: dict[str, Any], columns: list[str]
) -> tuple[str, str | None]:
    """Write the rows to a new file at `path`, read it back as stored and compare: (the
    file's sha256, the problem in one line or None). OSError when the file cannot be made."""
    encoded = pa.BufferOutputStream()
    pq.write_table(rows, encoded, **options)
    write_new(path, encoded.getvalue())
    with open(path, "rb") as stored_file:
        data = stored_file.read()
    sha = hashlib.sha256(data).hexdigest()
    try:
        parquet = pq.ParquetFile(pa.BufferReader(data))
        names = [f.name for f in parquet.schema_arrow]
        if names != columns:
            return sha, wrong_columns(table, names)
        stored = parquet.read(use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        return sha, unreadable(table, exc)
    return sha, compared(stored, rows, table)


def serve(request: dict[str, Any], rows: pa.Table) -> dict[str, tuple[str, str | None]]:
    """One table of a batch: each district's file written and checked, in the order given."""
    out = {}
    for district, path, runs, options in request["parts"]:
        out[district] = write_and_check(
            path, request["table"], part_of(rows, runs), options, request["columns"]
        )
    return out


# ---------------------------------------------------------------------------------------
# the wire: a length, then a pickled header; a request's rows follow as an Arrow stream
# ---------------------------------------------------------------------------------------
def send(out: BinaryIO, message: Any, payload: bytes | pa.Buffer | None = None) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    pieces: list[Any] = [HEADER.pack(len(data)), data]
    if payload is not None:
        pieces += [HEADER.pack(len(payload)), payload]
    for piece in pieces:
        view = memoryview(piece)
        while view:  # an unbuffered pipe may take part of it
            view = view[out.write(view) or 0 :]
    out.flush()


def receive_exactly(stream: BinaryIO, n: int) -> bytes | None:
    """n bytes, or None when the other end is gone first (an unbuffered pipe gives what it
    has: read until there are n)."""
    data = bytearray()
    while len(data) < n:
        block = stream.read(n - len(data))
        if not block:
            return None
        data += block
    return bytes(data)


def receive(stream: BinaryIO) -> Any:
    """The next message, or None at the end of the stream."""
    size = receive_exactly(stream, HEADER.size)
    if size is None:
        return None
    data = receive_exactly(stream, HEADER.unpack(size)[0])
    return None if data is None else pickle.loads(data)


def _read_requests(stream: BinaryIO, todo: queue.Queue[Any]) -> None:
    """Requests queued as they come (the runner never waits for this process to write)."""
    while (request := receive(stream)) is not None:
        size = receive_exactly(stream, HEADER.size)
        payload = None if size is None else receive_exactly(stream, HEADER.unpack(size)[0])
        if payload is None:
            break
        todo.put((request, payload))
    todo.put(None)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # it ends when the runner does
    source, answers = sys.stdin.buffer, sys.stdout.buffer
    todo: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_read_requests, args=(source, todo), daemon=True).start()
    while (item := todo.get()) is not None:
        request, payload = item
        try:
            send(answers, {"id": request["id"], **_served(request, payload)})
        except BrokenPipeError:
            return  # the runner is gone: nobody is waiting for the answer


def _served(request: dict[str, Any], payload: bytes) -> dict[str, Any]:
    """The answer to a request: each district's file, or why none could be made."""
    try:
        rows = pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
        return {"files": serve(request, rows)}
    except OSError as exc:
        return {"oserror": (exc.errno, exc.strerror)}
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return {"error": f"{type(exc).__name__}: {first}"}


# ---------------------------------------------------------------------------------------
# the runner's end
# ---------------------------------------------------------------------------------------
Written = dict[str, tuple[str, str | None]]  # district: (the file's sha256, its problem)
ENDED = "the process that writes the snapshot's files ended before it answered"


class FileProcess:
    """One process that writes and checks files, and the runner's requests waiting on it."""

    def __init__(self) -> None:
        # -P: the script's folder stays off the import path (its modules' names are common);
        # its input unbuffered: a forked copy of the runner has nothing of it to flush
        # a group of its own: a Ctrl-C at the terminal is the runner's to act on
        self.proc = subprocess.Popen(
            [sys.executable, "-P", os.path.abspath(__file__)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            process_group=0,
        )
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._waiting: dict[int, Future[Written]] = {}
        self._ended = False
        threading.Thread(target=self._answers, name="eoy-files-answers", daemon=True).start()

    def alive(self) -> bool:
        return not self._ended and self.proc.poll() is None

    def submit(
        self, table: str, rows: pa.Table, parts: list[tuple[Any, ...]], columns: list[str]
    ) -> Future[Written]:
        """Write and check the files of `parts` (district, path, runs, Parquet options) from
        `rows`; each district's (sha256, problem) when done. OSError when it cannot be asked."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as stream:
            stream.write_table(rows)
        done: Future[Written] = Future()
        with self._lock:
            if self._ended:
                raise OSError(0, ENDED)
            request = next(self._ids)
            self._waiting[request] = done
            header = {"id": request, "table": table, "columns": columns, "parts": parts}
            try:
                send(self.proc.stdin, header, sink.getvalue())  # type: ignore[arg-type]
            except BaseException:
                self._waiting.pop(request, None)
                raise
        return done

    def _answers(self) -> None:
        """Each answer to its request; when the process ends, every request still waiting
        fails (the batch is then taken district by district, on this process's threads)."""
        while (answer := receive(self.proc.stdout)) is not None:  # type: ignore[arg-type]
            with self._lock:
                done = self._waiting.pop(answer["id"])
            if "files" in answer:
                done.set_result(answer["files"])
            elif "oserror" in answer:
                done.set_exception(OSError(*answer["oserror"]))
            else:
                done.set_exception(RuntimeError(answer["error"]))
        with self._lock:
            self._ended = True
            waiting, self._waiting = list(self._waiting.values()), {}
        for done in waiting:
            done.set_exception(OSError(0, ENDED))


_processes: list[FileProcess] = []
_processes_lock = threading.Lock()


def file_processes(count: int) -> list[FileProcess]:
    """The runner's file processes, started when first asked for (again if one has ended)."""
    with _processes_lock:
        _processes[:] = [p for p in _processes if p.alive()]
        while len(_processes) < count:
            _processes.append(FileProcess())
        return _processes[:count]


def _forked() -> None:
    """A forked copy of the runner starts its own: it drops its copies of the pipes (and
    never writes on them: they are unbuffered), the processes end with the runner."""
    _processes.clear()


if __name__ == "__main__":
    main()
else:
    os.register_at_fork(after_in_child=_forked)
