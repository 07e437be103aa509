"""Writing a snapshot: each table's rows streamed into its Parquet file and its
fingerprints, the files made durable and read back, the manifest last; the part goes in place
once the district's transaction has committed. Where the files go, and how a part goes in
place (a folder renamed, or a manifest object written last), is the store's
(`jobs.snapshot.store`)."""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs import __version__
from jobs.config import Settings
from jobs.errors import EoyError, first_line
from jobs.scope import current_scope
from jobs.snapshot.filework import unreadable, wrong_columns
from jobs.snapshot.fingerprint import (
    CONTENT_ALGORITHM,
    KEY_ALGORITHM,
    Fingerprint,
    arrow_schema,
    content_sum,
    key_sum,
)
from jobs.snapshot.layout import (
    FORMAT,
    SnapshotError,
    manifest_digest,
)
from jobs.snapshot.part import MAIN as MAIN  # the runner names the main part from here
from jobs.snapshot.source import shaped
from jobs.snapshot.store import (
    Pending,
    S3Store,
    SnapshotStore,
    StoreError,
    open_store,
    store_for,
    thread_pool,
)
from jobs.warehouse.connection import Warehouse
from jobs.warehouse.ledger import committed_deletes

Progress = Callable[[str, int], None]  # (table, rows taken so far)


class DeleteError(EoyError):
    """The district's transaction was rolled back: what it would delete was not what its
    snapshot holds, or something else changed; nothing was deleted."""


# How snapshot files are written: zstd; no dictionaries (most columns are ids, unique per
# row: the dictionary is tried and dropped) and no column statistics (a snapshot is read
# whole): writing 2.8x and reading 2x faster than Arrow's defaults, and the files no larger.
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": False,
    "write_statistics": False,
}
# A file of fewer rows is written with LZ4: zstd makes a context for each column it
# compresses or decompresses, whatever its size, which made a file of a few hundred rows
# three times as long to write and re-read (0.55 ms against 0.19 ms for seven columns); three
# files in four of a reset are that small. Their LZ4 is about 1.4 times their zstd size: on
# 1,000 generated districts the snapshots took 7 % more room and `run` 8 % less CPU.
SMALL_FILE_ROWS = 1_000
SMALL_FILE_OPTIONS = {**PARQUET_OPTIONS, "compression": "lz4"}


def parquet_options(rows: int | None = None) -> dict[str, Any]:
    """How a file of `rows` rows is written (None: not known before it is, as in a stream)."""
    if rows is not None and rows < SMALL_FILE_ROWS:
        return SMALL_FILE_OPTIONS
    return PARQUET_OPTIONS


IN_FLIGHT = 3  # batches fingerprinted at once beside the writer
REREAD_IN_MEMORY = 256 * 1024 * 1024  # files up to this size are read once for sha256 and rows
# Two files are re-read at once, each decoded on its own thread in small batches: Arrow's
# threaded decoding of large batches held ~250 MiB more at the peak of a 20 M-row district.
REREAD_ROWS = 65_536


class VerifyError(SnapshotError):
    """A snapshot file did not re-read to what was streamed into it; nothing was deleted."""


class WriteError(SnapshotError):
    """The snapshot root would not take a file (full, read-only, gone); nothing was deleted."""


@contextmanager
def writing(store: SnapshotStore) -> Iterator[None]:
    """Errors of the file system or the object store while writing the snapshot, as one line
    naming the root and the cause."""
    try:
        yield
    except StoreError as exc:
        raise WriteError(
            f"the snapshot could not be written under {store.root} ({exc}): "
            "nothing was deleted; fix the snapshot root and run again"
        ) from None
    except OSError as exc:
        if isinstance(store, S3Store):
            reason = store.cause(exc)
        else:
            reason = os.strerror(exc.errno) if exc.errno else exc.strerror or first_line(exc)
        raise WriteError(
            f"the snapshot could not be written under {store.root} ({reason}): "
            "nothing was deleted; fix the snapshot root and run again"
        ) from None


# ---------------------------------------------------------------------------------------
# parts and their folders
# ---------------------------------------------------------------------------------------
def part_dir(settings: Settings, school_year: int, district_id: str, part: str) -> str:
    """Where a part of the district's snapshot is: a folder, or an s3:// prefix."""
    return open_store(settings).location(school_year, district_id, part)


def delta_number(part: str) -> int:
    return int(part.split("-", 1)[1]) if part.startswith("delta-") else 0


def settle_parts(deletes: list[dict[str, Any]], settings: Settings) -> None:
    """Put in place every committed part whose last step a kill cut off (it waits, complete
    and verified, under the staging name its delete event records)."""
    for done in deletes:
        path, staging, sha = done.get("path"), done.get("staging"), done.get("manifest_sha256")
        if path and staging and sha:
            store_for(str(path), settings).settle(str(path), str(staging), str(sha))


def settle_year(wh: Warehouse, settings: Settings, school_year: int) -> list[str]:
    """Put in place every part of the year that committed while its last step was cut off (a
    kill just after the commit): its staging manifest has the sha256 a committed delete
    recorded. Nothing else is touched. Returns the parts put in place."""
    waiting = open_store(settings).waiting(school_year)
    placed = []
    for done in committed_deletes(wh, school_year, list(waiting)):
        staging = waiting.get(str(done.get("manifest_sha256")))
        path = str(done.get("path"))
        if staging is not None and store_for(path, settings).settle(
            path, staging, done["manifest_sha256"]
        ):
            placed.append(path)
    return placed


# ---------------------------------------------------------------------------------------
# writing: one Parquet file per table, fingerprinted on the way
# ---------------------------------------------------------------------------------------
def file_pool() -> ThreadPoolExecutor:
    """Threads for fingerprints, writes and re-reads (all release the GIL in native code)."""
    return thread_pool("files", 2)


@dataclass
class Taken:
    """One table's rows as they went into its file."""

    table: str
    name: str  # the file's name in the part
    fp: Fingerprint
    products: dict[str, int] = field(default_factory=dict)


def write_table(
    batches: Iterable[pa.RecordBatch],
    table: str,
    pending: Pending,
    district_id: str,
    progress: Progress | None = None,
) -> Taken:
    """Stream batches into the part's zstd Parquet file (a local file, or a multipart upload)
    while fingerprinting them; every row must be the district's own."""
    schema = arrow_schema(table, large_text=True)
    taken = Taken(table, f"{table}.parquet", Fingerprint(table))
    with_product = "product" in current_scope().tables[table].column_names
    # the table's own district column, checked row by row (rows reached through keys come
    # out of the owned-rows statement, which selects the district's only)
    own = current_scope().tables[table].district_column
    pool = file_pool()
    in_flight: deque[tuple[int, Future[int], Future[int]]] = deque()

    def settle() -> None:
        count, content, key = in_flight.popleft()
        taken.fp.add(count, content.result(), key.result())

    store = pending.store
    with writing(store):
        sink = pending.open_output(taken.name)
        writer = pq.ParquetWriter(sink, schema, **parquet_options())
    try:
        for batch in shaped(batches, table):
            if (
                own is not None
                and not pc.all(
                    pc.equal(batch.column(own).cast(pa.large_string()), district_id)
                ).as_py()
            ):
                raise DeleteError(
                    f"{table}: a row of another district came out of the district's "
                    "statement: rolled back, nothing was deleted"
                )
            in_flight.append(
                (
                    batch.num_rows,
                    pool.submit(content_sum, batch, table),
                    pool.submit(key_sum, batch, table),
                )
            )
            with writing(store):
                writer.write_batch(batch)
            if with_product:
                for item in pc.value_counts(batch.column("product")).to_pylist():
                    name = str(item["values"])
                    taken.products[name] = taken.products.get(name, 0) + int(item["counts"])
            while len(in_flight) > IN_FLIGHT:
                settle()
            if progress is not None:
                progress(table, taken.fp.rows + sum(p[0] for p in in_flight))
        while in_flight:
            settle()
    except BaseException:
        with suppress(Exception):
            writer.close()
        with suppress(Exception):
            sink.close()
        raise
    with writing(store):
        writer.close()
        sink.close()  # on an object store: the upload completes here
    if progress is not None:
        progress(table, taken.fp.rows)
    return taken


# ---------------------------------------------------------------------------------------
# verifying: the files on disk against what was streamed into them
# ---------------------------------------------------------------------------------------
def read_stored(
    pending: Pending, name: str, table: str, use: Callable[[pq.ParquetFile], Any]
) -> tuple[Any, str, str | None]:
    """Open a file of the part as it is stored now, check its columns against the contract
    and hand it to `use`: (what `use` gave, the file's sha256, a problem in one line)."""
    digest = hashlib.sha256()
    try:
        with pending.open_input(name) as stored:
            if stored.size() <= REREAD_IN_MEMORY:
                data = stored.read()
                digest.update(data)
                source: Any = pa.BufferReader(data)
            else:
                while block := stored.read(1 << 20):
                    digest.update(block)
                stored.seek(0)
                source = stored
            parquet = pq.ParquetFile(source)
            names = [f.name for f in parquet.schema_arrow]
            if names != current_scope().tables[table].column_names:
                return None, digest.hexdigest(), wrong_columns(table, names)
            return use(parquet), digest.hexdigest(), None
    except (OSError, pa.ArrowException, SnapshotError) as exc:
        return None, digest.hexdigest(), unreadable(table, exc)


def _reread(pending: Pending, taken: Taken) -> tuple[Fingerprint, str, list[str]]:
    """(rows and content fingerprint, sha256, problems) of the file as it is stored now."""
    table = taken.table

    def fingerprint(parquet: pq.ParquetFile) -> Fingerprint:
        fp = Fingerprint(table)
        for batch in parquet.iter_batches(batch_size=REREAD_ROWS, use_threads=False):
            # rows and content: the content fingerprint covers every column, keys too, so
            # a file whose content matches the stream has the stream's keys
            fp.add(batch.num_rows, content_sum(batch, table), 0)
        return fp

    fp, sha, problem = read_stored(pending, taken.name, table, fingerprint)
    return fp or Fingerprint(table), sha, [problem] if problem else []


def verify_files(pending: Pending, taken: dict[str, Taken]) -> dict[str, dict[str, Any]]:
    """Re-read each file as stored and compare it with the stream: the manifest's entries.

    Raises VerifyError when any file differs from what was streamed into it."""
    rereads = {table: file_pool().submit(_reread, pending, t) for table, t in taken.items()}
    entries: dict[str, dict[str, Any]] = {}
    for table in current_scope().deleted:
        fp, sha, problems = rereads[table].result()
        streamed = taken[table].fp
        if not problems and (fp.rows, fp.content) != (streamed.rows, streamed.content):
            what = "rows" if fp.rows != streamed.rows else "content fingerprint"
            problems.append(
                f"{table}: the file re-reads with other {what} than the rows streamed into it"
            )
        if problems:
            raise VerifyError(f"snapshot did not verify: {problems[0]}; nothing was deleted")
        entries[table] = manifest_entry(taken[table], sha)
    return entries


def manifest_entry(taken: Taken, sha256: str) -> dict[str, Any]:
    """A table's entry in the manifest: its file, rows, fingerprints, sha256 and columns."""
    return {
        "file": taken.name,
        **taken.fp.as_dict(),
        "sha256": sha256,
        "columns": [
            {"name": c, "type": kind} for c, kind in current_scope().tables[taken.table].columns
        ],
    }


# ---------------------------------------------------------------------------------------
# the pass
# ---------------------------------------------------------------------------------------
def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_manifest(
    pending: Pending,
    settings: Settings,
    target: str,
    district_id: str,
    school_year: int,
    created_at: datetime,
    tables: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], str]:
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "district_id": district_id,
        "school_year": int(school_year),
        "created_at": created_at.isoformat(),
        "target": target,
        "warehouse": settings.describe(),
        "tool_version": __version__,
        "algorithms": {"fingerprint": CONTENT_ALGORITHM, "key_fingerprint": KEY_ALGORITHM},
        "tables": tables,
    }
    manifest["manifest_digest"] = manifest_digest(manifest)
    text = _dumps(manifest).encode("utf-8")
    pending.write_manifest(text)
    return manifest, hashlib.sha256(text).hexdigest()
