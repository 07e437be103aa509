"""Snapshots in a folder on the runner's disk: the files and the manifest are written into a
staging folder `.<segment>.tmp-<pid>-<hex8>`, fsynced, and the folder is renamed into place
after the district's delete committed."""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from jobs.snapshot.filework import write_new
from jobs.snapshot.layout import (
    DIR_MODE,
    FILE_MODE,
    MANIFEST,
    district_dir,
    ensure_dir,
    fsync_path,
)
from jobs.snapshot.part import (
    COPY,
    LEFTOVER,
    MAIN,
    STAGING,
    Committed,
    Pending,
    SnapshotStore,
    leftover_pattern,
    part_name,
    refuse_committed,
    split_part_name,
    staging_name,
    thread_pool,
)


def _syncers() -> ThreadPoolExecutor:
    """Threads for fsync: files synced at once share the file system's journal commits."""
    return thread_pool("fsync", 8)


def swap_in(staging: Path, final: Path) -> None:
    """Replace any older part by the new folder; never leaves a half-written one.

    Two runners may put the same committed part in place at once (each settles the year
    when it starts): they take turns, under an exclusive lock of the year's folder, so the
    new part is put in place once, and only a folder that the part replaced is removed.
    (Without turns, one runner could move the new part aside while another put the older
    one back.) Raises FileNotFoundError when another placed it."""
    fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _swap_in(staging, final)
    finally:
        os.close(fd)  # the lock goes with it


def _swap_in(staging: Path, final: Path) -> None:
    while True:
        try:
            os.rename(staging, final)  # onto a missing (or empty) folder only
            fsync_path(final.parent)
            return
        except FileNotFoundError:
            raise  # the staging folder is gone: another runner put it in place
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        old = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
        try:
            os.rename(final, old)
        except FileNotFoundError:
            continue  # moved aside by another runner: try again
        try:
            os.rename(staging, final)
        except BaseException:
            with suppress(OSError):  # the other runner placed it meanwhile: ours goes back
                os.rename(old, final)
            raise
        fsync_path(final.parent)
        shutil.rmtree(old, ignore_errors=True)
        return


# the parts' leftovers in a year's folder, by the name of the part they were left by
Found = dict[str, list[str]]


def _leftovers(year_dir: Path, final_name: str, found: Found | None = None) -> list[str]:
    """The names in the year's folder that a snapshot of this part left behind (from
    `found`, the folder's leftovers as one listing found them, when given)."""
    pattern = leftover_pattern(final_name)
    if found is None:
        found = _found(year_dir, f".{final_name}.")
    return [name for name in found.get(final_name, []) if pattern.fullmatch(name)]


def _found(year_dir: Path, start: str = ".") -> Found:
    """The leftovers of the year's folder whose names begin with `start`, by the part that
    left them. The folder holds every district's part: a batch begins a hundred parts, and a
    listing for each took seconds at a thousand districts; one listing serves the batch."""
    try:
        with os.scandir(year_dir) as entries:
            names = [e.name for e in entries if e.name.startswith(start)]
    except (FileNotFoundError, NotADirectoryError):
        return {}
    found: Found = {}
    for name in names:
        if match := LEFTOVER.fullmatch(name):
            found.setdefault(match["name"], []).append(name)
    return found


class FolderPending(Pending):
    def __init__(self, store: SnapshotStore, staging: Path, final: Path):
        self.store = store
        self.folder = staging
        self.final = final
        self.location = str(final)
        self.staging = staging.name

    def open_output(self, name: str) -> Any:
        import pyarrow as pa

        path = self.folder / name
        stream = pa.OSFile(str(path), "wb")
        os.chmod(path, FILE_MODE)  # before any row is in it
        return stream

    def write_file(self, name: str, data: Any) -> None:
        """A new file of the staging folder, created with the snapshot's mode (a umask can
        only take rights away) and written in one call: three system calls, where a stream
        makes twice as many (each a turn of the GIL on a busy runner)."""
        write_new(str(self.folder / name), data)

    def open_input(self, name: str) -> Any:
        import pyarrow as pa

        return pa.OSFile(str(self.folder / name), "rb")

    def size(self, name: str) -> int:
        return (self.folder / name).stat().st_size

    def write_manifest(self, data: bytes) -> None:
        fd = os.open(self.folder / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def sync(self) -> None:
        """fsync every file at once, then the folder itself."""
        syncs = [_syncers().submit(fsync_path, path) for path in self.folder.iterdir()]
        for done in syncs:
            done.result()
        fsync_path(self.folder)

    def publish(self) -> None:
        swap_in(self.folder, self.final)

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class FolderStore(SnapshotStore):
    object_store = False

    def __init__(self, root: Path):
        self.path = Path(root)
        self.root = str(self.path)

    def check(self) -> None:
        return None  # the writer says what a folder lacks, when it writes

    def close(self) -> None:
        return None

    def location(self, school_year: int, district_id: str, part: str = MAIN) -> str:
        main = district_dir(self.path, school_year, district_id)
        return str(main if part == MAIN else main.with_name(part_name(main.name, part)))

    def begin(
        self,
        school_year: int,
        district_id: str,
        part: str = MAIN,
        committed: Committed = None,
        listed: Found | None = None,
    ) -> Pending:
        final = Path(self.location(school_year, district_id, part))
        root_existed = self.path.exists()
        year_dir = ensure_dir(final.parent)
        if not root_existed:
            os.chmod(year_dir.parent, DIR_MODE)
        leftovers = _leftovers(year_dir, final.name, listed)
        self._settle_committed(year_dir, final, committed, leftovers)
        self.clean_leftovers(year_dir, final.name, leftovers)
        staging = year_dir / staging_name(final.name)
        staging.mkdir(mode=DIR_MODE)
        os.chmod(staging, DIR_MODE)
        return FolderPending(self, staging, final)

    def listing(self, school_year: int) -> Found:
        """The year's folder listed once for every part a pass begins."""
        return _found(self.path / str(int(school_year)))

    def _settle_committed(
        self, year_dir: Path, final: Path, committed: Committed, leftovers: list[str]
    ) -> None:
        """A staging of this part whose delete committed goes in place, and begin refuses."""
        waiting = {
            sha: name
            for name in leftovers
            if STAGING.fullmatch(name) and (sha := self.manifest_sha(str(year_dir / name)))
        }
        refuse_committed(self, str(final), waiting, committed)

    @staticmethod
    def clean_leftovers(year_dir: Path, final_name: str, names: list[str] | None = None) -> None:
        """Remove staging and replaced folders an interrupted snapshot of this part left
        (`names`, when they were already found)."""
        for name in _leftovers(year_dir, final_name) if names is None else names:
            shutil.rmtree(year_dir / name, ignore_errors=True)

    def settle(self, location: str, staging: str, manifest_sha256: str) -> bool:
        final = Path(location)
        if self.manifest_sha(location) == manifest_sha256:
            return False
        waiting = final.parent / staging
        if not waiting.is_dir() or self.manifest_sha(str(waiting)) != manifest_sha256:
            return False
        try:
            swap_in(waiting, final)
        except FileNotFoundError:  # another runner put it in place first
            return False
        return True

    def waiting(self, school_year: int) -> dict[str, str]:
        year_dir = self.path / str(int(school_year))
        found: dict[str, str] = {}
        for entry in year_dir.iterdir() if year_dir.is_dir() else ():
            if STAGING.fullmatch(entry.name):
                sha = self.manifest_sha(str(entry))
                if sha:
                    found[sha] = entry.name
        return found

    def manifest_bytes(self, location: str) -> bytes | None:
        path = Path(location) / MANIFEST
        try:
            return path.read_bytes() if path.is_file() else None
        except OSError:
            return None

    def snapshots(self) -> list[str]:
        if not self.path.is_dir():
            return []
        found = []
        for year in sorted(self.path.iterdir()):
            if not (year.is_dir() and year.name.isdigit()):
                continue
            for folder in sorted(year.iterdir()):
                hidden = folder.name.startswith(".")  # staging folders
                if folder.is_dir() and not hidden and (folder / MANIFEST).is_file():
                    found.append(str(folder))
        return found

    def copies(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return [
            str(folder)
            for year in sorted(self.path.iterdir())
            if year.is_dir() and year.name.isdigit()
            for folder in sorted(year.iterdir())
            if folder.is_dir()
            and not folder.name.startswith(".")
            and split_part_name(folder.name)[1] == COPY
        ]

    @contextmanager
    def local(self, location: str) -> Iterator[Path]:
        yield Path(location)

    def remove(self, location: str) -> list[str]:
        folder = Path(location)
        if not folder.exists():
            return []
        if folder.resolve().parent.parent != self.path.resolve():
            # a symlinked folder: never delete outside the root
            return [str(folder)]
        shutil.rmtree(folder)
        return []

    def set_legal_hold(self, location: str, on: bool) -> int:
        return 0  # a folder has no holds of its own: the ledger's hold keeps purge away

    def put_copy(self, location: str, source: Path) -> str:
        final = Path(location)
        folder = ensure_dir(final.with_name(part_name(final.name, COPY)))
        target = folder / source.name
        shutil.copyfile(source, target)
        os.chmod(target, FILE_MODE)
        return str(target)
