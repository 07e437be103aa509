"""The delete of one snapshot part of a district, and the retention checks (SPEC §5-§7).

Only rows whose keys are in the verified snapshot go: the keys are loaded from the snapshot
files into temporary tables on the delete's own connection, and each table's delete joins
them. In the same transaction, before commit: the matched keys' count and key fingerprint
must equal the manifest's; each delete's row count must equal it too and be exactly what the
district lost (so no other district lost a row); the district's retained rows must be
unchanged and every retained table keep its row count. Otherwise the whole delete rolls back.
The delete's ledger event commits with it, so the ledger always says exactly which snapshot
parts the warehouse has lost.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from jobs.contract import DELETE_ORDER, DELETED_TABLES, RETAINED_TABLES, TABLES
from jobs.errors import EoyError
from jobs.faults import fault_point
from jobs.fingerprint import KEY_MOD, key_fingerprint_sql, sql_string
from jobs.ledger import record_event
from jobs.warehouse import PostgresWarehouse, Warehouse, quote_ident

# Columns the runner itself changes (pausing and resuming syncs): outside retention checks.
SYNC_STATE_COLUMNS = ("status", "paused_at", "resumed_at")
Progress = Callable[[str, int], None]  # (table, rows deleted)


class DeleteError(EoyError):
    """A delete was rolled back: what it would have deleted was not what was snapshotted."""


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


def retained_fingerprint(wh: Warehouse, district_id: str | None = None) -> dict[str, list[int]]:
    """[rows, fingerprint] per retained table, of one district or of every district."""
    out: dict[str, list[int]] = {}
    for table in RETAINED_TABLES:
        fields = ", ".join(
            f"coalesce(cast({quote_ident(c)} as text), '<null>')" for c in retained_columns(table)
        )
        row = _hash60(f"concat_ws('|', {fields})", wh.target)
        where, params = ("district_id = %s", [district_id]) if district_id else ("1 = 1", [])
        rows, total = wh.query(
            f"select count(*), mod(coalesce(sum({row}), 0), {KEY_MOD}) "
            f"from app.{quote_ident(table)} where {where}",
            params,
        )[0]
        out[table] = [int(rows), int(total)]
    return out


def retained_counts(wh: Warehouse) -> dict[str, int]:
    """Rows per retained table, every district (small tables: organizations and staff)."""
    return {
        t: int(wh.scalar(f"select count(*) from app.{quote_ident(t)}")) for t in RETAINED_TABLES
    }


def deleted_counts(wh: Warehouse, district_id: str | None = None) -> dict[str, int]:
    """Rows per student-data table, of one district or of every district."""
    where, params = ("district_id = %s", [district_id]) if district_id else ("1 = 1", [])
    return {
        t: int(wh.scalar(f"select count(*) from app.{quote_ident(t)} where {where}", params))
        for t in DELETED_TABLES
    }


def _key_table(table: str) -> str:
    return f"eoy_keys_{table}"


def load_keys(wh: Warehouse, table: str, parquet: Path) -> None:
    """The snapshot file's primary keys into a temporary table on this connection."""
    keys = TABLES[table].primary_key
    name = _key_table(table)
    cols = ", ".join(quote_ident(k) for k in keys)
    if wh.target == "duckdb":
        wh.execute(
            f"create or replace temp table {name} as "
            f"select {cols} from read_parquet({sql_string(str(parquet))})"
        )
        return
    wh.execute(f"drop table if exists pg_temp.{name}")
    wh.execute(
        f"create temp table {name} ({', '.join(f'{quote_ident(k)} text' for k in keys)}) "
        "on commit drop"
    )
    assert isinstance(wh, PostgresWarehouse)
    data = pq.read_table(parquet, columns=list(keys))
    columns = [data.column(k).to_pylist() for k in keys]
    with wh.con.cursor() as cur, cur.copy(f"copy {name} ({cols}) from stdin") as copy:
        for row in zip(*columns, strict=True):
            copy.write_row(row)
    wh.execute(f"analyze {name}")  # a temp table has no statistics: plan the join well


def _matched_where(table: str) -> str:
    keys = ", ".join(quote_ident(k) for k in TABLES[table].primary_key)
    return f"district_id = %s and ({keys}) in (select {keys} from {_key_table(table)})"


def delete_part(
    wh: Warehouse,
    district_id: str,
    school_year: int,
    part: str,
    folder: Path,
    manifest: dict[str, Any],
    manifest_sha256: str,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Delete the rows of one verified snapshot part in one transaction; the event's detail.

    Raises DeleteError (after the rollback) when anything does not match.
    """
    entries = manifest["tables"]
    deleted: dict[str, int] = {}
    products: dict[str, dict[str, int]] = {}
    with wh.transaction():
        if wh.target == "postgres":
            wh.execute("set transaction isolation level repeatable read")
        retained_before = retained_fingerprint(wh, district_id)
        retained_rows = retained_counts(wh)
        district_rows = deleted_counts(wh, district_id)
        for table in DELETE_ORDER:
            expected = int(entries[table]["rows"])
            if expected == 0:
                deleted[table] = 0
                continue
            load_keys(wh, table, folder / entries[table]["file"])
            rows, key_fp = wh.query(
                key_fingerprint_sql(wh.target, table, _matched_where(table)), [district_id]
            )[0]
            if int(rows) != expected or int(key_fp) != int(entries[table]["key_fingerprint"]):
                raise DeleteError(
                    f"{table}: {rows} of the snapshot's {expected} rows are in the warehouse "
                    "(or their keys differ); nothing was deleted, run again to take a new snapshot"
                )
            keys = TABLES[table].primary_key
            on = " and ".join(f"t.{quote_ident(k)} = k.{quote_ident(k)}" for k in keys)
            if "product" in TABLES[table].column_names:
                # per-product counts, for the audit's rows-deleted-by-product
                products[table] = {
                    str(p): int(c)
                    for p, c in wh.query(
                        f"select t.product, count(*) from app.{quote_ident(table)} t "
                        f"join {_key_table(table)} k on {on} where t.district_id = %s "
                        "group by t.product",
                        [district_id],
                    )
                }
            n = wh.execute(
                f"delete from app.{quote_ident(table)} t using {_key_table(table)} k "
                f"where {on} and t.district_id = %s",
                [district_id],
            )
            if n != expected:
                raise DeleteError(
                    f"{table}: the delete removed {n} rows, the snapshot holds {expected}; "
                    "rolled back, nothing was deleted"
                )
            deleted[table] = n
            if progress is not None:
                progress(table, n)
            fault_point(f"delete:{table}")
        # every row the deletes removed was the district's: no other district lost a row
        remaining = deleted_counts(wh, district_id)
        for table in DELETED_TABLES:
            if district_rows[table] - remaining[table] != deleted[table]:
                raise DeleteError(
                    f"{table}: {deleted[table]} rows went but the district lost "
                    f"{district_rows[table] - remaining[table]}; rolled back, nothing was deleted"
                )
        if retained_counts(wh) != retained_rows or (
            retained_fingerprint(wh, district_id) != retained_before
        ):
            raise DeleteError(
                "a retained table changed during the delete; rolled back, nothing was deleted"
            )
        detail = {
            "part": part,
            "path": str(folder),
            "manifest_sha256": manifest_sha256,
            "rows": deleted,
            "products": products,
            "rows_total": sum(deleted.values()),
            "remaining": remaining,
            "retained_before": retained_before,
            # checked above, in this transaction: it commits only if both hold
            "retained_unchanged": True,
            "other_districts_unchanged": True,
        }
        record_event(wh, district_id, school_year, "delete", "completed", detail)
        wh.execute(
            "update eoy_runner.reset_runs set rows_deleted = coalesce(rows_deleted, 0) + %s "
            "where district_id = %s and school_year = %s",
            [detail["rows_total"], district_id, school_year],
        )
        fault_point("commit:delete")
    return detail
