"""One pass over a district's student rows (SPEC §6-§7): the statement that deletes a table's
rows is the one its snapshot is written from, and nothing commits before the snapshot verified.

In one transaction, children first, each student-data table's rows stream out of the statement
that removes them: on PostgreSQL `DELETE … RETURNING` read by ADBC as Arrow record batches; on
DuckDB the runner holds the only connection, so the rows are read and then deleted in the same
transaction, and the delete must remove exactly as many rows as were read. Each batch goes
into the table's Parquet file and into its fingerprints on the way. Then the files are
re-read and checked against the fingerprints taken from the stream, the manifest is written,
files and manifest are fsynced, the caller records its ledger events in the same
transaction, and only then does it commit. A failure or a kill before the commit leaves every
row in place and no snapshot where a snapshot belongs; after the commit the staging folder is
renamed into place, and a rerun finishes a rename that a kill interrupted (`settle_year`,
`settle_parts`).

A snapshot part is `main` (the district's folder of SPEC §7) or `delta-<n>`, a sibling folder
`<district folder>~delta-<n>` for rows that arrived after the main snapshot was deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs import __version__
from jobs.config import Settings
from jobs.errors import EoyError
from jobs.faults import fault_point
from jobs.snapshot.fingerprint import (
    CONTENT_ALGORITHM,
    KEY_ALGORITHM,
    KEY_MOD,
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
from jobs.snapshot.store import (
    Pending,
    S3Store,
    SnapshotStore,
    StoreError,
    open_store,
    store_for,
)
from jobs.warehouse.connection import DuckDBWarehouse, PostgresWarehouse, Warehouse, quote_ident
from jobs.warehouse.contract import (
    DATE,
    DELETE_ORDER,
    DELETED_TABLES,
    FLOAT,
    INT,
    RETAINED_TABLES,
    SQL_TYPES,
    TABLES,
    TEXT,
    TIMESTAMP,
)

MAIN = "main"
BATCH_ROWS = 128_000
# DuckDB: a table's rows up to this many come out of its `delete … returning` (held whole,
# under 100 MiB); more are read and then deleted in the same transaction, streaming.
RETURNING_ROWS = 250_000
IN_FLIGHT = 3  # batches fingerprinted at once beside the writer
REREAD_IN_MEMORY = 256 * 1024 * 1024  # files up to this size are read once for sha256 and rows
# Columns the runner itself changes (pausing and resuming syncs): outside retention checks.
SYNC_STATE_COLUMNS = ("status", "paused_at", "resumed_at")
Progress = Callable[[str, int], None]  # (table, rows taken so far)


class DeleteError(EoyError):
    """The district's transaction was rolled back: what it would delete was not what its
    snapshot holds, or something else changed; nothing was deleted."""


class VerifyError(SnapshotError):
    """A snapshot file did not re-read to what was streamed into it; nothing was deleted."""


class WriteError(SnapshotError):
    """The snapshot root would not take a file (full, read-only, gone); nothing was deleted."""


@contextmanager
def _writing(store: SnapshotStore) -> Iterator[None]:
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
            reason = os.strerror(exc.errno) if exc.errno else exc.strerror or _first_line(exc)
        raise WriteError(
            f"the snapshot could not be written under {store.root} ({reason}): "
            "nothing was deleted; fix the snapshot root and run again"
        ) from None


class StepError(EoyError):
    """The district's pass failed at a ledger step (export, verify, delete, complete); the
    message is one line for the operator."""

    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# Where the warehouse's errors come from (ADBC's stream reports through pyarrow).
DATABASE_MODULES = ("adbc_driver_manager", "duckdb", "psycopg", "pyarrow", "_duckdb")


def _step_error(exc: Exception, phase: str, committed: bool) -> StepError | None:
    """What went wrong in a pass, as the ledger step it failed and one line."""
    if committed:
        return StepError(
            "complete",
            f"the district's delete committed, but its snapshot could not be put in place "
            f"({_first_line(exc)}): run again to finish",
        )
    if isinstance(exc, VerifyError):
        return StepError("verify", str(exc))
    if isinstance(exc, DeleteError):
        return StepError("delete", str(exc))
    if isinstance(exc, WriteError):
        return StepError("export", str(exc))
    if isinstance(exc, EoyError):
        return StepError(phase, str(exc))
    # file-system errors of the snapshot are WriteErrors by now: an OSError left is ADBC's
    # stream reporting the server's error through pyarrow
    from_database = type(exc).__module__.split(".")[0] in DATABASE_MODULES
    if not (from_database or isinstance(exc, OSError)):
        return None  # not the warehouse's: a bug, raised as it is
    if "foreign key" in str(exc).lower():
        return StepError(
            "delete",
            "rows that arrived after the snapshot refer to its rows "
            f"({_first_line(exc)}): rolled back, nothing was deleted; "
            "run again to take a new snapshot",
        )
    return StepError(
        "delete",
        f"the district's transaction failed and was rolled back ({_first_line(exc)}): "
        "nothing was deleted; run again",
    )


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
    if not waiting:
        return []
    marks = ", ".join(["%s"] * len(waiting))
    if wh.target == "postgres":
        text, sha = "cast(detail as text)", "detail ->> 'manifest_sha256'"
    else:
        text, sha = "cast(detail as varchar)", "json_extract_string(detail, 'manifest_sha256')"
    placed = []
    for (detail,) in wh.query(
        f"select {text} from eoy_runner.reset_events where step = 'delete' "
        f"and status = 'completed' and school_year = %s and {sha} in ({marks})",
        [school_year, *waiting],
    ):
        done = json.loads(detail)
        staging = waiting.get(done.get("manifest_sha256"))
        path = str(done.get("path"))
        if staging is not None and store_for(path, settings).settle(
            path, staging, done["manifest_sha256"]
        ):
            placed.append(path)
    return placed


# ---------------------------------------------------------------------------------------
# the rows, as they leave the warehouse
# ---------------------------------------------------------------------------------------
def columns_sql(table: str, target: str) -> str:
    """The table's columns in contract order, cast to the contract types."""
    types = SQL_TYPES[target]
    return ", ".join(
        f"cast({quote_ident(c)} as {types[kind]}) as {quote_ident(c)}"
        for c, kind in TABLES[table].columns
    )


def pg_literal(value: str) -> str:
    """A PostgreSQL string literal (the session has standard_conforming_strings on)."""
    if "\x00" in value:
        raise SnapshotError("a district id with a NUL character cannot exist in PostgreSQL")
    return "'" + value.replace("'", "''") + "'"


class AdbcTransaction(Warehouse):
    """The statements of one PostgreSQL transaction on an ADBC connection: the deletes that
    stream their rows, and the ledger writes that must commit with them."""

    target = "postgres"

    def __init__(self, settings: Settings, con: Any):
        self.settings = settings
        self.con = con

    def execute(self, sql: str, params: Any = None) -> int:
        from jobs.warehouse.connection import _pg_positional

        with self.con.cursor() as cur:
            cur.execute(_pg_positional(sql), params)
            return int(cur.rowcount)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        from jobs.warehouse.connection import _pg_positional

        with self.con.cursor() as cur:
            cur.execute(_pg_positional(sql), params)
            return [tuple(r) for r in cur.fetchall()]

    def query_dicts(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        from jobs.warehouse.connection import _pg_positional

        with self.con.cursor() as cur:
            cur.execute(_pg_positional(sql), params)
            names = [d[0] for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        yield  # already inside one

    def rows(self, table: str, district_id: str, delete: bool) -> Iterator[pa.RecordBatch]:
        cols = columns_sql(table, "postgres")
        where = f"district_id = {pg_literal(district_id)}"
        # a literal, not a parameter: ADBC then streams the result through COPY in batches
        sql = (
            f"delete from app.{quote_ident(table)} where {where} returning {cols}"
            if delete
            else f"select {cols} from app.{quote_ident(table)} where {where}"
        )
        with self.con.cursor() as cur:
            cur.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(16 * 1024 * 1024)}
            )
            cur.execute(sql)
            yield from cur.fetch_record_batch()

    def close(self) -> None:
        pass


def _duckdb_rows(
    wh: DuckDBWarehouse, table: str, district_id: str, delete: bool, expected: int | None
) -> Iterator[pa.RecordBatch]:
    cols = columns_sql(table, "duckdb")
    if delete and expected is not None and expected <= RETURNING_ROWS:
        # DuckDB holds a `returning` result whole: one statement for the tables it fits
        rel = wh.con.sql(
            f"delete from app.{quote_ident(table)} where district_id = $1 returning {cols}",
            params=[district_id],
        )
        yield from rel.to_arrow_reader(BATCH_ROWS)
        return
    rel = wh.con.sql(
        f"select {cols} from app.{quote_ident(table)} where district_id = $1", params=[district_id]
    )
    read = 0
    reader = rel.to_arrow_reader(BATCH_ROWS)
    try:
        for batch in reader:
            read += batch.num_rows
            yield batch
    finally:
        reader.close()  # an open result would keep the connection from rolling back
    if delete:
        gone = wh.execute(
            f"delete from app.{quote_ident(table)} where district_id = %s", [district_id]
        )
        if gone != read:
            raise DeleteError(
                f"{table}: the delete removed {gone} rows, the snapshot holds {read}: "
                "rolled back, nothing was deleted; run again"
            )


@contextmanager
def district_transaction(wh: Warehouse, reading_only: bool = False) -> Iterator[Warehouse]:
    """One transaction for the district's pass: the runner's DuckDB connection, or the
    PostgreSQL worker's ADBC connection (READ COMMITTED: a delete waits for a row another
    session is updating and takes its newest value; a snapshot that deletes nothing reads
    every table at one point in time, REPEATABLE READ)."""
    if isinstance(wh, DuckDBWarehouse):
        with wh.transaction():
            yield wh
        return
    assert isinstance(wh, PostgresWarehouse)
    con = wh.adbc()
    tx = AdbcTransaction(wh.settings, con)
    try:
        if reading_only:
            tx.execute("set transaction isolation level repeatable read, read only")
        tx.execute("set local standard_conforming_strings = on")
        yield tx
    except BaseException:
        try:
            con.rollback()
        except Exception:
            wh.drop_adbc()  # a broken connection: the next district opens a new one
        raise
    try:
        con.commit()
    except BaseException:
        wh.drop_adbc()
        raise


def _rows_of(
    tx: Warehouse, table: str, district_id: str, delete: bool, expected: int | None = None
) -> Iterator[pa.RecordBatch]:
    """The district's rows of a table as they leave it (`expected`: about how many)."""
    if isinstance(tx, AdbcTransaction):
        return tx.rows(table, district_id, delete)
    assert isinstance(tx, DuckDBWarehouse)
    return _duckdb_rows(tx, table, district_id, delete, expected)


# ---------------------------------------------------------------------------------------
# writing: one Parquet file per table, fingerprinted on the way
# ---------------------------------------------------------------------------------------
_pool: ThreadPoolExecutor | None = None


def _workers() -> ThreadPoolExecutor:
    """Threads for fingerprints and re-reads (both release the GIL in their native code)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="eoy-fingerprint")
    return _pool


@dataclass
class Taken:
    """One table's rows as they went into its file."""

    table: str
    name: str  # the file's name in the part
    fp: Fingerprint
    products: dict[str, int] = field(default_factory=dict)


POLARS_TYPES: dict[str, Any] = {
    TEXT: pl.String,
    INT: pl.Int32,
    FLOAT: pl.Float64,
    DATE: pl.Date,
    TIMESTAMP: pl.Datetime("us"),
}


def shaped(reader: Iterable[pa.RecordBatch], table: str) -> Iterator[pa.RecordBatch]:
    """Batches in the contract's Arrow types; empty ones dropped.

    A batch already of the contract types (what the casting SELECT usually gives) only has
    its text widened to large strings, which Arrow does without copying the text; others are
    cast by Polars."""
    schema = arrow_schema(table, large_text=True)
    plain = arrow_schema(table)
    columns = TABLES[table].columns
    for batch in reader:
        if batch.num_rows == 0:
            continue
        if batch.schema.equals(plain) or batch.schema.equals(schema):
            yield batch.cast(schema)
            continue
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.select([pl.col(c).cast(POLARS_TYPES[kind]) for c, kind in columns])
        out = frame.to_arrow()
        yield from (out if out.schema == schema else out.cast(schema)).to_batches()


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
    with_product = "product" in TABLES[table].column_names
    pool = _workers()
    in_flight: deque[tuple[int, Future[int], Future[int]]] = deque()

    def settle() -> None:
        count, content, key = in_flight.popleft()
        taken.fp.add(count, content.result(), key.result())

    store = pending.store
    with _writing(store):
        sink = pending.open_output(taken.name)
        writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        for batch in shaped(batches, table):
            if not pc.all(pc.equal(batch.column("district_id"), district_id)).as_py():
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
            with _writing(store):
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
    with _writing(store):
        writer.close()
        sink.close()  # on an object store: the upload completes here
    if progress is not None:
        progress(table, taken.fp.rows)
    return taken


# ---------------------------------------------------------------------------------------
# verifying: the files on disk against what was streamed into them
# ---------------------------------------------------------------------------------------
def _reread(pending: Pending, taken: Taken) -> tuple[Fingerprint, str, list[str]]:
    """(rows and content fingerprint, sha256, problems) of the file as it is stored now."""
    table = taken.table
    digest = hashlib.sha256()
    problems: list[str] = []
    fp = Fingerprint(table)
    try:
        size = pending.size(taken.name)
        with pending.open_input(taken.name) as stored:
            if size <= REREAD_IN_MEMORY:
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
            if names != TABLES[table].column_names:
                problems.append(f"{table}: the file's columns {names} are not the contract's")
            else:
                for batch in parquet.iter_batches(batch_size=256_000):
                    # rows and content: the content fingerprint covers every column, keys
                    # too, so a file whose content matches the stream has the stream's keys
                    fp.add(batch.num_rows, content_sum(batch, table), 0)
    except (OSError, pa.ArrowException, SnapshotError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        problems.append(f"{table}: the file does not read back: {first}")
    return fp, digest.hexdigest(), problems


def verify_files(pending: Pending, taken: dict[str, Taken]) -> dict[str, dict[str, Any]]:
    """Re-read each file as stored and compare it with the stream: the manifest's entries.

    Raises VerifyError when any file differs from what was streamed into it."""
    rereads = {table: _workers().submit(_reread, pending, t) for table, t in taken.items()}
    entries: dict[str, dict[str, Any]] = {}
    for table in DELETED_TABLES:
        fp, sha, problems = rereads[table].result()
        streamed = taken[table].fp
        if not problems and (fp.rows, fp.content) != (streamed.rows, streamed.content):
            what = "rows" if fp.rows != streamed.rows else "content fingerprint"
            problems.append(
                f"{table}: the file re-reads with other {what} than the rows streamed into it"
            )
        if problems:
            raise VerifyError(f"snapshot did not verify: {problems[0]}; nothing was deleted")
        entries[table] = {
            "file": taken[table].name,
            **streamed.as_dict(),
            "sha256": sha,
            "columns": [{"name": c, "type": kind} for c, kind in TABLES[table].columns],
        }
    return entries


# ---------------------------------------------------------------------------------------
# what must not change: the district's retained rows, in the same transaction
# ---------------------------------------------------------------------------------------
def _hash60(text_sql: str, target: str) -> str:
    digest = f"substr(md5({text_sql}), 1, 15)"
    if target == "postgres":
        return f"('x' || {digest})::bit(60)::bigint"
    return f"cast('0x' || {digest} as bigint)"


def retained_columns(table: str) -> list[str]:
    cols = TABLES[table].column_names
    if table == "import_syncs":
        cols = [c for c in cols if c not in SYNC_STATE_COLUMNS]
    return cols


def district_state_sql(target: str, with_remaining: bool) -> tuple[str, int]:
    """One statement: [rows, fingerprint] of each retained table of a district and, when
    asked, the rows left in each student-data table. Returns (sql, parameters it takes)."""
    parts = []
    for table in RETAINED_TABLES:
        fields = ", ".join(
            f"coalesce(cast({quote_ident(c)} as text), '<null>')" for c in retained_columns(table)
        )
        row = _hash60(f"concat_ws('|', {fields})", target)
        parts.append(
            f"select '{table}' as t, count(*) as n, "
            f"cast(mod(coalesce(sum({row}), 0), {KEY_MOD}) as bigint) as f "
            f"from app.{quote_ident(table)} where district_id = %s"
        )
    if with_remaining:
        for table in DELETED_TABLES:
            parts.append(
                f"select '{table}' as t, count(*) as n, cast(0 as bigint) as f "
                f"from app.{quote_ident(table)} where district_id = %s"
            )
    return " union all ".join(parts), len(parts)


def district_state(
    wh: Warehouse, district_id: str, with_remaining: bool = False
) -> dict[str, list[int]]:
    sql, n = district_state_sql(wh.target, with_remaining)
    return {str(t): [int(rows), int(f)] for t, rows, f in wh.query(sql, [district_id] * n)}


# ---------------------------------------------------------------------------------------
# the pass
# ---------------------------------------------------------------------------------------
def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _write_manifest(
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


BeforeCommit = Callable[[Warehouse, dict[str, Any]], None]


def take_snapshot(
    wh: Warehouse,
    settings: Settings,
    district_id: str,
    school_year: int,
    part: str = MAIN,
    *,
    delete: bool = True,
    before_commit: BeforeCommit | None = None,
    progress: Progress | None = None,
    expected: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Snapshot the district's student rows into the part's folder and, with `delete`, delete
    exactly those rows, in one transaction that commits only once the snapshot verified.

    `before_commit(tx, detail)` runs last inside the transaction (the runner records its
    ledger events there, so they commit with the delete). `expected`: rows per table as
    counted before (a DuckDB table that small comes out of a single `delete … returning`).
    Returns the delete's detail: part, path, manifest_sha256, rows and products per table,
    remaining rows, retained state.
    """
    store = open_store(settings)
    try:
        with _writing(store):
            pending = store.begin(school_year, district_id, part)
    except WriteError as exc:
        raise StepError("export", str(exc)) from None
    committed = False
    phase = "export"
    try:
        with district_transaction(wh, reading_only=not delete) as tx:
            created_at = datetime.now(UTC)
            before = district_state(tx, district_id) if delete else {}
            taken: dict[str, Taken] = {}
            for table in DELETE_ORDER:
                rows = _rows_of(tx, table, district_id, delete, (expected or {}).get(table))
                try:
                    taken[table] = write_table(rows, table, pending, district_id, progress)
                finally:
                    close = getattr(rows, "close", None)
                    if close is not None:
                        close()
                fault_point(f"export:{table}")
            fault_point("after:export")
            phase = "verify"
            fault_point("before:verify")
            tables = verify_files(pending, {t: taken[t] for t in DELETED_TABLES})
            with _writing(store):
                manifest, manifest_sha = _write_manifest(
                    pending, settings, wh.target, district_id, school_year, created_at, tables
                )
                pending.sync()  # the files and the manifest durable before anything commits
            fault_point("after:verify")
            detail: dict[str, Any] = {
                "part": part,
                "path": pending.location,
                "staging": pending.staging,
                "manifest_sha256": manifest_sha,
                "rows": {t: taken[t].fp.rows for t in DELETED_TABLES},
                "products": {t: taken[t].products for t in DELETED_TABLES if taken[t].products},
                "rows_total": sum(taken[t].fp.rows for t in DELETED_TABLES),
                "created_at": manifest["created_at"],
            }
            phase = "delete"
            if delete:
                fault_point("before:delete")
                after = district_state(tx, district_id, with_remaining=True)
                changed = sorted(t for t in RETAINED_TABLES if after[t] != before[t])
                if changed:
                    raise DeleteError(
                        f"retained rows of the district changed during its delete "
                        f"({', '.join(changed)}): rolled back, nothing was deleted; run again"
                    )
                detail["retained_before"] = before
                detail["remaining"] = {t: after[t][0] for t in DELETED_TABLES}
                # checked above, in this transaction: it commits only if both hold
                detail["retained_unchanged"] = True
                detail["other_districts_unchanged"] = True
            if before_commit is not None:
                before_commit(tx, detail)
            fault_point("commit:delete")
        committed = True
        fault_point("after:commit")
        pending.publish()
    except BaseException as exc:
        if not committed:  # a committed part waits in staging until it is put in place
            with suppress(Exception):
                pending.discard()
        if isinstance(exc, Exception) and not isinstance(exc, StepError):
            failed = _step_error(exc, phase, committed)
            if failed is not None:
                raise failed from None
        raise
    return detail


def export_district(
    wh: Warehouse,
    settings: Settings,
    district_id: str,
    school_year: int,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """A snapshot of the district's current rows that deletes nothing (the same writer and
    checks as the reset's): its manifest, path and manifest sha256."""
    detail = take_snapshot(
        wh, settings, district_id, school_year, MAIN, delete=False, progress=progress
    )
    manifest = open_store(settings).read_manifest(detail["path"])
    return {**manifest, "path": detail["path"], "manifest_sha256": detail["manifest_sha256"]}
