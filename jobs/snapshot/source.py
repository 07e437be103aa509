"""A district's rows as they leave the warehouse: the casting SELECT, batches in the contract's
Arrow types, and every student table read at one point in time (`consistent_view`: one
transaction, REPEATABLE READ on PostgreSQL, Arrow batches from DuckDB or ADBC's binary COPY)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import polars as pl
import pyarrow as pa

from jobs.scope import current_scope
from jobs.snapshot.fingerprint import (
    arrow_schema,
)
from jobs.snapshot.layout import (
    SnapshotError,
)
from jobs.warehouse.connection import ARROW_BATCH_ROWS, DuckDBWarehouse, Warehouse, quote_ident
from jobs.warehouse.contract import (
    BIGINT,
    BOOL,
    DATE,
    FLOAT,
    INT,
    SQL_TYPES,
    TEXT,
    TIMESTAMP,
)


class ExportError(SnapshotError):
    """An export could not be made; the message says why and what to do."""


# ---------------------------------------------------------------------------------------
# the rows, as they leave the warehouse
# ---------------------------------------------------------------------------------------
def columns_sql(table: str, target: str, of: str = "") -> str:
    """The table's columns in its order, cast to their logical kinds' types (columns of the
    alias `of` when given)."""
    types = SQL_TYPES[target]
    prefix = f"{of}." if of else ""
    return ", ".join(
        f"cast({prefix}{quote_ident(c)} as {types[kind]}) as {quote_ident(c)}"
        for c, kind in current_scope().tables[table].columns
    )


def pg_literal(value: str) -> str:
    """A PostgreSQL string literal (the session has standard_conforming_strings on)."""
    if "\x00" in value:
        raise SnapshotError("a district id with a NUL character cannot exist in PostgreSQL")
    return "'" + value.replace("'", "''") + "'"


POLARS_TYPES: dict[str, Any] = {
    TEXT: pl.String,
    INT: pl.Int32,
    FLOAT: pl.Float64,
    DATE: pl.Date,
    TIMESTAMP: pl.Datetime("us"),
    BIGINT: pl.Int64,
    BOOL: pl.Boolean,
}


def shaped(reader: Iterable[pa.RecordBatch], table: str) -> Iterator[pa.RecordBatch]:
    """Batches in the contract's Arrow types; empty ones dropped.

    A batch already of the contract types (what the casting SELECT usually gives) only has
    its text widened to large strings, which Arrow does without copying the text; others are
    cast by Polars."""
    schema = arrow_schema(table, large_text=True)
    plain = arrow_schema(table)
    columns = current_scope().tables[table].columns
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


# ---------------------------------------------------------------------------------------
# reading one consistent view
# ---------------------------------------------------------------------------------------
def select_sql(table: str, target: str, placeholder: str = "%s") -> str:
    """The district's rows of a table: its columns, cast to their kinds' types (a table
    whose district is not its own column: its owned rows, the district a literal)."""
    scoped = current_scope().tables[table]
    cols = columns_sql(table, target)
    if scoped.district_column is not None:
        where = f"{quote_ident(scoped.district_column)} = {placeholder}"
        return f"select {cols} from {scoped.relation} where {where}"
    return owned_rows_sql(table, target, placeholder)


def owned_rows_sql(table: str, target: str, placeholder: str) -> str:
    """One district's owned rows of a table reached through keys (`placeholder`: its id)."""
    from jobs.scope.sql import OWNER, owned_sql

    scope = current_scope()
    types = SQL_TYPES[target]
    cols = ", ".join(
        f"cast(o.{quote_ident(c)} as {types[kind]}) as {quote_ident(c)}"
        for c, kind in scope.tables[table].columns
    )
    owned = owned_sql(scope, scope.tables[table])
    return f"select {cols} from ({owned}) as o where o.{OWNER} = cast({placeholder} as text)"


class Source:
    """Record batches of each table of one district, all from one point in time."""

    def __init__(self, wh: Warehouse, district_id: str, adbc_con: Any = None):
        self.wh = wh
        self.district_id = district_id
        self.adbc_con = adbc_con

    def batches(self, table: str) -> Iterator[pa.RecordBatch]:
        if self.adbc_con is None:
            assert isinstance(self.wh, DuckDBWarehouse)
            rel = self.wh.con.sql(select_sql(table, "duckdb", "$1"), params=[self.district_id])
            yield from rel.to_arrow_reader(ARROW_BATCH_ROWS)
            return
        # A bound parameter makes ADBC fetch the whole result as one batch; a literal lets it
        # stream through COPY. The cursor owns the stream: it lives until the last batch.
        sql = select_sql(table, "postgres", pg_literal(self.district_id))
        with self.adbc_con.cursor() as cur:
            cur.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(16 * 1024 * 1024)}
            )
            cur.execute(sql)
            yield from cur.fetch_record_batch()


@contextmanager
def consistent_view(wh: Warehouse, district_id: str) -> Iterator[Source]:
    """One transaction for every table: REPEATABLE READ on PostgreSQL, a DuckDB transaction."""
    if wh.target == "duckdb":
        with wh.transaction():
            yield Source(wh, district_id)
        return
    import adbc_driver_postgresql.dbapi as adbc

    con = adbc.connect(wh.settings.pg_dsn or "")
    try:
        cur = con.cursor()
        cur.execute("set transaction isolation level repeatable read, read only")
        cur.execute("set local standard_conforming_strings = on")
        cur.execute("select current_setting('transaction_isolation')")
        level = cur.fetchall()[0][0]
        cur.close()
        if level != "repeatable read":
            raise ExportError(f"PostgreSQL gave isolation {level!r}, not repeatable read")
        yield Source(wh, district_id, con)
    finally:
        try:
            con.rollback()
        finally:
            con.close()
