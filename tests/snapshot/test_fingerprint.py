"""The content fingerprint is exactly what jobs/fingerprint.py documents: a plain-Python
reading of the definition (XXH64 included) gives the same number as the fast code."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime
from typing import Any

import polars as pl
import polars_hash as plh
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.snapshot.fingerprint import CONTENT_MOD, SEED, arrow_schema, fingerprint_batches
from jobs.warehouse.contract import DATE, DELETED_TABLES, FLOAT, INT, TABLES, TEXT, TIMESTAMP

M64 = 2**64 - 1
P1, P2, P3 = 11400714785074694791, 14029467366897019727, 1609587929392839161
P4, P5 = 9650029242287828579, 2870177450012600261


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & M64


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * P2) & M64, 31) * P1) & M64


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 as its specification describes it, one step at a time."""
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M64, (seed + P2) & M64, seed, (seed - P1) & M64]
        while i + 32 <= n:
            for j in range(4):
                v[j] = _round(v[j], struct.unpack_from("<Q", data, i + 8 * j)[0])
            i += 32
        h = (_rotl(v[0], 1) + _rotl(v[1], 7) + _rotl(v[2], 12) + _rotl(v[3], 18)) & M64
        for lane in v:
            h = (((h ^ _round(0, lane)) * P1) + P4) & M64
    else:
        h = (seed + P5) & M64
    h = (h + n) & M64
    while i + 8 <= n:
        h ^= _round(0, struct.unpack_from("<Q", data, i)[0])
        h = (_rotl(h, 27) * P1 + P4) & M64
        i += 8
    if i + 4 <= n:
        h ^= (struct.unpack_from("<I", data, i)[0] * P1) & M64
        h = (_rotl(h, 23) * P2 + P3) & M64
        i += 4
    while i < n:
        h ^= (data[i] * P5) & M64
        h = (_rotl(h, 11) * P1) & M64
        i += 1
    h ^= h >> 33
    h = (h * P2) & M64
    h ^= h >> 29
    h = (h * P3) & M64
    return h ^ (h >> 32)


def mix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def word(kind: str, value: Any) -> int:
    if value is None:
        return 0
    if kind == TEXT:
        return xxh64(value.encode())
    if kind == FLOAT:
        return struct.unpack("<Q", struct.pack("<d", value))[0]
    if kind == DATE:
        return (value - date(1970, 1, 1)).days & M64
    if kind == TIMESTAMP:
        delta = value - datetime(1970, 1, 1)
        return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) & M64
    assert kind == INT
    return value & M64


def reference(table: str, rows: list[tuple[Any, ...]]) -> int:
    columns = TABLES[table].columns
    total = 0
    for row in rows:
        null_mask = sum(1 << i for i, value in enumerate(row) if value is None)
        acc = mix(SEED ^ null_mask)
        for (_, kind), value in zip(columns, row, strict=True):
            acc = mix(acc ^ word(kind, value))
        total += acc
    return total % CONTENT_MOD


def test_xxh64_matches_the_published_vectors() -> None:
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    hashed = pl.DataFrame({"s": ["", "abc"]}).select(plh.col("s").nchash.xxhash64())["s"]
    assert hashed.to_list() == [0xEF46DB3751D8E999, 0x44BC2CF5AD770999]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=80), max_size=20))
def test_polars_xxh64_is_xxh64(texts: list[str]) -> None:
    hashed = pl.DataFrame({"s": texts}, schema={"s": pl.String}).select(
        plh.col("s").nchash.xxhash64()
    )["s"]
    assert hashed.to_list() == [xxh64(t.encode()) for t in texts]


def _value(kind: str) -> st.SearchStrategy[Any]:
    inner: st.SearchStrategy[Any]
    if kind == TEXT:
        inner = st.text(max_size=40)
    elif kind == INT:
        inner = st.integers(-(2**31), 2**31 - 1)
    elif kind == FLOAT:
        inner = st.floats(allow_nan=False)
    elif kind == DATE:
        inner = st.dates()
    else:
        inner = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))
    return st.none() | inner


@st.composite
def table_rows(draw: st.DrawFn) -> tuple[str, list[tuple[Any, ...]]]:
    table = draw(st.sampled_from(DELETED_TABLES))
    row = st.tuples(*(_value(kind) for _, kind in TABLES[table].columns))
    return table, draw(st.lists(row, max_size=12))


@settings(max_examples=80, deadline=None)
@given(table_rows(), st.integers(1, 5))
def test_the_fast_fingerprint_is_the_documented_one(
    case: tuple[str, list[tuple[Any, ...]]], chunk: int
) -> None:
    table, rows = case
    schema = arrow_schema(table)
    data = pa.Table.from_pylist([dict(zip(schema.names, r, strict=True)) for r in rows], schema)
    fp = fingerprint_batches(table, data.to_batches(max_chunksize=chunk))
    assert (fp.rows, fp.content) == (len(rows), reference(table, rows))


def test_a_timestamp_with_a_zone_is_taken_as_its_utc_instant() -> None:
    table = "usage_sessions"
    kinds = dict(TABLES[table].columns)
    column = next(c for c, kind in kinds.items() if kind == TIMESTAMP)
    naive = datetime(2024, 5, 6, 7, 8, 9, 123456)
    aware = naive.replace(tzinfo=UTC)
    schema = arrow_schema(table)
    row = {c: (None if c != column else naive) for c in schema.names}
    plain = pa.Table.from_pylist([row], schema)
    zoned = plain.set_column(
        schema.get_field_index(column),
        column,
        pa.array([aware], pa.timestamp("us", tz="UTC")),
    )
    assert fingerprint_batches(table, zoned.to_batches()).content == (
        fingerprint_batches(table, plain.to_batches()).content
    )
