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

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from jobs.config import Settings
from jobs.errors import EoyError, first_line
from jobs.faults import fault_point
from jobs.snapshot.fingerprint import (
    KEY_MOD,
)
from jobs.snapshot.source import columns_sql, pg_literal
from jobs.snapshot.store import Pending, open_store
from jobs.snapshot.writer import (
    MAIN,
    DeleteError,
    Progress,
    Taken,
    VerifyError,
    WriteError,
    verify_files,
    write_manifest,
    write_table,
    writing,
)
from jobs.warehouse.connection import DuckDBWarehouse, PostgresWarehouse, Warehouse, quote_ident
from jobs.warehouse.contract import (
    DELETE_ORDER,
    DELETED_TABLES,
    RETAINED_TABLES,
    TABLES,
)

BATCH_ROWS = 128_000
# DuckDB: a table's rows up to this many come out of its `delete … returning` (held whole,
# under 100 MiB); more are read and then deleted in the same transaction, streaming.
RETURNING_ROWS = 250_000
# Columns the runner itself changes (pausing and resuming syncs): outside retention checks.
SYNC_STATE_COLUMNS = ("status", "paused_at", "resumed_at")


class StepError(EoyError):
    """The district's pass failed at a ledger step (export, verify, delete, complete); the
    message is one line for the operator."""

    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


# Where the warehouse's errors come from (ADBC's stream reports through pyarrow).
DATABASE_MODULES = ("adbc_driver_manager", "duckdb", "psycopg", "pyarrow", "_duckdb")


def foreign_key_violation(exc: Exception) -> bool:
    """The warehouse refused the delete: rows that arrived since refer to the rows it takes."""
    return "foreign key" in str(exc).lower()


def step_error(exc: Exception, phase: str, committed: bool) -> StepError | None:
    """What went wrong in a pass, as the ledger step it failed and one line."""
    if committed:
        return StepError(
            "complete",
            f"the district's delete committed, but its snapshot could not be put in place "
            f"({first_line(exc)}): run again to finish",
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
    if foreign_key_violation(exc):
        return StepError(
            "delete",
            "rows that arrived after the snapshot refer to its rows "
            f"({first_line(exc)}): rolled back, nothing was deleted; "
            "run again to take a new snapshot",
        )
    return StepError(
        "delete",
        f"the district's transaction failed and was rolled back ({first_line(exc)}): "
        "nothing was deleted; run again",
    )


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
        yield from self.statement_rows(sql)

    def statement_rows(self, sql: str) -> Iterator[pa.RecordBatch]:
        """A statement's rows, streamed as Arrow record batches (no parameters: a literal
        lets ADBC stream the result through COPY)."""
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


def district_state_parts(
    target: str, with_remaining: bool, where: str = "district_id = %s", grouped: bool = False
) -> list[str]:
    """SELECTs of [rows, fingerprint] of each retained table and, when asked, the rows left
    in each student-data table, of the rows matching `where`; `grouped`: one row per district
    (its id first), districts without rows left out."""
    key = "district_id as d, " if grouped else ""
    group = " group by district_id" if grouped else ""
    parts = []
    for table in RETAINED_TABLES:
        fields = ", ".join(
            f"coalesce(cast({quote_ident(c)} as text), '<null>')" for c in retained_columns(table)
        )
        row = _hash60(f"concat_ws('|', {fields})", target)
        parts.append(
            f"select {key}'{table}' as t, count(*) as n, "
            f"cast(mod(coalesce(sum({row}), 0), {KEY_MOD}) as bigint) as f "
            f"from app.{quote_ident(table)} where {where}{group}"
        )
    if with_remaining:
        for table in DELETED_TABLES:
            parts.append(
                f"select {key}'{table}' as t, count(*) as n, cast(0 as bigint) as f "
                f"from app.{quote_ident(table)} where {where}{group}"
            )
    return parts


def district_state_sql(target: str, with_remaining: bool) -> tuple[str, int]:
    """One statement: [rows, fingerprint] of each retained table of a district and, when
    asked, the rows left in each student-data table. Returns (sql, parameters it takes)."""
    parts = district_state_parts(target, with_remaining)
    return " union all ".join(parts), len(parts)


def district_state(
    wh: Warehouse, district_id: str, with_remaining: bool = False
) -> dict[str, list[int]]:
    sql, n = district_state_sql(wh.target, with_remaining)
    return {str(t): [int(rows), int(f)] for t, rows, f in wh.query(sql, [district_id] * n)}


BeforeCommit = Callable[[Warehouse, dict[str, Any]], None]


def pass_detail(
    part: str, pending: Pending, manifest_sha: str, taken: dict[str, Taken], created_at: str
) -> dict[str, Any]:
    """The delete's detail of a part whose files verified and whose manifest is written
    (the retained state and what remains are added by the caller)."""
    return {
        "part": part,
        "path": pending.location,
        "staging": pending.staging,
        "manifest_sha256": manifest_sha,
        "rows": {t: taken[t].fp.rows for t in DELETED_TABLES},
        "products": {t: taken[t].products for t in DELETED_TABLES if taken[t].products},
        "rows_total": sum(taken[t].fp.rows for t in DELETED_TABLES),
        "created_at": created_at,
    }


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
        with writing(store):
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
            with writing(store):
                manifest, manifest_sha = write_manifest(
                    pending, settings, wh.target, district_id, school_year, created_at, tables
                )
                pending.sync()  # the files and the manifest durable before anything commits
            fault_point("after:verify")
            detail = pass_detail(part, pending, manifest_sha, taken, manifest["created_at"])
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
        pending.publish()  # a folder renamed into place, or the manifest object written last
    except BaseException as exc:
        if not committed:  # a committed part waits in staging until it is put in place
            with suppress(Exception):
                pending.discard()
        if isinstance(exc, Exception) and not isinstance(exc, StepError):
            failed = step_error(exc, phase, committed)
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
