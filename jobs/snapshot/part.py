"""What every snapshot store shares: the names of a part and of its staging, the interface a
store implements (`SnapshotStore`, and `Pending` for a part being written), its errors, and the
process's thread pools.

The layout is the same in every store: `<root>/<school_year>/<segment>/<table>.parquet` and
`manifest.json`; a part other than the main snapshot is the sibling `<segment>~<part>`. A part
is complete once its manifest is in place, and the manifest goes in place only after the
district's delete committed. A part's staging name and manifest sha256 are in the ledger's
delete event, so a rerun puts in place a committed part whose last step a kill cut off
(`settle`, `waiting`). The stores: a folder (`jobs.snapshot.folder`) and an S3-compatible
bucket (`jobs.snapshot.s3`); `jobs.snapshot.store` opens the one a root names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobs.snapshot.layout import FORMAT, MANIFEST, SnapshotError

S3_SCHEME = "s3://"
# which of the given manifest sha256s belong to a delete that committed (see `begin`)
Committed = Callable[[list[str]], set[str]] | None
MAIN = "main"
COPY = "copy"  # the sibling `<segment>~copy` that holds the district's copy (`share`)
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")


class StoreError(SnapshotError):
    """The snapshot store would not do what was asked; one line naming the cause."""


class PartCommitted(SnapshotError):
    """A pass of this part committed already (its staging is now in place): not again."""


def is_object_root(root: str | Path) -> bool:
    return str(root).startswith(S3_SCHEME)


def part_name(segment: str, part: str) -> str:
    return segment if part == MAIN else f"{segment}~{part}"


def split_part_name(name: str) -> tuple[str, str]:
    """(district segment, part) of a folder name, the inverse of part_name. An encoded
    segment starts with `~` or `~~` and holds no other `~` (base32 or hex), a plain id none."""
    lead = len(name) - len(name.lstrip("~"))
    segment, sep, part = name[lead:].partition("~")
    return name[:lead] + segment, part if sep else MAIN


def staging_name(final_name: str) -> str:
    return f".{final_name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


def leftover_pattern(final_name: str) -> re.Pattern[str]:
    """Exactly the names a snapshot of this part leaves behind: `.d1.tmp-…` and `.d1.old-…`,
    never those of another district whose name starts the same (`d1.x`)."""
    return re.compile(rf"\.{re.escape(final_name)}\.(?:tmp-\d+-[0-9a-f]{{8}}|old-[0-9a-f]{{8}})")


STAGING = re.compile(r"\.(?P<name>.+)\.tmp-\d+-[0-9a-f]{8}")
LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?:tmp-\d+-[0-9a-f]{8}|old-[0-9a-f]{8})")


def retain_until(manifest: dict[str, Any], days: int) -> datetime:
    """The purge date of a snapshot: its creation time plus the retention days."""
    created = datetime.fromisoformat(str(manifest["created_at"]))
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created + timedelta(days=days)


def manifest_of(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{where} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError(f"{where} is not an {FORMAT} manifest")
    return doc


# ---------------------------------------------------------------------------------------
# the interface
# ---------------------------------------------------------------------------------------
class Pending(ABC):
    """A part being written: its files go out before the commit, the part goes in place
    (`publish`) after it; `discard` drops what a pass that did not commit wrote."""

    store: SnapshotStore
    location: str  # where the part will be, as the ledger records it
    staging: str  # the staging name the ledger records, for `settle`

    @abstractmethod
    def open_output(self, name: str) -> Any:
        """A writable pyarrow stream for one file of the part (closing it completes it)."""

    def write_file(self, name: str, data: Any) -> None:
        """One whole file of the part from memory (bytes or a pyarrow buffer)."""
        sink = self.open_output(name)
        try:
            sink.write(data)
        finally:
            sink.close()  # on an object store: the upload completes here

    @abstractmethod
    def open_input(self, name: str) -> Any:
        """A random-access pyarrow file of what was written."""

    @abstractmethod
    def size(self, name: str) -> int: ...

    @abstractmethod
    def write_manifest(self, data: bytes) -> None: ...

    @abstractmethod
    def sync(self) -> None:
        """Everything written is durable before the commit."""

    @abstractmethod
    def publish(self) -> None:
        """After the commit: the part goes in place, complete."""

    @abstractmethod
    def discard(self) -> None: ...


class SnapshotStore(ABC):
    """A snapshot root: where parts are written, found, read, held and removed."""

    root: str  # for messages: the folder, or s3://bucket/prefix
    object_store: bool

    @abstractmethod
    def location(self, school_year: int, district_id: str, part: str = MAIN) -> str:
        """Where a part of a district's snapshot is (a folder, or an s3:// prefix)."""

    @abstractmethod
    def begin(
        self,
        school_year: int,
        district_id: str,
        part: str = MAIN,
        committed: Committed = None,
        listed: Any = None,
    ) -> Pending:
        """A new staging for the part. What earlier passes of the part left in staging is
        removed, unless `committed` (given the sha256 of each waiting manifest) says that
        pass's delete committed: that part is put in place instead, and StoreError raised
        (the caller must not write the part again). Called only by the holder of the
        district's lock, in the transaction that holds it, so a pass that left staging is
        over: its lock is free, and its delete either committed or never will. `listed`:
        what `listing` found for the pass, when the pass began its parts together."""

    def listing(self, school_year: int) -> Any:
        """What `begin` may reuse for every part a pass begins (None: nothing)."""
        return None

    def begin_all(
        self,
        school_year: int,
        parts: dict[str, str],
        committed: Committed,
        pendings: dict[str, Pending],
    ) -> None:
        """`begin` for each district's part (district -> part), each put in `pendings` as it
        is made: a failure part-way leaves the caller every staging to discard."""
        listed = self.listing(school_year)
        for district, part in parts.items():
            pendings[district] = self.begin(school_year, district, part, committed, listed)

    @abstractmethod
    def settle(self, location: str, staging: str, manifest_sha256: str) -> bool:
        """Put in place a committed part whose last step a kill cut off: its manifest waits
        under `staging` with the sha256 the ledger recorded. True when it was put in place."""

    @abstractmethod
    def waiting(self, school_year: int) -> dict[str, str]:
        """The staging manifests of the year: manifest sha256 -> staging name."""

    @abstractmethod
    def manifest_bytes(self, location: str) -> bytes | None:
        """The part's manifest as stored, None when there is none (incomplete)."""

    @abstractmethod
    def snapshots(self) -> list[str]:
        """Every complete part under the root (those holding a manifest)."""

    @abstractmethod
    def copies(self) -> list[str]:
        """Every district's copy under the root (`<segment>~copy`, see `share`), whether its
        snapshot is still there or not."""

    @abstractmethod
    @contextmanager
    def local(self, location: str) -> Iterator[Path]:
        """The part's files in a local folder, for as long as the block runs."""

    @abstractmethod
    def remove(self, location: str) -> list[str]:
        """Delete the part, every version of every object of it the store lets go.
        Returns what is still there because the store keeps it (Object Lock)."""

    @abstractmethod
    def set_legal_hold(self, location: str, on: bool) -> int:
        """Put the part's objects under an S3 legal hold, or lift it; how many objects."""

    @abstractmethod
    def put_copy(self, location: str, source: Path) -> str:
        """The district's copy beside its main part (`<segment>~copy/<file>`): where it went."""

    def link(self, copy_location: str, expires: timedelta) -> str:
        raise StoreError(
            f"links need an object store: the snapshot root {self.root} is a folder; "
            "use `eoy-reset export` and hand the file over, or use an s3:// snapshot root"
        )

    # -- shared ----------------------------------------------------------------------
    def manifest_sha(self, location: str) -> str | None:
        data = self.manifest_bytes(location)
        return hashlib.sha256(data).hexdigest() if data is not None else None

    def read_manifest(self, location: str) -> dict[str, Any]:
        data = self.manifest_bytes(location)
        if data is None:
            raise SnapshotError(f"no {MANIFEST} in {location}: the snapshot is incomplete")
        return manifest_of(data, f"{location}/{MANIFEST}")

    def is_complete(self, location: str) -> bool:
        try:
            self.read_manifest(location)
        except SnapshotError:
            return False
        return True

    @abstractmethod
    def check(self) -> None:
        """Raise StoreError now when the root cannot be used."""

    @abstractmethod
    def close(self) -> None:
        """Release clients; the store can be used again after (it makes new ones)."""


def refuse_committed(
    store: SnapshotStore, location: str, waiting: dict[str, str], committed: Committed
) -> None:
    """Put in place a waiting staging of the part whose delete committed, and refuse to begin
    the part again; the others are a dead pass's, for `begin` to remove."""
    if not waiting or committed is None:
        return
    done = committed(list(waiting))
    for sha in done:
        store.settle(location, waiting[sha], sha)
    if done:
        raise PartCommitted(
            f"a pass of {location} committed and waited in staging: it is in place now, "
            "nothing more was deleted; run again"
        )


_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def thread_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """The process's threads of one kind (named `eoy-<name>`), made when first asked for."""
    with _pools_lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(workers, thread_name_prefix=f"eoy-{name}")
        return pool
