"""Order-independent fingerprints of a set of rows (SPEC §7), the same from every source.

content-md5-sum64-v1 (every column): each row becomes one canonical text, the fields joined
by U+0000 (which PostgreSQL text cannot hold):
    null mask, then each column in contract order
where the null mask is the decimal sum of 2**i over the columns i that are NULL (so NULL and
'' differ), and a field is: text as is; integer and date as DuckDB casts them to varchar
(`42`, `2024-06-30`); double as DuckDB's shortest round-trip varchar; timestamp as its epoch
microseconds in decimal; NULL as ''. The row's value is the first 8 bytes of the MD5 digest of
the UTF-8 text read as a little-endian unsigned 64-bit integer (DuckDB `md5_number(t) & (2**64-1)`).
The fingerprint is the sum of the row values modulo 2**64, with the row count beside it.
It is always computed by DuckDB over Arrow data of the contract types, so DuckDB rows,
PostgreSQL rows (via Arrow) and the Parquet file give the same number.

key-md5-sum60-v1 (primary-key columns only, all text, never NULL): the row's key text is
md5(k) for one key column, md5(md5(k1) || md5(k2) …) for several; its value is the first 15
hex digits of that MD5 as an integer (60 bits); the fingerprint is the sum modulo 2**60. Plain
SQL on both targets gives the identical number, so the runner can check in SQL exactly which
keys it is about to delete (`key_fingerprint_sql`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from jobs.contract import DATE, FLOAT, INT, TABLES, TEXT, TIMESTAMP
from jobs.warehouse import quote_ident

CONTENT_ALGORITHM = "content-md5-sum64-v1"
KEY_ALGORITHM = "key-md5-sum60-v1"
CONTENT_MOD = 2**64
KEY_MOD = 2**60

ARROW_TYPES = {
    TEXT: pa.string(),
    INT: pa.int32(),
    FLOAT: pa.float64(),
    DATE: pa.date32(),
    TIMESTAMP: pa.timestamp("us"),
}


_scratch: duckdb.DuckDBPyConnection | None = None
_scratch_lock = threading.Lock()


def scratch_duckdb() -> duckdb.DuckDBPyConnection:
    """A new connection to one process-wide in-memory DuckDB (a fresh database costs ~0.2 s)."""
    global _scratch
    with _scratch_lock:
        if _scratch is None:
            # row order means nothing to a snapshot; not keeping it saves memory when writing
            _scratch = duckdb.connect(config={"preserve_insertion_order": False})
        return _scratch.cursor()


def arrow_schema(table: str, large_text: bool = False) -> pa.Schema:
    """The Arrow schema of a contract table (large_string text: what Polars hands back)."""
    types = dict(ARROW_TYPES, **{TEXT: pa.large_string()}) if large_text else ARROW_TYPES
    return pa.schema([(name, types[kind]) for name, kind in TABLES[table].columns])


def _field_sql(column: str, kind: str) -> str:
    q = quote_ident(column)
    if kind == TEXT:
        return f"coalesce({q}, '')"
    if kind == TIMESTAMP:
        return f"coalesce(cast(epoch_us({q}) as varchar), '')"
    return f"coalesce(cast({q} as varchar), '')"


def content_row_sql(table: str) -> str:
    """DuckDB expression: the row's 64-bit value of content-md5-sum64-v1."""
    columns = TABLES[table].columns
    mask = " + ".join(
        f"(case when {quote_ident(c)} is null then {1 << i} else 0 end)"
        for i, (c, _) in enumerate(columns)
    )
    fields = ", ".join(_field_sql(c, kind) for c, kind in columns)
    canonical = f"concat_ws(chr(0), cast(({mask}) as varchar), {fields})"
    return f"cast(md5_number({canonical}) & {CONTENT_MOD - 1} as ubigint)"


def key_text_sql(table: str) -> str:
    """SQL (both targets): md5 hex of the row's primary key."""
    keys = [quote_ident(k) for k in TABLES[table].primary_key]
    if len(keys) == 1:
        return f"md5({keys[0]})"
    return "md5(" + " || ".join(f"md5({k})" for k in keys) + ")"


def key_row_sql(table: str, target: str) -> str:
    text = f"substr({key_text_sql(table)}, 1, 15)"
    if target == "postgres":
        return f"('x' || {text})::bit(60)::bigint"
    return f"cast('0x' || {text} as bigint)"


def key_fingerprint_sql(target: str, table: str, where_sql: str) -> str:
    """A query of (rows, key_fingerprint) over app.<table> rows matching where_sql."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    # mod() rather than %: callers bind parameters in where_sql with %s placeholders
    total = f"mod(coalesce(sum({key_row_sql(table, target)}), 0), {KEY_MOD})"
    return (
        f"select count(*) as rows, cast({total} as bigint) as key_fingerprint "
        f"from app.{quote_ident(table)} where {where_sql}"
    )


def _summary_sql(table: str, source: str) -> str:
    return (
        f"select count(*), coalesce(sum({content_row_sql(table)}), 0) % {CONTENT_MOD}, "
        f"coalesce(sum({key_row_sql(table, 'duckdb')}), 0) % {KEY_MOD} from {source}"
    )


@dataclass
class Fingerprint:
    """Running totals of one table's rows; feed it Arrow batches in any order."""

    table: str
    rows: int = 0
    content: int = 0
    key: int = 0

    def __post_init__(self) -> None:
        self._con: Any = None

    def update(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._con is None:
            self._con = scratch_duckdb()
        self._con.register("_fp_batch", batch)
        try:
            rows, content, key = self._con.execute(
                _summary_sql(self.table, "_fp_batch")
            ).fetchall()[0]
        finally:
            self._con.unregister("_fp_batch")
        self.add(int(rows), int(content), int(key))

    def add(self, rows: int, content: int, key: int) -> None:
        self.rows += rows
        self.content = (self.content + content) % CONTENT_MOD
        self.key = (self.key + key) % KEY_MOD

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "fingerprint": self.content, "key_fingerprint": self.key}


def fingerprint_batches(table: str, batches: Iterable[pa.RecordBatch]) -> Fingerprint:
    fp = Fingerprint(table)
    try:
        for batch in batches:
            fp.update(batch)
    finally:
        fp.close()
    return fp


def fingerprint_parquet(
    table: str, path: Path, con: duckdb.DuckDBPyConnection | None = None
) -> Fingerprint:
    """Fingerprint a snapshot file in one parallel DuckDB scan."""
    own = con is None
    con = con or scratch_duckdb()
    try:
        source = f"read_parquet({sql_string(str(path))})"
        rows, content, key = con.execute(_summary_sql(table, source)).fetchall()[0]
    finally:
        if own:
            con.close()
    fp = Fingerprint(table)
    fp.add(int(rows), int(content), int(key))
    return fp


def sql_string(value: str) -> str:
    """A SQL string literal (standard quoting; used for file paths DuckDB cannot bind)."""
    return "'" + value.replace("'", "''") + "'"


def key_fingerprint_python(table: str, keys: Sequence[Sequence[str]]) -> tuple[int, int]:
    """The key fingerprint in plain Python, for tests and cross-checks."""
    total = 0
    for key in keys:
        if len(key) == 1:
            digest = hashlib.md5(key[0].encode()).hexdigest()
        else:
            joined = "".join(hashlib.md5(k.encode()).hexdigest() for k in key)
            digest = hashlib.md5(joined.encode()).hexdigest()
        total += int(digest[:15], 16)
    return len(keys), total % KEY_MOD
