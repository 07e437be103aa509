"""The district's copy of its year (`export --district`): CSV or Parquet files with a README,
zipped. Before the reset it comes from the warehouse read at one point in time
(`jobs.snapshot.source`); after it, from the verified snapshot parts the ledger says were
deleted.
"""

from __future__ import annotations

import os
import secrets
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from jobs.config import Settings
from jobs.scope import current_scope, ensure_scope
from jobs.scope.sql import district_count_sql, district_known_sql
from jobs.snapshot.fingerprint import arrow_schema, parquet_batches
from jobs.snapshot.layout import (
    FILE_MODE,
    SnapshotError,
    ensure_dir,
    fsync_path,
    safe_segment,
)
from jobs.snapshot.source import (
    BATCH_ROWS,
    ExportError,
    Source,
    consistent_view,
    shaped,
)
from jobs.snapshot.store import open_store
from jobs.snapshot.verify import verified_parts, verify_snapshot
from jobs.snapshot.writer import settle_parts
from jobs.warehouse.connection import connect
from jobs.warehouse.ledger import cycle_deletes, get_run
from jobs.warehouse.rostering import rostered


def write_parquet(batches: Iterable[pa.RecordBatch], schema: pa.Schema, path: Path) -> None:
    """Stream batches into a zstd Parquet file."""
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)


def publish(tmp: Path, final: Path) -> None:
    """0600, fsync, rename: a file appears under its final name only when complete."""
    os.chmod(tmp, FILE_MODE)
    fsync_path(tmp)
    os.replace(tmp, final)


# ---------------------------------------------------------------------------------------
# a copy for the district
# ---------------------------------------------------------------------------------------
FORMATS = ("csv", "parquet")


def _readme(district_id: str, school_year: int, source: str, fmt: str, rows: dict[str, int]) -> str:
    lines = [
        f"Student data of district {district_id}, school year {school_year - 1}-{school_year}.",
        f"Made {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from the {source}, "
        f"one {fmt} file per table{' with a header row' if fmt == 'csv' else ''}.",
        "Times are UTC, written YYYY-MM-DD HH:MM:SS[.ffffff]; an empty cell is no value.",
        "",
        "Tables:",
    ]
    for table in current_scope().deleted:
        cols = ", ".join(current_scope().tables[table].column_names)
        said = current_scope().tables[table].decl.description or table
        lines.append(f"- {table}.{fmt} ({rows.get(table, 0):,} rows): {said}.")
        lines.append(f"  Columns: {cols}.")
    return "\n".join(lines) + "\n"


def _write_csv(
    zf: zipfile.ZipFile, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]
) -> int:
    rows = 0
    options = pacsv.WriteOptions(quoting_style="needed")
    with zf.open(name, "w", force_zip64=True) as fh:
        writer = pacsv.CSVWriter(fh, schema, write_options=options)
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
        writer.close()
    return rows


def copy_path(out: Path, district_id: str, school_year: int, fmt: str) -> Path:
    """Where the district's copy goes in the folder `out`."""
    return Path(out) / f"{safe_segment(district_id)}_{int(school_year)}_{fmt.strip().lower()}.zip"


def export_for_district(
    settings: Settings, district_id: str, school_year: int, fmt: str, out: Path
) -> dict[str, Any]:
    """A zip of the district's student data (CSV or Parquet plus a README), for the district.

    The copy of school year Y holds Y's rows only. Before the reset, the warehouse's live
    rows (with the parts already deleted, if a pass stopped half way). Once the reset
    completed, or once rostering for Y + 1 completed (the live rows are then next year's),
    only the snapshot parts the ledger says were deleted (the main snapshot and any delta),
    each verified and the very one deleted. A district whose rows are gone without a reset
    in the ledger gets its main snapshot, verified.
    """
    fmt = (fmt or "").strip().lower()
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}: use csv or parquet")
    out = Path(out)
    # parts in a bucket are read into private temporary folders, removed at the end
    with connect(settings) as wh, ExitStack() as reading:
        scope = ensure_scope(settings, wh)
        if not wh.scalar(district_known_sql(scope), [district_id]):
            raise ExportError(
                f"unknown district {district_id!r}: it is not in {scope.districts.qualified}"
            )
        run = get_run(wh, district_id, school_year)
        year_over = (run is not None and run["status"] == "completed") or bool(
            rostered(wh, [district_id], school_year + 1, current_scope().role_relation("rostering"))
        )
        live = 0
        if not year_over:  # the live rows are still this year's
            live = sum(
                int(wh.scalar(district_count_sql(scope, scope.tables[t], district_id)))
                for t in scope.deleted
            )
        try:
            done = cycle_deletes(wh, district_id, school_year)
            settle_parts(done, settings)
            deleted = reading.enter_context(verified_parts(settings, done))
            parts = [folder for folder, _ in deleted]
            places = [str(d["path"]) for d in done]
            if not parts and not live:
                fallback = _fallback_snapshot(settings, district_id, school_year)
                places = [open_store(settings).location(school_year, district_id)]
                parts = [reading.enter_context(fallback)]
        except ExportError:
            raise
        except SnapshotError as exc:
            raise ExportError(f"district {district_id!r}: {exc}") from None
        source = " and ".join(n for n, used in (("snapshot", parts), ("warehouse", live)) if used)
        if not out.exists():  # an existing folder is the operator's: its mode stays
            ensure_dir(out)
        target = copy_path(out, district_id, school_year, fmt)
        tmp = out / f".{target.name}.part"
        rows: dict[str, int] = {}
        try:
            # 0600 from its first byte: never readable by others, whatever the umask
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # a leftover .part of an earlier try keeps its old mode
            with (
                os.fdopen(fd, "wb") as raw,
                zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf,
            ):
                with ExitStack() as stack:
                    view = stack.enter_context(consistent_view(wh, district_id)) if live else None
                    for table in current_scope().deleted:
                        files = [folder / f"{table}.parquet" for folder in parts]
                        rows[table] = _add_table(zf, fmt, table, files, view, out)
                zf.writestr("README.txt", _readme(district_id, school_year, source, fmt, rows))
            publish(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return {
        "path": str(target),
        "source": source,
        "format": fmt,
        "parts": places,
        "tables": {t: {"rows": n, "file": f"{t}.{fmt}"} for t, n in rows.items()},
    }


@contextmanager
def _fallback_snapshot(settings: Settings, district_id: str, school_year: int) -> Iterator[Path]:
    store = open_store(settings)
    snap = store.location(school_year, district_id)
    if not store.is_complete(snap):
        raise ExportError(
            f"district {district_id!r} has no rows left in the warehouse and no complete "
            f"snapshot for school year {school_year} at {snap}: nothing to export"
        )
    with store.local(snap) as folder:
        check = verify_snapshot(folder)
        if not check["ok"]:
            raise ExportError(
                f"district {district_id!r} has no rows left in the warehouse and its "
                f"snapshot for {school_year} at {snap} does not verify: "
                f"{check['problems'][0]}"
            )
        yield folder


def _add_table(
    zf: zipfile.ZipFile,
    fmt: str,
    table: str,
    files: list[Path],
    view: Source | None,
    scratch: Path,
) -> int:
    """One table of the copy: the rows of the snapshot files, then the view's live rows."""
    schema = arrow_schema(table, large_text=True)

    def batches() -> Iterator[pa.RecordBatch]:
        for path in files:
            yield from (b.cast(schema) for b in parquet_batches(path, BATCH_ROWS))
        if view is not None:
            yield from shaped(view.batches(table), table)

    if fmt == "csv":
        return _write_csv(zf, f"{table}.csv", schema, batches())
    if len(files) == 1 and view is None:  # the snapshot file as it is
        zf.write(files[0], f"{table}.parquet", compress_type=zipfile.ZIP_STORED)
        return int(pq.ParquetFile(files[0]).metadata.num_rows)
    part = scratch / f".{table}.{secrets.token_hex(4)}.parquet"
    try:
        write_parquet(batches(), schema, part)
        os.chmod(part, FILE_MODE)
        zf.write(part, f"{table}.parquet", compress_type=zipfile.ZIP_STORED)
        return int(pq.ParquetFile(part).metadata.num_rows)
    finally:
        part.unlink(missing_ok=True)
