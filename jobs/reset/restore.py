"""`eoy-reset restore`: put a district's deleted rows back, exactly, from its verified snapshot.

The parts the ledger says were deleted are verified first; then, in one transaction, parents
first, every row goes back unless any of them already exists (then nothing changes); the
run becomes `restored`, which holds the district from automatic resets for that school year
until its reset date changes or an operator names it with `run --district`.

A row several districts own (a shared row) stays in the warehouse when one owner is reset
while another is not: the delete kept it for that owner. Restoring the first owner leaves
such a row as it is, with the values its other owner may have given it since, and puts back
every other row; only those rows are left out of the check that the warehouse gained exactly
the snapshot's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.scope import current_scope
from jobs.scope.sql import kept_for_others_sql, shared
from jobs.snapshot.fingerprint import (
    CONTENT_MOD,
    Fingerprint,
    fingerprint_batches,
    key_fingerprint_sql,
    parquet_batches,
    sql_string,
)
from jobs.snapshot.layout import SnapshotError, sha256_file
from jobs.snapshot.verify import verified_parts
from jobs.snapshot.writer import settle_parts
from jobs.warehouse.connection import PostgresWarehouse, Warehouse, connect, quote_ident
from jobs.warehouse.ledger import (
    cycle_deletes,
    get_run,
    record_event,
    take_up_again,
    update_run,
    utcnow,
)
from jobs.warehouse.locks import release_district_lock, wait_district_lock
from jobs.warehouse.rostering import rostered

COPY_BATCH = 50_000

# a row's key in its text form; what a shared row is known by across drivers and Arrow
Keys = set[tuple[str, ...]]


class RestoreError(EoyError):
    """The district could not be restored; nothing was changed unless the message says so."""


def _keys_in(table: str, alias: str = "") -> str:
    """The row's key is among the keys `load_keys` read (columns of `alias` when given)."""
    names = [quote_ident(k) for k in current_scope().tables[table].primary_key]
    of = ", ".join(f"{alias}.{k}" if alias else k for k in names)
    return f"({of}) in (select {', '.join(names)} from eoy_keys_{table.replace('.', '__')})"


def _key_texts(rows: Iterable[Sequence[Any]]) -> Keys:
    return {tuple(str(v) for v in row) for row in rows}


def _leaving_out(
    batches: Iterable[pa.RecordBatch], table: str, keys: Keys | None, keep: bool = False
) -> Iterator[pa.RecordBatch]:
    """The batches without the rows whose key is in `keys` (with `keep`: only those)."""
    names = current_scope().tables[table].primary_key
    for batch in batches:
        if not keys:
            if not keep:
                yield batch
            continue
        columns = [batch.column(batch.schema.get_field_index(n)).to_pylist() for n in names]
        mask = [(tuple(str(v) for v in row) in keys) == keep for row in zip(*columns, strict=True)]
        yield batch.filter(pa.array(mask, pa.bool_()))


def _insert(wh: Warehouse, table: str, path: Path, present: Keys) -> int:
    """The file's rows inserted, but for those whose key is `present` (kept for another
    owner): how many."""
    scoped = current_scope().tables[table]
    cols = ", ".join(quote_ident(c) for c in scoped.column_names)
    if wh.target == "duckdb":
        absent = ""
        if present:
            on = " and ".join(f"k.{quote_ident(c)} = s.{quote_ident(c)}" for c in scoped.key)
            absent = f" where not exists (select 1 from {scoped.relation} as k where {on})"
        return wh.execute(
            f"insert into {scoped.relation} ({cols}) "
            f"select {cols} from read_parquet({sql_string(str(path))}) as s{absent}"
        )
    assert isinstance(wh, PostgresWarehouse)
    rows = 0
    with wh.con.cursor() as cur, cur.copy(f"copy {scoped.relation} ({cols}) from stdin") as copy:
        for batch in _leaving_out(
            pq.ParquetFile(path).iter_batches(COPY_BATCH, columns=scoped.column_names),
            table,
            present,
        ):
            data = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            for row in zip(*data, strict=True):
                copy.write_row(row)
            rows += batch.num_rows
    return rows


def load_keys(wh: Warehouse, table: str, parquet: Path) -> None:
    """The snapshot file's primary keys into a temporary table on this connection."""
    scoped = current_scope().tables[table]
    keys = scoped.primary_key
    name = f"eoy_keys_{table.replace('.', '__')}"

    def typed(column: str) -> str:
        return scoped.column_type(column)

    cols = ", ".join(quote_ident(k) for k in keys)
    if wh.target == "duckdb":
        wh.execute(
            f"create or replace temp table {name} as "
            f"select {cols} from read_parquet({sql_string(str(parquet))})"
        )
        return
    wh.execute(f"drop table if exists pg_temp.{name}")
    wh.execute(
        f"create temp table {name} ({', '.join(f'{quote_ident(k)} {typed(k)}' for k in keys)}) "
        "on commit drop"
    )
    assert isinstance(wh, PostgresWarehouse)
    data = pq.read_table(parquet, columns=list(keys))
    columns = [data.column(k).to_pylist() for k in keys]
    with wh.con.cursor() as cur, cur.copy(f"copy {name} ({cols}) from stdin") as copy:
        for row in zip(*columns, strict=True):
            copy.write_row(row)
    wh.execute(f"analyze {name}")  # a temp table has no statistics: plan the join well


def source_fingerprints(
    wh: Warehouse, district_id: str, leave_out: dict[str, Keys] | None = None
) -> dict[str, Fingerprint]:
    """Rows and content fingerprint of the district's live rows, per student-data table
    (without the rows whose key `leave_out` names for the table)."""
    from jobs.snapshot.source import consistent_view, shaped

    out: dict[str, Fingerprint] = {}
    with consistent_view(wh, district_id) as view:
        for table in current_scope().deleted:
            rows = shaped(view.batches(table), table)
            out[table] = fingerprint_batches(
                table, _leaving_out(rows, table, (leave_out or {}).get(table))
            )
    return out


def sum_parts(manifests: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """(rows, content fingerprint) per table over several parts (fingerprints add up)."""
    out: dict[str, tuple[int, int]] = {}
    for table in current_scope().deleted:
        rows = sum(int(m["tables"][table]["rows"]) for m in manifests)
        content = sum(int(m["tables"][table]["fingerprint"]) for m in manifests) % CONTENT_MOD
        out[table] = (rows, content)
    return out


def latest_reset_year(settings: Settings, district_id: str) -> int:
    """The school year of the district's latest reset in the ledger: what `restore` puts
    back when no school year is given."""
    with connect(settings) as wh:
        year = wh.scalar(
            "select max(school_year) from eoy_runner.reset_runs where district_id = %s",
            [district_id],
        )
    if year is None:
        raise RestoreError(
            f"district {district_id!r} has no reset in the ledger: nothing to restore "
            "(`eoy-reset status --school-year Y` lists a school year's resets)"
        )
    return int(year)


def restore(settings: Settings, district_id: str, school_year: int) -> dict[str, Any]:
    # parts in a bucket are read into private temporary folders, removed at the end
    with connect(settings) as wh, ExitStack() as reading:
        wait_district_lock(wh, district_id, school_year)
        try:
            run, deletes = _restorable(wh, district_id, school_year)
            try:
                settle_parts(deletes, settings)
                parts = reading.enter_context(verified_parts(settings, deletes))
            except SnapshotError as exc:
                raise RestoreError(f"{exc}: nothing was restored") from None
            names = [d.get("part") for d in deletes]
            record_event(wh, district_id, school_year, "restore", "started", {"parts": names})
            kept = kept_for_other_owners(wh, district_id, parts)
            before = source_fingerprints(wh, district_id, _by_table(kept))
            restored: dict[str, int] = {t: 0 for t in current_scope().deleted}
            with wh.transaction():
                for table in current_scope().insert_order:
                    for i, ((folder, manifest), done) in enumerate(
                        zip(parts, deletes, strict=True)
                    ):
                        name = str(done["path"]).rstrip("/").rsplit("/", 1)[-1]
                        entry = manifest["tables"][table]
                        if int(entry["rows"]):
                            present = kept.get((table, i), set())
                            restored[table] += _put_back(wh, table, folder, entry, name, present)
                total = sum(restored.values())
                update_run(
                    wh,
                    district_id,
                    school_year,
                    status="restored",
                    finished_at=utcnow(),
                    error=None,
                )
                left = _kept_counts(kept)
                done_detail = {"rows": restored, "rows_total": total, "parts": names}
                if left:
                    done_detail["kept_for_other_owners"] = left
                record_event(wh, district_id, school_year, "restore", "completed", done_detail)
            _check_exact(wh, district_id, before, parts, kept)
            rostering = rostered(
                wh, [district_id], school_year + 1, current_scope().role_relation("rostering")
            )
        finally:
            release_district_lock(wh, district_id, school_year)
    return {
        "district_id": district_id,
        "school_year": school_year,
        "rows_restored": total,
        "rows": restored,
        "rows_kept_for_other_owners": left,
        "snapshots": [str(d["path"]) for d in deletes],
        "warning": _beside_next_year(district_id, school_year, rostering.get(district_id)),
        "advice": take_up_again(district_id, school_year, run["effective_reset_date"]),
    }


Parts = list[tuple[Path, dict[str, Any]]]


def kept_for_other_owners(
    wh: Warehouse, district_id: str, parts: Parts
) -> dict[tuple[str, int], Keys]:
    """Per table and part: the keys of the part's rows still in the warehouse because
    another district owns them too (the delete kept them for it). Only a shared table has
    any; a row still there that no other district owns is not among them."""
    scope = current_scope()
    out: dict[tuple[str, int], Keys] = {}
    tables = [t for t in scope.insert_order if shared(scope, scope.tables[t])]
    if not tables:
        return out
    with wh.transaction():
        for table in tables:
            scoped = scope.tables[table]
            keys = ", ".join(f"k.{quote_ident(c)}" for c in scoped.primary_key)
            others = kept_for_others_sql(scope, scoped, [district_id], None, alias="k")
            for i, (folder, manifest) in enumerate(parts):
                entry = manifest["tables"][table]
                if not int(entry["rows"]):
                    continue
                load_keys(wh, table, folder / entry["file"])
                rows = wh.query(
                    f"select {keys} from {scoped.relation} as k "
                    f"where {_keys_in(table, 'k')} and {others}"
                )
                if rows:
                    out[(table, i)] = _key_texts(rows)
    return out


def _by_table(kept: dict[tuple[str, int], Keys]) -> dict[str, Keys]:
    out: dict[str, Keys] = {}
    for (table, _), keys in kept.items():
        out.setdefault(table, set()).update(keys)
    return out


def _kept_counts(kept: dict[tuple[str, int], Keys]) -> dict[str, int]:
    return {table: len(keys) for table, keys in _by_table(kept).items()}


def _restorable(
    wh: Warehouse, district_id: str, school_year: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The district's run and the committed deletes of its cycle, or why there is nothing
    to restore."""
    run = get_run(wh, district_id, school_year)
    if run is None:
        raise RestoreError(
            f"district {district_id!r} has no reset for school year {school_year} "
            "in the ledger: nothing to restore"
        )
    if run["status"] == "restored":
        raise RestoreError(
            f"district {district_id!r} was restored for school year {school_year} "
            "already: nothing to do"
        )
    deletes = cycle_deletes(wh, district_id, school_year)
    if not deletes:
        raise RestoreError(
            f"nothing of district {district_id!r} was deleted for school year "
            f"{school_year}: nothing to restore"
        )
    return run, deletes


def _put_back(
    wh: Warehouse, table: str, folder: Path, entry: dict[str, Any], name: str, kept: Keys
) -> int:
    """A part's rows of a table inserted, but for those `kept` for another owner (still
    there), checked against its manifest entry: how many went in."""
    scoped = current_scope().tables[table]
    qualified = scoped.qualified
    path = folder / entry["file"]
    if sha256_file(path) != entry["sha256"]:
        raise RestoreError(f"{path} changed since it was verified")
    load_keys(wh, table, path)
    keys = ", ".join(f"k.{quote_ident(c)}" for c in scoped.primary_key)
    present = _key_texts(
        wh.query(f"select {keys} from {scoped.relation} as k where {_keys_in(table, 'k')}")
    )
    if present - kept:
        raise RestoreError(
            f"{len(present - kept)} rows of {qualified} in snapshot {name} exist already: "
            "nothing was restored"
        )
    if kept - present:
        raise RestoreError(
            f"{len(kept - present)} rows of {qualified} another district owns left the "
            "warehouse while restoring: nothing was restored; run the restore again"
        )
    n = _insert(wh, table, path, present)
    if n + len(present) != int(entry["rows"]):
        raise RestoreError(
            f"{qualified}: inserted {n} rows beside {len(present)} kept for another district, "
            f"the snapshot holds {entry['rows']}: nothing was restored"
        )
    rows, key_fp = wh.query(key_fingerprint_sql(wh.target, table, _keys_in(table)))[0]
    if int(rows) != int(entry["rows"]) or int(key_fp) != int(entry["key_fingerprint"]):
        raise RestoreError(
            f"{qualified}: the restored keys differ from the snapshot's: nothing was restored"
        )
    return n


def _beside_next_year(district_id: str, school_year: int, rostered_at: Any) -> str | None:
    """After the next year's rostering, the restored rows sit beside its roster: no pass for
    their year may run any more, so they leave only with the next year's reset."""
    if rostered_at is None:
        return None
    return (
        f"district {district_id!r}: rostering for {school_year + 1} completed on "
        f"{rostered_at:%Y-%m-%d}, so the restored {school_year} rows now sit beside the "
        f"{school_year + 1} roster and can leave only with the {school_year + 1} reset"
    )


def _check_exact(
    wh: Warehouse,
    district_id: str,
    before: dict[str, Fingerprint],
    parts: Parts,
    kept: dict[tuple[str, int], Keys],
) -> None:
    """The live rows gained exactly the snapshot's rows, value for value (fingerprints add);
    the rows kept for another owner are left out on both sides."""
    after = source_fingerprints(wh, district_id, _by_table(kept))
    expected = sum_parts([m for _, m in parts])
    for (table, i), keys in kept.items():
        folder, manifest = parts[i]
        path = folder / manifest["tables"][table]["file"]
        left = fingerprint_batches(table, _leaving_out(parquet_batches(path), table, keys, True))
        rows, content = expected[table]
        expected[table] = (rows - left.rows, (content - left.content) % CONTENT_MOD)
    for table in current_scope().deleted:
        rows, content = expected[table]
        qualified = current_scope().tables[table].qualified
        gained_rows = after[table].rows - before[table].rows
        gained = (after[table].content - before[table].content) % CONTENT_MOD
        if gained_rows != rows or gained != content:
            raise RestoreError(
                f"{qualified}: the restored rows differ from the snapshot's (rows or content "
                "fingerprint): check the district before resetting it again"
            )
