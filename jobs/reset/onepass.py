"""One pass over a district's student rows: the statement that deletes a table's rows is the
one its snapshot is written from, and nothing commits before the snapshot verified.

In one transaction (the commit sequence of `jobs.reset.commit`), children first, each
student-data table's rows stream out of the statement that removes them: on PostgreSQL
`DELETE … RETURNING` read by ADBC as Arrow record batches; on DuckDB the runner holds the
only connection, so the rows are read and then deleted in the same transaction, and the
delete must remove exactly as many rows as were read. Each batch goes into the table's
Parquet file and into its fingerprints on the way. Then the files are re-read and checked
against the fingerprints taken from the stream, the manifest is written, files and manifest
are fsynced, the caller records its ledger events in the same transaction, and only then
does it commit. A failure or a kill before the commit leaves every row in place and no
snapshot where a snapshot belongs; after the commit the staging folder is renamed into
place, and a rerun finishes a rename that a kill interrupted (`settle_year`, `settle_parts`).

A snapshot part is `main` (the district's folder in the snapshot layout) or `delta-<n>`, a
sibling folder `<district folder>~delta-<n>` for rows that arrived after the main snapshot was
deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from jobs.config import Settings
from jobs.faults import fault_point
from jobs.reset.commit import Phase, StepError, run_pass
from jobs.scope import current_scope
from jobs.scope.sql import OWNER, delete_sql, kept_for_others_sql, literals, owned_sql, shared
from jobs.snapshot.fingerprint import KEY_MOD
from jobs.snapshot.source import columns_sql, pg_literal, select_sql
from jobs.snapshot.store import Pending, open_store
from jobs.snapshot.writer import (
    MAIN,
    DeleteError,
    Progress,
    Taken,
    verify_files,
    write_manifest,
    write_table,
    writing,
)
from jobs.warehouse.connection import (
    ARROW_BATCH_ROWS,
    AdbcSession,
    DuckDBWarehouse,
    Warehouse,
    quote_ident,
)

# DuckDB: a table's rows up to this many come out of its `delete … returning` (held whole,
# under 100 MiB); more are read and then deleted in the same transaction, streaming.
RETURNING_ROWS = 250_000
# Columns the runner itself changes (pausing and resuming syncs): outside retention checks.
SYNC_STATE_COLUMNS = ("status", "paused_at", "resumed_at")


def _district_where(table: str, district_id: str) -> str | None:
    """`COL = literal` when the table's own column holds its district, else None."""
    scoped = current_scope().tables[table]
    if scoped.district_column is None:
        return None
    literal = literals([district_id], scoped.kind(scoped.district_column))
    return f"{quote_ident(scoped.district_column)} = {literal}"


def _pg_rows(tx: Warehouse, table: str, district_id: str, delete: bool) -> Iterator[pa.RecordBatch]:
    assert isinstance(tx, AdbcSession)
    cols = columns_sql(table, "postgres")
    where = _district_where(table, district_id)
    assert where is not None
    relation = current_scope().tables[table].relation
    # a literal, not a parameter: ADBC then streams the result through COPY in batches
    sql = (
        f"delete from {relation} where {where} returning {cols}"
        if delete
        else f"select {cols} from {relation} where {where}"
    )
    yield from tx.statement_rows(sql)


def _duckdb_rows(
    wh: DuckDBWarehouse, table: str, district_id: str, delete: bool, expected: int | None
) -> Iterator[pa.RecordBatch]:
    cols = columns_sql(table, "duckdb")
    where = _district_where(table, district_id)
    assert where is not None
    relation = current_scope().tables[table].relation
    if delete and expected is not None and expected <= RETURNING_ROWS:
        # DuckDB holds a `returning` result whole: one statement for the tables it fits
        rel = wh.con.sql(f"delete from {relation} where {where} returning {cols}")
        yield from rel.to_arrow_reader(ARROW_BATCH_ROWS)
        return
    rel = wh.con.sql(f"select {cols} from {relation} where {where}")
    read = 0
    reader = rel.to_arrow_reader(ARROW_BATCH_ROWS)
    try:
        for batch in reader:
            read += batch.num_rows
            yield batch
    finally:
        reader.close()  # an open result would keep the connection from rolling back
    if delete:
        gone = wh.execute(f"delete from {relation} where {where}")
        if gone != read:
            raise DeleteError(
                f"{table}: the delete removed {gone} rows, the snapshot holds {read}: "
                "rolled back, nothing was deleted; run again"
            )


def _keyed_rows(
    tx: Warehouse, table: str, district_id: str, delete: bool, school_year: int
) -> Iterator[pa.RecordBatch]:
    """A table whose rows reach their district through keys: the district's owned rows (a
    shared row among them), then the delete of those no other owner still waits for."""
    scope = current_scope()
    scoped = scope.tables[table]
    sql = select_sql(table, tx.target, pg_literal(district_id))
    read = 0
    if isinstance(tx, AdbcSession):
        batches: Iterator[pa.RecordBatch] = tx.statement_rows(sql)
    else:
        assert isinstance(tx, DuckDBWarehouse)
        batches = tx.con.sql(sql).to_arrow_reader(ARROW_BATCH_ROWS)
    try:
        for batch in batches:
            read += batch.num_rows
            yield batch
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()
    if delete:
        gone = tx.execute(delete_sql(scope, scoped, [district_id], school_year))
        if gone != read and not shared(scope, scoped):
            raise DeleteError(
                f"{table}: the delete removed {gone} rows, the snapshot holds {read}: "
                "rolled back, nothing was deleted; run again"
            )


# the school year of the pass under way (a shared row's other owners are looked up in it)
_PASS_YEAR: ContextVar[int] = ContextVar("pass_year", default=0)


def _rows_of(
    tx: Warehouse, table: str, district_id: str, delete: bool, expected: int | None = None
) -> Iterator[pa.RecordBatch]:
    """The district's rows of a table as they leave it (`expected`: about how many)."""
    if _district_where(table, district_id) is None:
        return _keyed_rows(tx, table, district_id, delete, _PASS_YEAR.get())
    if isinstance(tx, DuckDBWarehouse):
        return _duckdb_rows(tx, table, district_id, delete, expected)
    return _pg_rows(tx, table, district_id, delete)


# ---------------------------------------------------------------------------------------
# what must not change: the district's retained rows, in the same transaction
# ---------------------------------------------------------------------------------------
def _hash60(text_sql: str, target: str) -> str:
    digest = f"substr(md5({text_sql}), 1, 15)"
    if target == "postgres":
        return f"('x' || {digest})::bit(60)::bigint"
    return f"cast('0x' || {digest} as bigint)"


def retained_columns(table: str) -> list[str]:
    cols = current_scope().tables[table].column_names
    if current_scope().tables[table].decl.role == "syncs":
        cols = [c for c in cols if c not in SYNC_STATE_COLUMNS]
    return cols


def _state_from(table: str, districts: list[str], grouped: bool) -> tuple[str, str, str]:
    """(relation or subquery, where, the district's expression) of a table's district rows.
    A retained table with no district column of its own is checked whole."""
    scope = current_scope()
    scoped = scope.tables[table]
    column = scoped.district_column
    if column is not None:
        kind = scoped.kind(column)
        where = f"{quote_ident(column)} in ({literals(districts, kind)})"
        return scoped.relation, where, f"cast({quote_ident(column)} as text)"
    if not scoped.deleted:
        return scoped.relation, "true", "null" if grouped else "''"
    owned = owned_sql(scope, scoped, districts)
    return f"({owned}) as o", f"o.{OWNER} in ({literals(districts)})", f"o.{OWNER}"


def district_state_parts(
    target: str,
    with_remaining: bool,
    districts: list[str],
    grouped: bool = False,
    school_year: int | None = None,
) -> list[str]:
    """SELECTs of [rows, fingerprint] of each retained table and, when asked, the rows left
    in each deleted table, of the districts' rows; `grouped`: one row per district (its id
    first; null for a table checked whole), districts without rows left out. With the
    school year (a pass's check), a row another district owns too is not counted as left:
    the delete kept it for that owner, and it goes with its last owner."""
    scope = current_scope()
    parts = []
    for table in scope.retained:
        source, where, district = _state_from(table, districts, grouped)
        key = f"{district} as d, " if grouped else ""
        group = f" group by {district}" if grouped and district != "null" else ""
        fields = ", ".join(
            f"coalesce(cast({quote_ident(c)} as text), '<null>')" for c in retained_columns(table)
        )
        row = _hash60(f"concat_ws('|', {fields})", target)
        parts.append(
            f"select {key}'{table}' as t, count(*) as n, "
            f"cast(mod(coalesce(sum({row}), 0), {KEY_MOD}) as bigint) as f "
            f"from {source} where {where}{group}"
        )
    if with_remaining:
        for table in scope.deleted:
            source, where, district = _state_from(table, districts, grouped)
            if school_year is not None and source.endswith(" as o"):
                # any other owner: one completed since this pass's delete kept the row
                kept = kept_for_others_sql(scope, scope.tables[table], districts, None)
                if kept != "false":
                    where += f" and not {kept}"
            key = f"{district} as d, " if grouped else ""
            group = f" group by {district}" if grouped else ""
            parts.append(
                f"select {key}'{table}' as t, count(*) as n, cast(0 as bigint) as f "
                f"from {source} where {where}{group}"
            )
    return parts


def district_state_sql(
    target: str, with_remaining: bool, district_id: str, school_year: int | None = None
) -> str:
    """One statement: [rows, fingerprint] of each retained table of a district and, when
    asked, the rows left in each deleted table (see `district_state_parts`)."""
    parts = district_state_parts(target, with_remaining, [district_id], school_year=school_year)
    return " union all ".join(parts)


def district_state(
    wh: Warehouse, district_id: str, with_remaining: bool = False, school_year: int | None = None
) -> dict[str, list[int]]:
    sql = district_state_sql(wh.target, with_remaining, district_id, school_year)
    return {str(t): [int(rows), int(f)] for t, rows, f in wh.query(sql)}


# the runner's ledger events of one district, written in its pass's transaction
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
        "rows": {t: taken[t].fp.rows for t in current_scope().deleted},
        "products": {t: taken[t].products for t in current_scope().deleted if taken[t].products},
        "rows_total": sum(taken[t].fp.rows for t in current_scope().deleted),
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
    exactly those rows, in one transaction that commits only once the snapshot verified (the
    commit sequence of `jobs.reset.commit`).

    `before_commit(tx, detail)` runs last inside the transaction (the runner records its
    ledger events there, so they commit with the delete). `expected`: rows per table as
    counted before (a DuckDB table that small comes out of a single `delete … returning`).
    Returns the delete's detail: part, path, manifest_sha256, rows and products per table,
    remaining rows, retained state. Raises StepError.
    """

    def work(tx: Warehouse, pendings: dict[str, Pending], phase: Phase) -> dict[str, Any]:
        return {
            district_id: _one_pass(
                tx,
                settings,
                pendings[district_id],
                district_id,
                school_year,
                part,
                phase,
                delete=delete,
                progress=progress,
                expected=expected or {},
            )
        }

    def record(tx: Warehouse, details: dict[str, dict[str, Any]]) -> None:
        if before_commit is not None:
            before_commit(tx, details[district_id])

    done = run_pass(
        wh, settings, school_year, {district_id: part}, work, delete=delete, before_commit=record
    )[district_id]
    if isinstance(done, StepError):
        raise done
    return done


def _one_pass(
    tx: Warehouse,
    settings: Settings,
    pending: Pending,
    district_id: str,
    school_year: int,
    part: str,
    phase: Phase,
    *,
    delete: bool,
    progress: Progress | None,
    expected: dict[str, int],
) -> dict[str, Any]:
    """The district's work in its pass: each table's rows streamed into its file as they
    leave the table, the files re-read and checked, the manifest written and synced, and
    the retained rows checked unchanged. The delete's detail."""
    created_at = datetime.now(UTC)
    before = district_state(tx, district_id) if delete else {}
    taken: dict[str, Taken] = {}
    scope = current_scope()
    for table in scope.delete_order:
        _PASS_YEAR.set(school_year)
        rows = _rows_of(tx, table, district_id, delete, expected.get(table))
        try:
            taken[table] = write_table(rows, table, pending, district_id, progress)
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                close()
        fault_point(f"export:{table}")
    fault_point("after:export")
    phase.step = "verify"
    fault_point("before:verify")
    tables = verify_files(pending, {t: taken[t] for t in scope.deleted})
    with writing(pending.store):
        manifest, manifest_sha = write_manifest(
            pending, settings, tx.target, district_id, school_year, created_at, tables
        )
        pending.sync()  # the files and the manifest durable before anything commits
    fault_point("after:verify")
    detail = pass_detail(part, pending, manifest_sha, taken, manifest["created_at"])
    phase.step = "delete"
    if delete:
        fault_point("before:delete")
        after = district_state(tx, district_id, with_remaining=True, school_year=school_year)
        fault_point("after:delete")  # the rows are gone in this transaction, not committed
        fault_point("before:check_retention")
        changed = sorted(t for t in scope.retained if after[t] != before[t])
        if changed:
            raise DeleteError(
                f"retained rows of the district changed during its delete "
                f"({', '.join(changed)}): rolled back, nothing was deleted; run again"
            )
        fault_point("after:check_retention")
        detail["retained_before"] = before
        detail["remaining"] = {t: after[t][0] for t in scope.deleted}
        # checked above, in this transaction: it commits only if both hold
        detail["retained_unchanged"] = True
        detail["other_districts_unchanged"] = True
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
