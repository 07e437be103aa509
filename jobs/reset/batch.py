"""The one pass (`jobs.reset.onepass`) for a batch of districts: one transaction, one
statement per table for all of them, the same files, checks and ledger events per district.

A district's pass alone costs about 30 ms before a single row moves (seven deletes, two state
queries, the ledger's writes, a commit) and a few milliseconds per file of fingerprinting in
small pieces: most districts are small, so that fixed cost was most of a reset. In a batch,
each table's rows of every district in it leave in one statement (PostgreSQL `DELETE … WHERE
district_id = ANY(…) RETURNING`, streamed by ADBC; DuckDB, the only connection, reads them
and deletes them, counting the same rows), are fingerprinted in one vectorised pass and split
by district into the districts' own files; each file is re-read as stored and compared with
its rows value for value (the rows its fingerprint was computed from), and the retained rows
of the batch are checked by one grouped query before and after. Nothing
commits until every district's snapshot verified: a failure or a kill leaves every district
of the batch as it was.

A failure before the commit raises `RetryAlone`: it may belong to one district's rows (a file
that does not re-read as written, a delete that counted other rows, retained rows changed, a
foreign key from rows that arrived meanwhile, a value the warehouse refused), so the runner
takes the batch's districts one by one at once, in the same run, and only the district it
belongs to fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs.config import Settings
from jobs.faults import fault_point
from jobs.reset.commit import Phase, RetryAlone, StepError, run_pass
from jobs.reset.onepass import district_state_parts, pass_detail
from jobs.scope import current_scope
from jobs.scope.sql import OWNER, delete_owned_sql, delete_sql, select_sql, shared
from jobs.snapshot.filework import (
    FileProcess,
    Runs,
    Written,
    compared,
    file_processes,
    part_of,
)
from jobs.snapshot.fingerprint import (
    CONTENT_MOD,
    KEY_MOD,
    Fingerprint,
    arrow_schema,
    content_values,
    key_row_sql,
    scratch_duckdb,
)
from jobs.snapshot.folder import FolderPending
from jobs.snapshot.source import columns_sql, shaped
from jobs.snapshot.store import Pending, SnapshotStore, thread_pool
from jobs.snapshot.writer import (
    MAIN,
    Taken,
    VerifyError,
    file_pool,
    manifest_entry,
    parquet_options,
    read_stored,
    write_manifest,
    writing,
)
from jobs.warehouse.connection import AdbcSession, DuckDBWarehouse, Warehouse, quote_ident

# a batch: up to this many districts, and up to this many rows (each table's rows of the
# batch are held in memory at once: about 60 MB of Arrow at the largest); a district with
# more rows passes alone, streaming. Where rows reach their district through keys, each
# statement joins whole tables once per batch: small districts want large batches.
BATCH_DISTRICTS = 128
BATCH_ROWS = 300_000
# Processes that write and check a batch's files (jobs/snapshot/filework.py), when they go
# to a folder; 0: on this process's threads, as a bucket's always are. Two: measured at 1,000
# small districts against threads, a tenth off the districts phase; one gained less.
FILE_PROCESSES = 2
# A district's file of a table whose rows take up to this much memory is encoded in memory and
# written in one call; a larger one is streamed into its file.
WRITE_IN_MEMORY = 32 * 1024 * 1024

# (district, table, rows taken so far)
BatchProgress = Callable[[str, str, int], None]
# the runner's ledger events, written in the batch's transaction: (tx, detail of each district)
BeforeCommit = Callable[[Warehouse, dict[str, dict[str, Any]]], None]


def districts_sql(districts: list[str]) -> str:
    """The batch's district ids as a list of SQL string literals (both targets)."""
    if any("\x00" in d for d in districts):
        raise RetryAlone("a district id with a NUL character")
    return ", ".join("'" + d.replace("'", "''") + "'" for d in districts)


def batch_state(
    tx: Warehouse,
    districts: list[str],
    with_remaining: bool = False,
    school_year: int | None = None,
) -> dict[str, dict[str, list[int]]]:
    """district_state (`jobs.reset.onepass`) of every district of the batch, in one query."""
    districts_sql(districts)  # refuses a NUL
    scope = current_scope()
    parts = district_state_parts(
        tx.target, with_remaining, districts, grouped=True, school_year=school_year
    )
    tables = scope.retained + (scope.deleted if with_remaining else ())
    state = {d: {t: [0, 0] for t in tables} for d in districts}
    for district, table, rows, f in tx.query(" union all ".join(parts)):
        # a table checked whole (no district column) counts for every district
        for d in districts if district is None else [str(district)]:
            state[d][str(table)] = [int(rows), int(f)]
    return state


def owner_column(table: str) -> str:
    """The column of the batch's rows that holds each row's district (text): the table's
    own, or `eoy_district` added to its columns."""
    scoped = current_scope().tables[table]
    column = scoped.district_column
    if column is not None and scoped.kind(column) == "text":
        return column
    return OWNER


def table_rows(rows: pa.Table) -> pa.Table:
    """The rows without the owner column the statement added (what the files hold)."""
    return rows.drop_columns([OWNER]) if OWNER in rows.column_names else rows


def _rows(tx: Warehouse, table: str, districts: list[str], school_year: int) -> pa.Table:
    """The batch's rows of a table as they leave it, in their kinds' Arrow types (in the
    order the table holds them: `_runs` finds each district's by `owner_column`; a shared
    row once per owner)."""
    districts_sql(districts)  # refuses a NUL
    scope = current_scope()
    scoped = scope.tables[table]
    cols = columns_sql(table, tx.target)
    schema = arrow_schema(table, large_text=True)
    added = owner_column(table) == OWNER
    if added:
        schema = schema.append(pa.field(OWNER, pa.large_string()))
    if isinstance(tx, AdbcSession) and not shared(scope, scoped):
        # the rows come out of the statement that deletes them
        if scoped.district_column is not None:
            owner = (
                f", cast({quote_ident(scoped.district_column)} as text) as {OWNER}" if added else ""
            )
            statement = delete_sql(scope, scoped, districts, school_year, f"{cols}{owner}")
        else:
            owned = columns_sql(table, tx.target, of="d")
            statement = delete_owned_sql(scope, scoped, districts, owned)
        batches = list(tx.statement_rows(statement))
        return pa.Table.from_batches(list(_shaped_owned(batches, table, added)), schema=schema)
    if scoped.district_column is not None:
        owner = f", cast({quote_ident(scoped.district_column)} as text) as {OWNER}" if added else ""
        where = delete_sql(scope, scoped, districts, school_year).split(" where ", 1)[1]
        statement = f"select {cols}{owner} from {scoped.relation} where {where}"
    else:
        typed = ", ".join(f"o.{quote_ident(c)}" for c in scoped.column_names)
        inner = select_sql(scope, scoped, districts, typed)
        statement = f"select {cols}, {OWNER} from ({inner}) as o"
    if isinstance(tx, AdbcSession):
        batches = list(tx.statement_rows(statement))
        rows = pa.Table.from_batches(list(_shaped_owned(batches, table, added)), schema=schema)
    else:
        assert isinstance(tx, DuckDBWarehouse)
        reader = tx.con.sql(statement).to_arrow_reader(128_000)
        try:
            rows = pa.Table.from_batches(list(_shaped_owned(reader, table, added)), schema=schema)
        finally:
            reader.close()  # an open result would keep the connection from rolling back
    gone = tx.execute(delete_sql(scope, scoped, districts, school_year))
    if gone != rows.num_rows and not shared(scope, scoped):
        raise RetryAlone(
            f"{table}: the delete removed {gone} rows, the snapshot holds {rows.num_rows}"
        )
    return rows


def _shaped_owned(
    batches: Iterable[pa.RecordBatch], table: str, added: bool
) -> Iterator[pa.RecordBatch]:
    """Batches in their kinds' Arrow types, the owner column (when added) kept last."""
    if not added:
        yield from shaped(batches, table)
        return
    for batch in batches:
        if batch.num_rows == 0:
            continue
        owner = batch.column(batch.num_columns - 1).cast(pa.large_string())
        body = pa.RecordBatch.from_arrays(
            batch.columns[:-1], schema=pa.schema(list(batch.schema)[:-1])
        )
        for typed in shaped([body], table):
            yield pa.RecordBatch.from_arrays(
                [*typed.columns, owner], names=[*typed.schema.names, OWNER]
            )


def _runs(rows: pa.Table, table: str, districts: list[str]) -> dict[str, Runs]:
    """Where each district's rows are. A table loaded district by district gives each
    district in one run or a few (DuckDB's threads hand back row groups in any order):
    slices of them make its file without copying or sorting (a sort cost more than the
    statement)."""
    out: dict[str, Runs] = {d: [] for d in districts}
    if rows.num_rows == 0:
        return out
    encoded = pc.run_end_encode(rows.column(owner_column(table)).combine_chunks())
    start = 0
    for district, end in zip(encoded.values.to_pylist(), encoded.run_ends.to_pylist(), strict=True):
        if district not in out:
            raise RetryAlone(
                f"{table}: a row of another district came out of the batch's statement"
            )
        out[district].append((start, end - start))
        start = end
    return out


def _content_sums(rows: pa.Table, table: str, runs: list[Runs]) -> list[int]:
    """The content fingerprint of each district's runs of the rows (one vectorised pass)."""
    sums = np.zeros(1, dtype=np.uint64)
    if rows.num_rows:
        frame = pl.from_arrow(rows)
        assert isinstance(frame, pl.DataFrame)
        sums = np.concatenate([sums, np.cumsum(content_values(frame, table), dtype=np.uint64)])
    marks = sorted({i for where in runs for start, n in where for i in (start, start + n)})
    at = dict(zip(marks, sums[marks].tolist(), strict=True))
    return [sum(at[start + n] - at[start] for start, n in where) % CONTENT_MOD for where in runs]


def _taken(rows: pa.Table, table: str, runs: dict[str, Runs]) -> dict[str, Taken]:
    """What each district's file holds, as fingerprinted from the rows themselves."""
    contents = _content_sums(rows, table, list(runs.values()))
    keys: dict[str, int] = {}
    products: dict[str, dict[str, int]] = {}
    if rows.num_rows:
        by_product = "product" in current_scope().tables[table].column_names
        con = scratch_duckdb()
        try:
            con.register("_batch_rows", rows)
            found = con.execute(
                f"select {owner_column(table)}, {'product' if by_product else 'null'}, count(*), "
                f"coalesce(sum({key_row_sql(table, 'duckdb')}), 0) % {KEY_MOD} "
                "from _batch_rows group by all"
            ).fetchall()
        finally:
            con.close()
        for district, product, n, key in found:  # a district's keys over its products
            keys[district] = (keys.get(district, 0) + int(key)) % KEY_MOD
            if by_product:
                products.setdefault(district, {})[str(product)] = int(n)
    out = {}
    for (district, where), content in zip(runs.items(), contents, strict=True):
        fp = Fingerprint(table)
        fp.add(sum(n for _, n in where), content, keys.get(district, 0))
        out[district] = Taken(table, f"{table}.parquet", fp, products.get(district, {}))
    return out


def _write_and_check(pending: Pending, table: str, rows: pa.Table) -> tuple[str, str | None]:
    """Write a district's rows of a table to its file on this process's threads (a bucket's
    files), re-read the file as stored and compare it with the rows, value for value: (the
    file's sha256, the problem in one line or None)."""
    _write(pending, table, rows)
    stored, sha, problem = read_stored(
        pending, f"{table}.parquet", table, lambda parquet: parquet.read(use_threads=False)
    )
    return sha, problem or compared(stored, rows, table)


def _file_processes(pendings: dict[str, Pending]) -> list[FileProcess]:
    """The file processes for this batch's files when they go to folders (started now,
    ready by the first table's rows), else none: they go on this process's threads."""
    if FILE_PROCESSES and all(isinstance(p, FolderPending) for p in pendings.values()):
        return file_processes(FILE_PROCESSES)
    return []


def _submit_files(
    processes: list[FileProcess],
    pendings: dict[str, Pending],
    table: str,
    rows: pa.Table,
    runs: dict[str, Runs],
) -> list[Future[Written]]:
    """Each district's file of the table, written and checked: by the file processes (the
    districts shared out between them), or, with none, on this process's threads."""
    body = table_rows(rows)
    if not processes:
        return [
            file_pool().submit(
                lambda d, part: {d: _write_and_check(pendings[d], table, part)},
                d,
                part_of(body, where),
            )
            for d, where in runs.items()
        ]
    columns = current_scope().tables[table].column_names
    parts = [
        (
            d,
            str(cast(FolderPending, pendings[d]).folder / f"{table}.parquet"),
            where,
            parquet_options(sum(n for _, n in where)),
        )
        for d, where in runs.items()
    ]
    share = -(-len(parts) // len(processes))
    files: list[Future[Written]] = []
    try:
        for i, process in enumerate(processes):
            if mine := parts[i * share : (i + 1) * share]:
                files.append(process.submit(table, *_sent(body, mine), columns))
    except BaseException:
        wait(files)  # a process that could not be asked: none of the others left writing
        raise
    return files


def _sent(body: pa.Table, parts: list[tuple[Any, ...]]) -> tuple[pa.Table, list[tuple[Any, ...]]]:
    """The rows of these districts' parts only, and where each district's are in them."""
    pieces, rebased, at = [], [], 0
    for district, path, where, options in parts:
        mine = []
        for start, n in where:
            pieces.append(body.slice(start, n))
            mine.append((at, n))
            at += n
        rebased.append((district, path, mine, options))
    return (pa.concat_tables(pieces) if pieces else body.slice(0, 0)), rebased


def _check_table(
    rows: pa.Table,
    table: str,
    runs: dict[str, Runs],
    files: list[Future[Written]],
    store: SnapshotStore,
) -> dict[str, tuple[Taken, str]]:
    """A table of the batch, beside the next table's statement and its files: fingerprint
    the rows taken, and wait for their files to be written and checked. Each district's (what
    its file holds, the file's sha256)."""
    taken = _taken(rows, table, runs)
    wait(files)  # every file done before any failure is raised: none left writing
    shas: dict[str, str] = {}
    for done in files:
        with writing(store):
            written = done.result()
        for district, (sha, problem) in written.items():
            if problem is not None:
                raise VerifyError(
                    f"snapshot of {district!r} did not verify: {problem}; nothing was deleted"
                )
            shas[district] = sha
    fault_point(f"export:{table}")  # the table's rows taken and deleted, its files checked
    return {district: (taken[district], shas[district]) for district in runs}


def checker() -> ThreadPoolExecutor:
    """One thread that fingerprints a table's rows while the runner takes the next table."""
    return thread_pool("check", 1)


def _write(pending: Pending, table: str, rows: pa.Table) -> None:
    with writing(pending.store):
        if rows.nbytes <= WRITE_IN_MEMORY:  # most of a batch's files: a few hundred rows
            encoded = pa.BufferOutputStream()
            pq.write_table(rows, encoded, **parquet_options(rows.num_rows))
            pending.write_file(f"{table}.parquet", encoded.getvalue())
            return
        sink = pending.open_output(f"{table}.parquet")
        try:
            pq.write_table(rows, sink, **parquet_options(rows.num_rows))
        finally:
            sink.close()  # on an object store: the upload completes here


def take_batch(
    wh: Warehouse,
    settings: Settings,
    districts: list[str],
    school_year: int,
    *,
    before_commit: BeforeCommit,
    progress: BatchProgress | None = None,
) -> dict[str, dict[str, Any] | StepError]:
    """Snapshot and delete the main part of every district of the batch in one transaction
    that commits only once every snapshot verified (the commit sequence of
    `jobs.reset.commit`); the delete's detail of each district (as `take_snapshot` gives it).
    After the commit, a part that cannot be put in place is that district's StepError in
    place of its detail (a rerun puts it in place). Before it, a failure raises RetryAlone;
    a commit whose outcome could not be learnt, a StepError for all."""

    def work(tx: Warehouse, pendings: dict[str, Pending], phase: Phase) -> dict[str, Any]:
        return _batch_pass(tx, settings, pendings, districts, school_year, phase, progress)

    return run_pass(
        wh,
        settings,
        school_year,
        dict.fromkeys(districts, MAIN),
        work,
        before_commit=before_commit,
        batch=True,
    )


def _batch_pass(
    tx: Warehouse,
    settings: Settings,
    pendings: dict[str, Pending],
    districts: list[str],
    school_year: int,
    phase: Phase,
    progress: BatchProgress | None,
) -> dict[str, dict[str, Any]]:
    """The batch's work in its pass: each table's rows of every district in one statement,
    split into the districts' files, checked; the manifests written and synced; the
    retained rows checked unchanged. The delete's detail of each district."""
    created_at = datetime.now(UTC)
    scope = current_scope()
    processes = _file_processes(pendings)
    store = next(iter(pendings.values())).store
    before = batch_state(tx, districts)
    checks: dict[str, Future[dict[str, tuple[Taken, str]]]] = {}
    try:
        for table in scope.delete_order:
            if progress is not None:  # the table each district's line names
                for district in districts:
                    progress(district, table, 0)
            rows = _rows(tx, table, districts, school_year)
            runs = _runs(rows, table, districts)
            files = _submit_files(processes, pendings, table, rows, runs)
            checks[table] = checker().submit(_check_table, rows, table, runs, files, store)
            if progress is not None:
                for district, where in runs.items():
                    progress(district, table, sum(n for _, n in where))
        fault_point("after:export")
        phase.step = "verify"
        fault_point("before:verify")
        checked = {table: checks[table].result() for table in scope.deleted}
    finally:  # nothing of this batch still writing once it is over
        for check in checks.values():
            with suppress(Exception):
                check.result()
    details: dict[str, dict[str, Any]] = {}
    for district in districts:
        pending = pendings[district]
        mine = {t: checked[t][district][0] for t in scope.deleted}
        tables = {t: manifest_entry(mine[t], checked[t][district][1]) for t in scope.deleted}
        with writing(pending.store):
            _, manifest_sha = write_manifest(
                pending, settings, tx.target, district, school_year, created_at, tables
            )
            pending.sync()
        details[district] = pass_detail(MAIN, pending, manifest_sha, mine, created_at.isoformat())
    fault_point("after:verify")
    phase.step = "delete"
    fault_point("before:delete")
    after = batch_state(tx, districts, with_remaining=True, school_year=school_year)
    fault_point("after:delete")  # the rows are gone in this transaction, not committed
    fault_point("before:check_retention")
    for district in districts:
        changed = [t for t in scope.retained if after[district][t] != before[district][t]]
        if changed:
            raise RetryAlone(f"retained rows of {district!r} changed during the delete")
        details[district].update(
            retained_before=before[district],
            remaining={t: after[district][t][0] for t in scope.deleted},
            retained_unchanged=True,
            other_districts_unchanged=True,
        )
    fault_point("after:check_retention")
    return details
