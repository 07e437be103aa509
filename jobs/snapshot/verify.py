"""`eoy-reset verify-snapshot`: re-read every file of a snapshot and check it.

Checks, each reported as "<table>: <reason>": the manifest is there, parses and was not
edited (its digest); no file is missing or extra; every file's sha256, columns, row count,
content fingerprint and key fingerprint agree with the manifest, whose fingerprint algorithms
are this version's; with a warehouse, rows and fingerprints also agree with the district's
live rows. Two threads share the work: the sha256 sums, then a table each.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from rich.console import Console
from rich.table import Table as RichTable

from jobs.config import Settings
from jobs.errors import first_line
from jobs.scope import current_scope
from jobs.snapshot.fingerprint import (
    CONTENT_ALGORITHM,
    KEY_ALGORITHM,
    fingerprint_batches,
    fingerprint_parquet,
    scratch_duckdb,
    sql_string,
)
from jobs.snapshot.layout import (
    MANIFEST,
    SnapshotError,
    manifest_digest,
    read_manifest,
    sha256_file,
)
from jobs.snapshot.source import consistent_view, shaped
from jobs.snapshot.store import is_object_root, store_for
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import BIGINT, BOOL, DATE, FLOAT, INT, TEXT, TIMESTAMP
from jobs.warehouse.ledger import cycle_deletes

PARQUET_TYPES = {
    TEXT: "VARCHAR",
    INT: "INTEGER",
    FLOAT: "DOUBLE",
    DATE: "DATE",
    TIMESTAMP: "TIMESTAMP",
    BIGINT: "BIGINT",
    BOOL: "BOOLEAN",
}
ALGORITHMS = {"fingerprint": CONTENT_ALGORITHM, "key_fingerprint": KEY_ALGORITHM}


def snapshot_location(directory: str, settings: Settings) -> Path | str:
    """A district's snapshot as the operator named it: a folder, or its s3:// prefix, that
    holds a manifest; else SnapshotError saying what to give instead."""
    if is_object_root(directory):
        directory = directory.rstrip("/")
        if store_for(directory, settings).manifest_bytes(directory) is None:
            raise SnapshotError(
                f"{directory} is not a complete snapshot: it has no {MANIFEST} (an unfinished "
                "snapshot, or another prefix); give a district's prefix, like "
                "s3://bucket/snapshots/2023/d00042"
            )
        return directory
    folder = Path(directory)
    if not folder.is_dir():
        raise SnapshotError(
            f"{directory} is not a folder: give a district's snapshot folder, "
            "like snapshots/2023/d00042"
        )
    if not (folder / MANIFEST).is_file():
        raise SnapshotError(
            f"{directory} is not a snapshot folder: it has no {MANIFEST} (an unfinished "
            "snapshot, or another folder); give a district's folder, like "
            "snapshots/2023/d00042"
        )
    return folder


def verify_snapshot(
    directory: Path | str, settings: Settings | None = None, wh: Warehouse | None = None
) -> dict[str, Any]:
    """Check a snapshot folder, or an s3:// prefix (read from the bucket into a private
    temporary folder); `ok` is False with one problem per failing check."""
    if is_object_root(str(directory)):
        location = str(directory).rstrip("/")
        store = store_for(location, settings or Settings())
        with store.local(location) as folder:
            checked = verify_snapshot(folder, settings, wh)
        checked["directory"] = location
        return checked
    directory = Path(directory)
    result: dict[str, Any] = {
        "ok": False,
        "directory": str(directory),
        "district_id": None,
        "school_year": None,
        "manifest_sha256": None,
        "problems": [],
        "tables": {},
    }
    problems: list[str] = result["problems"]
    if not directory.is_dir():
        problems.append(f"snapshot: no such folder {directory}")
        return result
    try:
        manifest = read_manifest(directory)
    except SnapshotError as exc:
        problems.append(f"manifest: {exc}")
        return result
    result["district_id"] = manifest.get("district_id")
    result["school_year"] = manifest.get("school_year")
    result["manifest_sha256"] = sha256_file(directory / MANIFEST)
    if manifest.get("manifest_digest") != manifest_digest(manifest):
        problems.append("manifest: edited after it was written (its digest does not match)")
    entries = manifest.get("tables")
    if not isinstance(entries, dict):
        problems.append("manifest: has no tables")
        return result

    for name in sorted(set(entries) - set(current_scope().deleted)):
        problems.append(f"{name}: not a snapshot table (manifest lists it)")
    expected_files = {MANIFEST} | {f"{t}.parquet" for t in current_scope().deleted}
    for extra in sorted(p.name for p in directory.iterdir() if p.name not in expected_files):
        problems.append(f"{extra}: extra file not in the manifest")

    algorithms = manifest.get("algorithms")
    if algorithms != ALGORITHMS:
        problems.append(
            f"manifest: fingerprints made with {algorithms!r}; this version checks {ALGORITHMS!r}"
        )
    present = [t for t in current_scope().deleted if (directory / f"{t}.parquet").is_file()]
    # sums first: a table's check waits for its sum, which is then already running or done
    with ThreadPoolExecutor(max_workers=2) as pool:
        sums = {t: pool.submit(sha256_file, directory / f"{t}.parquet") for t in present}
        checks = {
            t: pool.submit(_check_table, directory, t, entries.get(t), sums.get(t))
            for t in current_scope().deleted
        }
        for table in current_scope().deleted:
            result["tables"][table], found = checks[table].result()
            problems.extend(found)

    if settings is not None or wh is not None:
        _check_against_source(result, manifest, settings, wh)
    result["ok"] = not problems
    return result


@contextmanager
def verified_parts(
    settings: Settings, deletes: list[dict[str, Any]]
) -> Iterator[list[tuple[Path, dict[str, Any]]]]:
    """The snapshot parts of the ledger's committed deletes, each verified and holding the
    very manifest that was deleted, as local folders with their manifests (parts in a bucket
    are read into private temporary folders, removed when the block ends); SnapshotError
    otherwise."""
    with ExitStack() as stack:
        parts = []
        for done in deletes:
            where = str(done["path"])
            folder = stack.enter_context(store_for(where, settings).local(where))
            check = verify_snapshot(folder)
            if not check["ok"]:
                raise SnapshotError(f"snapshot {where} does not verify ({check['problems'][0]})")
            if check["manifest_sha256"] != done.get("manifest_sha256"):
                raise SnapshotError(
                    f"snapshot {where} is not the one that was deleted (its manifest changed)"
                )
            parts.append((folder, read_manifest(folder)))
        yield parts


def _check_table(
    directory: Path, table: str, entry: Any, sha: Any
) -> tuple[dict[str, Any], list[str]]:
    """One table's file against its manifest entry: (what was found, problems)."""
    problems: list[str] = []
    info = _check_file(directory, table, entry, sha, problems)
    info["ok"] = not problems
    return info, problems


def _check_file(
    directory: Path, table: str, entry: Any, sha: Any, problems: list[str]
) -> dict[str, Any]:
    info: dict[str, Any] = {"rows": None, "ok": False}
    path = directory / f"{table}.parquet"
    if not isinstance(entry, dict):
        problems.append(f"{table}: missing from the manifest")
    if not path.is_file():
        problems.append(f"{table}: file {path.name} is missing")
        return info
    if not isinstance(entry, dict):
        return info
    if entry.get("file") != path.name:
        problems.append(f"{table}: manifest names file {entry.get('file')!r}, not {path.name}")
    if sha is not None and sha.result() != entry.get("sha256"):
        problems.append(f"{table}: sha256 of {path.name} does not match the manifest")
    expected_cols = [{"name": c, "type": k} for c, k in current_scope().tables[table].columns]
    if entry.get("columns") != expected_cols:
        problems.append(f"{table}: manifest columns differ from the contract")
    con = scratch_duckdb()
    try:
        described = con.execute(
            f"describe select * from read_parquet({sql_string(str(path))})"
        ).fetchall()
        actual = [(r[0], r[1]) for r in described]
        wanted = [(c, PARQUET_TYPES[k]) for c, k in current_scope().tables[table].columns]
        if actual != wanted:
            shown = ", ".join(f"{n} {t}" for n, t in actual)
            problems.append(f"{table}: the file's columns ({shown}) are not the contract's")
            return info
        fp = fingerprint_parquet(table, path)
    except (duckdb.Error, OSError, pa.ArrowException) as exc:
        problems.append(f"{table}: unreadable Parquet (truncated or corrupted): {first_line(exc)}")
        return info
    finally:
        con.close()
    info.update(fp.as_dict())
    for field, label in (
        ("rows", "rows"),
        ("fingerprint", "content fingerprint"),
        ("key_fingerprint", "key fingerprint"),
    ):
        if entry.get(field) != info[field]:
            problems.append(
                f"{table}: {label} differ: the file has {info[field]}, "
                f"the manifest says {entry.get(field)}"
            )
    return info


def _check_against_source(
    result: dict[str, Any],
    manifest: dict[str, Any],
    settings: Settings | None,
    wh: Warehouse | None,
) -> None:
    """With the warehouse: a snapshot whose delete the ledger committed (a reset's) must have
    none of its rows left there, by key (the district's rows now are newer ones); any other
    (not deleted, or restored since) must hold exactly the district's live rows."""
    own = wh is None
    if wh is None:
        assert settings is not None
        wh = connect(settings)
    problems: list[str] = result["problems"]
    try:
        district = str(manifest.get("district_id"))
        year = int(manifest.get("school_year") or 0)
        stored = wh.scalar(
            "select manifest_sha256 from eoy_runner.reset_runs "
            "where district_id = %s and school_year = %s",
            [district, year],
        )
        if stored and stored != result["manifest_sha256"]:
            problems.append("manifest: differs from the one recorded in the ledger")
        deleted = any(
            d.get("manifest_sha256") == result["manifest_sha256"]
            for d in cycle_deletes(wh, district, year)
        )
        result["against_source"] = "deleted" if deleted else "live"
        with consistent_view(wh, district) as view:
            for table in current_scope().deleted:
                entry = (manifest.get("tables") or {}).get(table) or {}
                info = result["tables"].setdefault(table, {"rows": None, "ok": False})
                if deleted:
                    problem = _none_left(view, Path(result["directory"]), table, info)
                else:
                    problem = _same_rows(view, table, entry, info)
                if problem:
                    problems.append(problem)
                    info["ok"] = False
    finally:
        if own:
            wh.close()


def _same_rows(view: Any, table: str, entry: dict[str, Any], info: dict[str, Any]) -> str:
    """The district's live rows of the table against the snapshot's; a problem, or ''."""
    fp = fingerprint_batches(table, shaped(view.batches(table), table))
    info["source_rows"] = fp.rows
    if fp.rows != entry.get("rows"):
        return f"{table}: the warehouse has {fp.rows} rows, the snapshot {entry.get('rows')}"
    if fp.content != entry.get("fingerprint"):
        return f"{table}: the warehouse rows differ from the snapshot's (content fingerprint)"
    return ""


def _none_left(view: Any, directory: Path, table: str, info: dict[str, Any]) -> str:
    """After the snapshot's delete: how many of its rows (by key) the warehouse still has;
    a problem, or ''."""
    keys = list(current_scope().tables[table].primary_key)
    live = [batch.select(keys) for batch in shaped(view.batches(table), table)]
    info["source_rows"] = sum(b.num_rows for b in live)
    info["left_after_reset"] = 0
    if not live:
        return ""
    con = scratch_duckdb()
    try:
        con.register("live", pa.Table.from_batches(live))
        path = sql_string(str(directory / f"{table}.parquet"))
        info["left_after_reset"] = left = int(
            con.execute(
                f"select count(*) from read_parquet({path}) join live using ({', '.join(keys)})"
            ).fetchone()[0]  # type: ignore[index]
        )
    finally:
        con.close()
    if left:
        return f"{table}: {left} of the snapshot's rows are still in the warehouse after its reset"
    return ""


def render_verify(console: Console, result: dict[str, Any]) -> None:
    title = (
        f"Snapshot {result['directory']} (district {result['district_id']}, "
        f"school year {result['school_year']})"
    )
    grid = RichTable(title=title, title_justify="left")
    grid.add_column("table")
    grid.add_column("rows", justify="right")
    grid.add_column("check")
    for table, info in result["tables"].items():
        rows = info.get("rows")
        grid.add_row(
            table,
            "-" if rows is None else f"{rows:,}",
            "[green]ok[/]" if info.get("ok") else "[red]failed[/]",
        )
    console.print(grid)
    for problem in result["problems"]:
        console.print(f"[red]problem[/] {problem}", highlight=False)
    if result.get("against_source") == "deleted":
        console.print(
            "Its rows were deleted by the district's reset: checked, by key, that none of them "
            "is left in the warehouse (the district's rows there now are newer ones)."
        )
    elif result.get("against_source") == "live":
        console.print("Checked against the district's rows in the warehouse, row for row.")
    if result["ok"]:
        console.print("[green]Snapshot verified.[/]")
