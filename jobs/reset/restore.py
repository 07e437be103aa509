"""`eoy-reset restore`: put a district's deleted rows back, exactly, from its verified snapshot.

The parts the ledger says were deleted are verified first; then, in one transaction, parents
first, every row goes back unless any of them already exists (then nothing changes); the
run becomes `restored`, which holds the district from automatic resets for that school year
until its reset date changes or an operator names it with `run --district`.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.scope import current_scope
from jobs.snapshot.fingerprint import (
    CONTENT_MOD,
    Fingerprint,
    fingerprint_batches,
    key_fingerprint_sql,
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


class RestoreError(EoyError):
    """The district could not be restored; nothing was changed unless the message says so."""


def _keys_in(table: str) -> str:
    keys = ", ".join(quote_ident(k) for k in current_scope().tables[table].primary_key)
    return f"({keys}) in (select {keys} from eoy_keys_{table.replace('.', '__')})"


def _insert(wh: Warehouse, table: str, path: Path) -> int:
    cols = ", ".join(quote_ident(c) for c in current_scope().tables[table].column_names)
    if wh.target == "duckdb":
        return wh.execute(
            f"insert into {current_scope().tables[table].relation} ({cols}) "
            f"select {cols} from read_parquet({sql_string(str(path))})"
        )
    assert isinstance(wh, PostgresWarehouse)
    rows = 0
    with (
        wh.con.cursor() as cur,
        cur.copy(f"copy {current_scope().tables[table].relation} ({cols}) from stdin") as copy,
    ):
        for batch in pq.ParquetFile(path).iter_batches(
            COPY_BATCH, columns=current_scope().tables[table].column_names
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


def source_fingerprints(wh: Warehouse, district_id: str) -> dict[str, Fingerprint]:
    """Rows and content fingerprint of the district's live rows, per student-data table."""
    from jobs.snapshot.source import consistent_view, shaped

    out: dict[str, Fingerprint] = {}
    with consistent_view(wh, district_id) as view:
        for table in current_scope().deleted:
            out[table] = fingerprint_batches(table, shaped(view.batches(table), table))
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
            try:
                settle_parts(deletes, settings)
                parts = reading.enter_context(verified_parts(settings, deletes))
            except SnapshotError as exc:
                raise RestoreError(f"{exc}: nothing was restored") from None
            record_event(
                wh,
                district_id,
                school_year,
                "restore",
                "started",
                {"parts": [d.get("part") for d in deletes]},
            )
            before = source_fingerprints(wh, district_id)
            restored: dict[str, int] = {t: 0 for t in current_scope().deleted}
            with wh.transaction():
                for table in current_scope().insert_order:
                    qualified = current_scope().tables[table].qualified
                    for (folder, manifest), done in zip(parts, deletes, strict=True):
                        name = str(done["path"]).rstrip("/").rsplit("/", 1)[-1]
                        entry = manifest["tables"][table]
                        if int(entry["rows"]) == 0:
                            continue
                        path = folder / entry["file"]
                        if sha256_file(path) != entry["sha256"]:
                            raise RestoreError(f"{path} changed since it was verified")
                        load_keys(wh, table, path)
                        present = int(
                            wh.scalar(
                                f"select count(*) from {current_scope().tables[table].relation} "
                                f"where {_keys_in(table)}"
                            )
                        )
                        if present:
                            raise RestoreError(
                                f"{present} rows of {qualified} in snapshot {name} "
                                "exist already: nothing was restored"
                            )
                        n = _insert(wh, table, path)
                        if n != int(entry["rows"]):
                            raise RestoreError(
                                f"{qualified}: inserted {n} rows, the snapshot holds "
                                f"{entry['rows']}: nothing was restored"
                            )
                        rows, key_fp = wh.query(
                            key_fingerprint_sql(wh.target, table, _keys_in(table))
                        )[0]
                        if int(rows) != n or int(key_fp) != int(entry["key_fingerprint"]):
                            raise RestoreError(
                                f"{qualified}: the restored keys differ from the "
                                "snapshot's: "
                                "nothing was restored"
                            )
                        restored[table] += n
                total = sum(restored.values())
                update_run(
                    wh,
                    district_id,
                    school_year,
                    status="restored",
                    finished_at=utcnow(),
                    error=None,
                )
                record_event(
                    wh,
                    district_id,
                    school_year,
                    "restore",
                    "completed",
                    {
                        "rows": restored,
                        "rows_total": total,
                        "parts": [d.get("part") for d in deletes],
                    },
                )
            _check_exact(wh, district_id, before, [m for _, m in parts])
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
        "snapshots": [str(d["path"]) for d in deletes],
        "warning": _beside_next_year(district_id, school_year, rostering.get(district_id)),
        "advice": take_up_again(district_id, school_year, run["effective_reset_date"]),
    }


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
    wh: Warehouse, district_id: str, before: dict[str, Any], manifests: list[dict[str, Any]]
) -> None:
    """The live rows gained exactly the snapshot's rows, value for value (fingerprints add)."""
    after = source_fingerprints(wh, district_id)
    expected = sum_parts(manifests)
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
