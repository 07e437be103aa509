"""Order-independent fingerprints of a set of rows, the same from every source.

content-xxh64-mix64-v2 (every column): each field becomes one unsigned 64-bit word:
    text       XXH64 of its UTF-8 bytes, seed 0
    int, date  the integer (days since 1970-01-01 for a date), two's complement
    timestamp  epoch microseconds, two's complement
    double     its IEEE-754 bits
    NULL       0, told apart from a real 0 by the null mask
and the row's value chains them through the SplitMix64 finaliser `mix`:
    acc = mix(SEED ^ null_mask); for each column in contract order: acc = mix(acc ^ word)
where null_mask has bit i set when column i is NULL. The fingerprint is the sum of the row
values modulo 2**64, with the row count beside it. It is computed by Polars (the XXH64 of
polars-hash) and numpy over Arrow data of the contract types, so DuckDB rows, PostgreSQL rows
(via Arrow) and the Parquet file give the same number, at a few hundred nanoseconds a row.
The chain keeps a row's fields together: moving a value from one row to another changes it.

key-md5-sum60-v1 (primary-key columns only, all text, never NULL): the row's key text is
md5(k) for one key column, md5(md5(k1) || md5(k2) …) for several; its value is the first 15
hex digits of that MD5 as an integer (60 bits); the fingerprint is the sum modulo 2**60. Plain
SQL on both targets gives the identical number, so the runner can check in SQL exactly which
keys it is about to delete (`key_fingerprint_sql`).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import polars_hash as plh
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.scope import current_scope
from jobs.warehouse.connection import quote_ident
from jobs.warehouse.contract import BIGINT, BOOL, DATE, FLOAT, INT, TEXT, TIMESTAMP

CONTENT_ALGORITHM = "content-xxh64-mix64-v2"
KEY_ALGORITHM = "key-md5-sum60-v1"
CONTENT_MOD = 2**64
KEY_MOD = 2**60

ARROW_TYPES = {
    TEXT: pa.string(),
    INT: pa.int32(),
    FLOAT: pa.float64(),
    DATE: pa.date32(),
    TIMESTAMP: pa.timestamp("us"),
    BIGINT: pa.int64(),
    BOOL: pa.bool_(),
}


_scratch: duckdb.DuckDBPyConnection | None = None
_keys_db: duckdb.DuckDBPyConnection | None = None
_scratch_lock = threading.Lock()


def scratch_duckdb() -> duckdb.DuckDBPyConnection:
    """A new connection to one process-wide in-memory DuckDB (a fresh database costs ~0.2 s)."""
    global _scratch
    with _scratch_lock:
        if _scratch is None:
            # row order means nothing to a snapshot; not keeping it saves memory when writing
            _scratch = duckdb.connect(config={"preserve_insertion_order": False})
        return _scratch.cursor()


def _keys_duckdb() -> duckdb.DuckDBPyConnection:
    """A connection to a second in-memory DuckDB of one thread, for key sums: the other
    core is writing the Parquet file in the scratch database meanwhile. A database of its
    own, because changing the thread count of a database with a query running in it waits
    for that query, and that query may be waiting for this key sum."""
    global _keys_db
    with _scratch_lock:
        if _keys_db is None:
            _keys_db = duckdb.connect(config={"threads": 1})
        return _keys_db.cursor()


def arrow_schema(table: str, large_text: bool = False) -> pa.Schema:
    """The Arrow schema of a scope's table (large_string text: what Polars hands back)."""
    types = dict(ARROW_TYPES, **{TEXT: pa.large_string()}) if large_text else ARROW_TYPES
    return pa.schema([(name, types[kind]) for name, kind in current_scope().tables[table].columns])


def key_text_sql(table: str) -> str:
    """SQL (both targets): md5 hex of the row's key (its text form)."""
    keyed = current_scope().tables[table]
    keys = [
        quote_ident(k) if keyed.kind(k) == TEXT else f"cast({quote_ident(k)} as text)"
        for k in keyed.key
    ]
    if len(keys) == 1:
        return f"md5({keys[0]})"
    return "md5(" + " || ".join(f"md5({k})" for k in keys) + ")"


def key_row_sql(table: str, target: str) -> str:
    text = f"substr({key_text_sql(table)}, 1, 15)"
    if target == "postgres":
        return f"('x' || {text})::bit(60)::bigint"
    return f"cast('0x' || {text} as bigint)"


def key_fingerprint_sql(target: str, table: str, where_sql: str) -> str:
    """A query of (rows, key_fingerprint) over the table's rows matching where_sql."""
    if table not in current_scope().tables:
        raise ValueError(f"unknown table {table!r}")
    # mod() rather than %: callers bind parameters in where_sql with %s placeholders
    total = f"mod(coalesce(sum({key_row_sql(table, target)}), 0), {KEY_MOD})"
    return (
        f"select count(*) as rows, cast({total} as bigint) as key_fingerprint "
        f"from {current_scope().tables[table].relation} where {where_sql}"
    )


SEED = 0x9E3779B97F4A7C15
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_NUMERIC = {INT: pl.Int64, DATE: pl.Int64, TIMESTAMP: pl.Int64, BIGINT: pl.Int64, BOOL: pl.Int64}


def _mix(x: np.ndarray) -> None:
    """SplitMix64's finaliser, in place (numpy's uint64 arithmetic wraps modulo 2**64)."""
    x ^= x >> _S30
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31


def _word(column: str, kind: str) -> pl.Expr:
    """The field's 64-bit word (as UInt64, Int64 or Float64 bits), NULL as 0."""
    if kind == TEXT:
        return plh.col(column).nchash.xxhash64().fill_null(0).alias(column)
    if kind == FLOAT:
        return pl.col(column).cast(pl.Float64).fill_null(0.0).alias(column)
    if kind == TIMESTAMP:
        expr = pl.col(column).cast(pl.Datetime("us")).to_physical()
    else:
        expr = pl.col(column).to_physical()
    return expr.cast(_NUMERIC[kind]).fill_null(0).alias(column)


def content_values(frame: pl.DataFrame, table: str) -> np.ndarray:
    """Each row's value of content-xxh64-mix64-v2, as a uint64 array."""
    columns = current_scope().tables[table].columns
    mask = pl.sum_horizontal(
        [pl.col(c).is_null().cast(pl.UInt64) * (1 << i) for i, (c, _) in enumerate(columns)]
    ).alias("_null_mask")
    words = frame.select([_word(c, kind) for c, kind in columns] + [mask])
    acc = words["_null_mask"].to_numpy().astype(np.uint64, copy=True)
    acc ^= np.uint64(SEED)
    _mix(acc)
    for column, _ in columns:
        acc ^= words[column].to_numpy().view(np.uint64)
        _mix(acc)
    return acc


def key_sum(batch: pa.RecordBatch | pa.Table, table: str) -> int:
    """The batch's sum of key-md5-sum60-v1 row values, modulo 2**60 (DuckDB's MD5 is the
    fastest here: about 0.25 µs a key on one thread)."""
    con = _keys_duckdb()
    try:
        con.register("_fp_keys", batch)
        total = con.execute(
            f"select coalesce(sum({key_row_sql(table, 'duckdb')}), 0) % {KEY_MOD} from _fp_keys"
        ).fetchall()[0][0]
    finally:
        con.close()
    return int(total)


def _wrapping_sum(values: np.ndarray) -> int:
    return int(values.sum(dtype=np.uint64)) if len(values) else 0


def content_sum(batch: pa.RecordBatch | pa.Table, table: str) -> int:
    """The batch's sum of content-xxh64-mix64-v2 row values, modulo 2**64."""
    if batch.num_rows == 0:
        return 0
    frame = pl.from_arrow(batch)
    assert isinstance(frame, pl.DataFrame)
    return _wrapping_sum(content_values(frame, table))


@dataclass
class Fingerprint:
    """Running totals of one table's rows; feed it Arrow batches in any order."""

    table: str
    rows: int = 0
    content: int = 0
    key: int = 0

    def update(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows == 0:
            return
        self.add(batch.num_rows, content_sum(batch, self.table), key_sum(batch, self.table))

    def add(self, rows: int, content: int, key: int) -> None:
        self.rows += rows
        self.content = (self.content + content) % CONTENT_MOD
        self.key = (self.key + key) % KEY_MOD

    def as_dict(self) -> dict[str, int]:
        return {"rows": self.rows, "fingerprint": self.content, "key_fingerprint": self.key}


def fingerprint_batches(table: str, batches: Iterable[pa.RecordBatch]) -> Fingerprint:
    fp = Fingerprint(table)
    for batch in batches:
        fp.update(batch)
    return fp


def parquet_batches(path: Path, batch_rows: int = 256_000) -> Iterator[pa.RecordBatch]:
    """A Parquet file's rows in batches, decoded by Arrow (which releases the GIL)."""
    yield from pq.ParquetFile(path).iter_batches(batch_size=batch_rows)


def fingerprint_parquet(table: str, path: Path) -> Fingerprint:
    """Fingerprint a snapshot file, batch by batch (memory stays flat)."""
    return fingerprint_batches(table, parquet_batches(path))


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
