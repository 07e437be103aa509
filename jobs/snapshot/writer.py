"""Writing a snapshot (SPEC §7): each table's rows streamed into its Parquet file and its
fingerprints, the files fsynced and read back, the manifest last, in a staging folder that is
renamed into place once the district's transaction has committed."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from jobs import __version__
from jobs.config import Settings
from jobs.errors import EoyError, first_line
from jobs.snapshot.fingerprint import (
    CONTENT_ALGORITHM,
    KEY_ALGORITHM,
    Fingerprint,
    arrow_schema,
    content_sum,
    key_sum,
)
from jobs.snapshot.layout import (
    FILE_MODE,
    FORMAT,
    MANIFEST,
    SnapshotError,
    district_dir,
    fsync_path,
    manifest_digest,
    sha256_file,
)
from jobs.snapshot.source import shaped
from jobs.warehouse.connection import Warehouse
from jobs.warehouse.contract import (
    DELETED_TABLES,
    TABLES,
)

MAIN = "main"
Progress = Callable[[str, int], None]  # (table, rows taken so far)


class DeleteError(EoyError):
    """The district's transaction was rolled back: what it would delete was not what its
    snapshot holds, or something else changed; nothing was deleted."""


IN_FLIGHT = 3  # batches fingerprinted at once beside the writer
REREAD_IN_MEMORY = 256 * 1024 * 1024  # files up to this size are read once for sha256 and rows


class VerifyError(SnapshotError):
    """A snapshot file did not re-read to what was streamed into it; nothing was deleted."""


class WriteError(SnapshotError):
    """The snapshot root would not take a file (full, read-only, gone); nothing was deleted."""


@contextmanager
def writing(root: Path) -> Iterator[None]:
    """File-system errors while writing the snapshot, as one line naming the root."""
    try:
        yield
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else exc.strerror or first_line(exc)
        raise WriteError(
            f"the snapshot could not be written under {root} ({reason}): "
            "nothing was deleted; fix the snapshot root and run again"
        ) from None


# ---------------------------------------------------------------------------------------
# parts and their folders
# ---------------------------------------------------------------------------------------
def part_dir(settings: Settings, school_year: int, district_id: str, part: str) -> Path:
    main = district_dir(settings.snapshot_root, school_year, district_id)
    return main if part == MAIN else main.with_name(f"{main.name}~{part}")


def delta_number(part: str) -> int:
    return int(part.split("-", 1)[1]) if part.startswith("delta-") else 0


def staging_name(final_name: str) -> str:
    return f".{final_name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def _leftover_pattern(final_name: str) -> re.Pattern[str]:
    """Exactly the names a snapshot of this folder leaves behind: `.d1.tmp-…` and `.d1.old-…`,
    never those of another district whose folder name starts the same (`d1.x`)."""
    return re.compile(rf"\.{re.escape(final_name)}\.(?:tmp-\d+-[0-9a-f]{{8}}|old-[0-9a-f]{{8}})")


def clean_leftovers(year_dir: Path, final_name: str, keep: set[str] | None = None) -> None:
    """Remove staging and replaced folders an interrupted snapshot of this folder left."""
    pattern = _leftover_pattern(final_name)
    for entry in year_dir.iterdir() if year_dir.is_dir() else ():
        if pattern.fullmatch(entry.name) and entry.name not in (keep or set()):
            shutil.rmtree(entry, ignore_errors=True)


def swap_in(staging: Path, final: Path) -> None:
    """Replace any older snapshot by the new folder; never leaves a half-written one."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
        os.rename(final, old)
    os.rename(staging, final)
    fsync_path(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _manifest_sha(folder: Path) -> str | None:
    path = folder / MANIFEST
    return sha256_file(path) if path.is_file() else None


def settle_parts(deletes: list[dict[str, Any]]) -> None:
    """Put in place every committed part whose rename a kill interrupted (it waits, complete
    and verified, in the staging folder its delete event names)."""
    for done in deletes:
        final, staging = Path(done["path"]), done.get("staging")
        if not staging or _manifest_sha(final) == done.get("manifest_sha256"):
            continue
        waiting = final.parent / staging
        if waiting.is_dir() and _manifest_sha(waiting) == done.get("manifest_sha256"):
            swap_in(waiting, final)


_STAGING = re.compile(r"\.(?P<name>.+)\.tmp-\d+-[0-9a-f]{8}")


def settle_year(wh: Warehouse, snapshot_root: Path, school_year: int) -> list[str]:
    """Put in place every part of the year that committed while its rename was cut off (a
    kill just after the commit): its staging folder holds a manifest whose sha256 a committed
    delete recorded. Nothing else is touched. Returns the folders put in place."""
    year_dir = Path(snapshot_root) / str(int(school_year))
    waiting: dict[str, Path] = {}
    for entry in year_dir.iterdir() if year_dir.is_dir() else ():
        if _STAGING.fullmatch(entry.name) and (entry / MANIFEST).is_file():
            sha = _manifest_sha(entry)
            if sha:
                waiting[sha] = entry
    if not waiting:
        return []
    marks = ", ".join(["%s"] * len(waiting))
    if wh.target == "postgres":
        text, sha = "cast(detail as text)", "detail ->> 'manifest_sha256'"
    else:
        text, sha = "cast(detail as varchar)", "json_extract_string(detail, 'manifest_sha256')"
    placed = []
    for (detail,) in wh.query(
        f"select {text} from eoy_runner.reset_events where step = 'delete' "
        f"and status = 'completed' and school_year = %s and {sha} in ({marks})",
        [school_year, *waiting],
    ):
        done = json.loads(detail)
        staging = waiting.get(done.get("manifest_sha256"))
        if staging is not None and staging.is_dir():
            try:
                swap_in(staging, Path(done["path"]))
            except FileNotFoundError:  # another runner put it in place first
                continue
            placed.append(done["path"])
    return placed


# ---------------------------------------------------------------------------------------
# writing: one Parquet file per table, fingerprinted on the way
# ---------------------------------------------------------------------------------------
_pool: ThreadPoolExecutor | None = None


_sync_pool: ThreadPoolExecutor | None = None


def _workers() -> ThreadPoolExecutor:
    """Threads for fingerprints and re-reads (both release the GIL in their native code)."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="eoy-fingerprint")
    return _pool


def _syncers() -> ThreadPoolExecutor:
    """Threads for fsync: files synced at once share the file system's journal commits."""
    global _sync_pool
    if _sync_pool is None:
        _sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eoy-fsync")
    return _sync_pool


@dataclass
class Taken:
    """One table's rows as they went into its file."""

    table: str
    path: Path
    fp: Fingerprint
    products: dict[str, int] = field(default_factory=dict)


def write_table(
    batches: Iterable[pa.RecordBatch],
    table: str,
    path: Path,
    district_id: str,
    progress: Progress | None = None,
) -> Taken:
    """Stream batches into a zstd Parquet file while fingerprinting them; every row must be
    the district's own."""
    schema = arrow_schema(table, large_text=True)
    taken = Taken(table, path, Fingerprint(table))
    with_product = "product" in TABLES[table].column_names
    pool = _workers()
    pending: deque[tuple[int, Future[int], Future[int]]] = deque()

    def settle() -> None:
        count, content, key = pending.popleft()
        taken.fp.add(count, content.result(), key.result())

    root = path.parents[2]  # <root>/<school year>/<staging folder>/<file>
    with writing(root):
        writer = pq.ParquetWriter(path, schema, compression="zstd")
    try:
        for batch in shaped(batches, table):
            if not pc.all(pc.equal(batch.column("district_id"), district_id)).as_py():
                raise DeleteError(
                    f"{table}: a row of another district came out of the district's "
                    "statement: rolled back, nothing was deleted"
                )
            pending.append(
                (
                    batch.num_rows,
                    pool.submit(content_sum, batch, table),
                    pool.submit(key_sum, batch, table),
                )
            )
            with writing(root):
                writer.write_batch(batch)
            if with_product:
                for item in pc.value_counts(batch.column("product")).to_pylist():
                    name = str(item["values"])
                    taken.products[name] = taken.products.get(name, 0) + int(item["counts"])
            while len(pending) > IN_FLIGHT:
                settle()
            if progress is not None:
                progress(table, taken.fp.rows + sum(p[0] for p in pending))
        while pending:
            settle()
    except BaseException:
        with suppress(Exception):
            writer.close()
        raise
    with writing(root):
        writer.close()
        os.chmod(path, FILE_MODE)
    if progress is not None:
        progress(table, taken.fp.rows)
    return taken


# ---------------------------------------------------------------------------------------
# verifying: the files on disk against what was streamed into them
# ---------------------------------------------------------------------------------------
def _reread(taken: Taken) -> tuple[Fingerprint, str, list[str]]:
    """(rows and content fingerprint, sha256, problems) of the file as it is on disk now."""
    path, table = taken.path, taken.table
    digest = hashlib.sha256()
    problems: list[str] = []
    if path.stat().st_size <= REREAD_IN_MEMORY:
        data = path.read_bytes()
        digest.update(data)
        source: Any = pa.BufferReader(data)
    else:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        source = path
    fp = Fingerprint(table)
    try:
        parquet = pq.ParquetFile(source)
        names = [f.name for f in parquet.schema_arrow]
        if names != TABLES[table].column_names:
            problems.append(f"{table}: the file's columns {names} are not the contract's")
        else:
            for batch in parquet.iter_batches(batch_size=256_000):
                # rows and content: the content fingerprint covers every column, keys too,
                # so a file whose content matches the stream also has the stream's keys
                fp.add(batch.num_rows, content_sum(batch, table), 0)
    except (OSError, pa.ArrowException) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        problems.append(f"{table}: the file does not read back: {first}")
    return fp, digest.hexdigest(), problems


def sync_folder(folder: Path) -> None:
    """fsync every file of a folder at once (they share the file system's journal commits),
    then the folder itself."""
    with writing(folder.parent.parent):
        syncs = [_syncers().submit(fsync_path, path) for path in folder.iterdir()]
        for done in syncs:
            done.result()
        fsync_path(folder)


def verify_files(folder: Path, taken: dict[str, Taken]) -> dict[str, dict[str, Any]]:
    """Re-read each file and compare it with the stream: the manifest's entries.

    Raises VerifyError when any file differs from what was streamed into it."""
    rereads = {table: _workers().submit(_reread, t) for table, t in taken.items()}
    entries: dict[str, dict[str, Any]] = {}
    for table in DELETED_TABLES:
        fp, sha, problems = rereads[table].result()
        streamed = taken[table].fp
        if not problems and (fp.rows, fp.content) != (streamed.rows, streamed.content):
            what = "rows" if fp.rows != streamed.rows else "content fingerprint"
            problems.append(
                f"{table}: the file re-reads with other {what} than the rows streamed into it"
            )
        if problems:
            raise VerifyError(f"snapshot did not verify: {problems[0]}; nothing was deleted")
        entries[table] = {
            "file": taken[table].path.name,
            **streamed.as_dict(),
            "sha256": sha,
            "columns": [{"name": c, "type": kind} for c, kind in TABLES[table].columns],
        }
    return entries


# ---------------------------------------------------------------------------------------
# the pass
# ---------------------------------------------------------------------------------------
def _dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_manifest(
    folder: Path,
    settings: Settings,
    target: str,
    district_id: str,
    school_year: int,
    created_at: datetime,
    tables: dict[str, dict[str, Any]],
) -> tuple[dict[str, Any], str]:
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "district_id": district_id,
        "school_year": int(school_year),
        "created_at": created_at.isoformat(),
        "target": target,
        "warehouse": settings.describe(),
        "tool_version": __version__,
        "algorithms": {"fingerprint": CONTENT_ALGORITHM, "key_fingerprint": KEY_ALGORITHM},
        "tables": tables,
    }
    manifest["manifest_digest"] = manifest_digest(manifest)
    text = _dumps(manifest).encode("utf-8")
    path = folder / MANIFEST
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.write(fd, text)
    finally:
        os.close(fd)
    return manifest, hashlib.sha256(text).hexdigest()
