"""Where snapshot files are kept (SPEC §7): a folder on the runner's disk, or a bucket of an
S3-compatible object store (`s3://bucket/prefix`), behind one interface.

The layout is the same in both: `<root>/<school_year>/<segment>/<table>.parquet` and
`manifest.json`; a part other than the main snapshot is the sibling `<segment>~<part>`.
A part is complete once its manifest is in place, and the manifest goes in place only after
the district's delete committed:

- folder: the files and the manifest are written into a staging folder
  `.<segment>.tmp-<pid>-<hex8>`, fsynced, and the folder is renamed into place.
- object store: there is no rename. The part's old manifest is removed first (so the prefix
  reads as incomplete), the Parquet objects stream (multipart) to their final keys, the
  manifest goes to a staging key `<year>/.<segment>.tmp-<pid>-<hex8>/manifest.json`, and after
  the commit it is copied to `<segment>/manifest.json`, the last object written. On a bucket
  with Object Lock every object of the part is then retained until its purge date.

Either way a part's staging name and manifest sha256 are in the ledger's delete event, so a
rerun puts in place a committed part whose last step a kill cut off (`settle`, `waiting`).

Endpoint, region and credentials of the object store come from the standard AWS variables
(`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_SESSION_TOKEN`, `AWS_PROFILE`), read once by boto3; the data streams go through pyarrow's
S3 file system with the same endpoint and credentials.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobs.config import Settings
from jobs.snapshot.layout import (
    DIR_MODE,
    FILE_MODE,
    FORMAT,
    MANIFEST,
    SnapshotError,
    district_dir,
    ensure_dir,
    fsync_path,
    safe_segment,
)

S3_SCHEME = "s3://"
MAIN = "main"
COPY = "copy"  # the sibling `<segment>~copy` that holds the district's copy (`share`)
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
# what each of the S3 client's error codes means for the operator
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "INVALID_ACCESS_KEY_ID",
    "SIGNATURE_DOES_NOT_MATCH",
    "EXPIRED_TOKEN",
    "INVALID_CLIENT_TOKEN_ID",
}
_UNREACHABLE_CODES = {"NETWORK_CONNECTION", "REQUEST_TIMEOUT", "SERVICE_UNAVAILABLE"}
_MISSING_BUCKET_CODES = {"NoSuchBucket", "NO_SUCH_BUCKET"}
_DENIED_CODES = {"AccessDenied", "ACCESS_DENIED"}


class StoreError(SnapshotError):
    """The snapshot store would not do what was asked; one line naming the cause."""


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


def retain_until(manifest: dict[str, Any], days: int) -> datetime:
    """The purge date of a snapshot: its creation time plus the retention days."""
    created = datetime.fromisoformat(str(manifest["created_at"]))
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created + timedelta(days=days)


def _manifest_of(data: bytes, where: str) -> dict[str, Any]:
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
    def begin(self, school_year: int, district_id: str, part: str = MAIN) -> Pending: ...

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
        return _manifest_of(data, f"{location}/{MANIFEST}")

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


_stores: dict[tuple[Any, ...], SnapshotStore] = {}
_stores_lock = threading.Lock()


def open_store(settings: Settings) -> SnapshotStore:
    """The store of the settings' snapshot root. An object store is made once per root and
    AWS settings and shared by the runner's workers (its clients are thread-safe)."""
    root = settings.snapshot_root
    if not is_object_root(root):
        return FolderStore(Path(root))
    aws = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    key = (str(root), settings.object_lock_mode, settings.retention_days, aws)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = S3Store(
                str(root), lock_mode=settings.object_lock_mode, days=settings.retention_days
            )
            store.client  # noqa: B018 - made here, once: a boto3 session is not thread-safe
            _stores[key] = store
    return store


def store_for(location: str, settings: Settings) -> SnapshotStore:
    """The store that holds a location the ledger recorded (the root may have moved since)."""
    if is_object_root(location):
        if is_object_root(settings.snapshot_root) and _bucket(location) == _bucket(
            str(settings.snapshot_root)
        ):
            return open_store(settings)
        return S3Store(
            f"{S3_SCHEME}{_bucket(location)}",
            lock_mode=settings.object_lock_mode,
            days=settings.retention_days,
        )
    if is_object_root(settings.snapshot_root):
        return FolderStore(Path(location).parent.parent)
    return open_store(settings)


# ---------------------------------------------------------------------------------------
# a folder
# ---------------------------------------------------------------------------------------
_pools: dict[str, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def thread_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """The process's threads of one kind (named `eoy-<name>`), made when first asked for."""
    with _pools_lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(workers, thread_name_prefix=f"eoy-{name}")
        return pool


def _syncers() -> ThreadPoolExecutor:
    """Threads for fsync: files synced at once share the file system's journal commits."""
    return thread_pool("fsync", 8)


def swap_in(staging: Path, final: Path) -> None:
    """Replace any older part by the new folder; never leaves a half-written one."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{secrets.token_hex(4)}")
        os.rename(final, old)
    os.rename(staging, final)
    fsync_path(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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

    def begin(self, school_year: int, district_id: str, part: str = MAIN) -> Pending:
        final = Path(self.location(school_year, district_id, part))
        root_existed = self.path.exists()
        year_dir = ensure_dir(final.parent)
        if not root_existed:
            os.chmod(year_dir.parent, DIR_MODE)
        self.clean_leftovers(year_dir, final.name)
        staging = year_dir / staging_name(final.name)
        staging.mkdir(mode=DIR_MODE)
        os.chmod(staging, DIR_MODE)
        return FolderPending(self, staging, final)

    @staticmethod
    def clean_leftovers(year_dir: Path, final_name: str, keep: set[str] | None = None) -> None:
        """Remove staging and replaced folders an interrupted snapshot of this part left."""
        pattern = leftover_pattern(final_name)
        for entry in year_dir.iterdir() if year_dir.is_dir() else ():
            if pattern.fullmatch(entry.name) and entry.name not in (keep or set()):
                shutil.rmtree(entry, ignore_errors=True)

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


# ---------------------------------------------------------------------------------------
# an S3-compatible object store
# ---------------------------------------------------------------------------------------
def _bucket(url: str) -> str:
    return urlsplit(url).netloc


def _key(url: str) -> str:
    return urlsplit(url).path.strip("/")


def _code(exc: BaseException) -> str | None:
    """The S3 error code of a boto3 or pyarrow error, when it has one."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or "") or None
    found = re.search(r"AWS Error ([A-Z_]+)", str(exc))
    return found.group(1) if found else None


class S3Pending(Pending):
    def __init__(self, store: S3Store, location: str, staging: str):
        self.store = store
        self.s3 = store
        self.location = location
        self.staging = staging
        self.bucket, self.key = _bucket(location), _key(location)
        self.staging_key = f"{self.key.rsplit('/', 1)[0]}/{staging}/{MANIFEST}"
        self.written: list[str] = []

    def _path(self, name: str) -> str:
        return f"{self.bucket}/{self.key}/{name}"

    def open_output(self, name: str) -> Any:
        with self.s3.calls(f"writing {self.location}/{name}"):
            stream = self.s3.fs.open_output_stream(self._path(name))
        self.written.append(name)
        return stream

    def open_input(self, name: str) -> Any:
        with self.s3.calls(f"reading {self.location}/{name}"):
            return self.s3.fs.open_input_file(self._path(name))

    def size(self, name: str) -> int:
        with self.s3.calls(f"reading {self.location}/{name}"):
            return int(self.s3.fs.get_file_info(self._path(name)).size)

    def write_manifest(self, data: bytes) -> None:
        with self.s3.calls(f"writing the manifest of {self.location}"):
            self.s3.client.put_object(Bucket=self.bucket, Key=self.staging_key, Body=data)

    def sync(self) -> None:
        pass  # an object is durable once its upload returned

    def publish(self) -> None:
        self.s3.put_in_place(self.location, self.staging)

    def discard(self) -> None:
        # the objects written stay unreadable as a snapshot (no manifest); a rerun
        # overwrites them; what is left unlocked is removed now
        with suppress(StoreError):
            self.s3.delete_latest(self.bucket, [self.staging_key])


# boto3 sessions and S3 clients by the environment they were made from. Making one reads
# botocore's service models (a fifth of a second or more); a run opens the store once per
# district. Clients are thread-safe; a changed AWS_* variable makes a new one.
_aws_clients: dict[tuple[tuple[str, str], ...], tuple[Any, Any]] = {}
_aws_clients_lock = threading.Lock()


def _aws_session_and_client() -> tuple[Any, Any]:
    """(boto3 session, S3 client) for the AWS_* variables (and HOME, where the shared
    config and credentials files are) of the process as they are now."""
    key = tuple(
        sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_") or k == "HOME")
    )
    with _aws_clients_lock:
        made = _aws_clients.get(key)
        if made is None:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session()
            config = Config(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                signature_version="s3v4",
            )
            made = _aws_clients[key] = (session, session.client("s3", config=config))
    return made


class S3Store(SnapshotStore):
    object_store = True

    def __init__(self, root: str, lock_mode: str = "COMPLIANCE", days: int = 90):
        parts = urlsplit(root)
        if parts.scheme != "s3" or not parts.netloc:
            raise StoreError(f"snapshot root {root!r} is not s3://bucket/prefix")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.root = f"{S3_SCHEME}{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        mode = (lock_mode or "COMPLIANCE").upper()
        if mode not in LOCK_MODES:
            raise StoreError(
                f"unknown Object Lock mode {lock_mode!r}: use COMPLIANCE or GOVERNANCE "
                "(EOY_OBJECT_LOCK_MODE)"
            )
        self.lock_mode = mode
        self.days = int(days)

    # -- clients ----------------------------------------------------------------------
    @cached_property
    def session(self) -> Any:
        return _aws_session_and_client()[0]

    @cached_property
    def client(self) -> Any:
        return _aws_session_and_client()[1]

    @property
    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    @cached_property
    def fs(self) -> Any:
        """pyarrow's S3 file system, with boto3's endpoint, region and credentials."""
        from pyarrow import fs as pafs

        credentials = self.session.get_credentials()
        if credentials is None:
            raise StoreError(
                f"no credentials for the object store of {self.root}: set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)"
            )
        frozen = credentials.get_frozen_credentials()
        endpoint = urlsplit(self.endpoint)
        options: dict[str, Any] = {
            "access_key": frozen.access_key,
            "secret_key": frozen.secret_key,
            "session_token": frozen.token,
            "region": self.client.meta.region_name or "us-east-1",
            "connect_timeout": 5,
            "request_timeout": 60,
            "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
            "allow_bucket_creation": False,
            "allow_bucket_deletion": False,
            "check_directory_existence_before_creation": False,
        }
        if not endpoint.netloc.endswith("amazonaws.com"):
            options.update(endpoint_override=endpoint.netloc, scheme=endpoint.scheme or "https")
        return pafs.S3FileSystem(**options)

    def close(self) -> None:
        for name in ("fs", "client", "session"):
            self.__dict__.pop(name, None)

    @cached_property
    def lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock (then every part's objects get retention)."""
        from botocore.exceptions import ClientError

        try:
            with self.calls(f"reading the Object Lock configuration of {self.bucket}"):
                conf = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except StoreError as exc:
            cause = exc.__cause__
            # no Object Lock on the bucket; anything else (access denied, …) is said
            if isinstance(cause, ClientError) and _code(cause) in (
                "ObjectLockConfigurationNotFoundError",
                "ObjectLockConfigurationNotFound",
            ):
                return False
            raise
        return bool(conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled")

    def cause(self, exc: BaseException) -> str:
        """What went wrong with the store, in words, never with a credential in it."""
        from botocore.exceptions import (
            ConnectionClosedError,
            EndpointConnectionError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        code = _code(exc)
        unreachable = (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)
        if isinstance(exc, unreachable) or code in _UNREACHABLE_CODES:
            return f"the object store at {self.endpoint} cannot be reached (AWS_ENDPOINT_URL)"
        if isinstance(exc, NoCredentialsError):
            return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        if code in _CREDENTIAL_CODES:
            return (
                f"the object store at {self.endpoint} refused the credentials "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): check them"
            )
        if code in _MISSING_BUCKET_CODES:
            return f"bucket {self.bucket!r} does not exist at {self.endpoint}"
        if code in _DENIED_CODES:
            return f"access denied by the object store at {self.endpoint}"
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__

    @contextmanager
    def calls(self, what: str) -> Iterator[None]:
        """Errors of the store's clients as one StoreError line: the cause, then what."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except StoreError:
            raise
        except (BotoCoreError, ClientError, OSError) as exc:
            raise StoreError(f"{self.cause(exc)} ({what})") from exc

    def check(self) -> None:
        """The endpoint answers, takes the credentials, and has the bucket."""
        from botocore.exceptions import ClientError

        try:
            with self.calls(f"opening snapshot root {self.root}"):
                self.client.head_bucket(Bucket=self.bucket)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) in ("404", "NotFound"):
                raise StoreError(
                    f"bucket {self.bucket!r} does not exist at {self.endpoint} "
                    f"(opening snapshot root {self.root})"
                ) from None
            raise

    # -- keys -------------------------------------------------------------------------
    def _url(self, key: str) -> str:
        return f"{S3_SCHEME}{self.bucket}/{key}"

    def location(self, school_year: int, district_id: str, part: str = MAIN) -> str:
        name = part_name(safe_segment(district_id), part)
        key = "/".join(p for p in (self.prefix, str(int(school_year)), name) if p)
        return self._url(key)

    def _list(self, bucket: str, prefix: str, delimiter: str | None = None) -> Iterator[dict]:
        pages = self.client.get_paginator("list_objects_v2")
        extra = {"Delimiter": delimiter} if delimiter else {}
        for page in pages.paginate(Bucket=bucket, Prefix=prefix, **extra):
            yield from page.get("Contents", [])
            for common in page.get("CommonPrefixes", []):
                yield {"Prefix": common["Prefix"]}

    def _versions(self, bucket: str, prefix: str) -> Iterator[dict]:
        pages = self.client.get_paginator("list_object_versions")
        for page in pages.paginate(Bucket=bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                yield {**version, "marker": False}
            for marker in page.get("DeleteMarkers", []):
                yield {**marker, "marker": True}

    def delete_latest(self, bucket: str, keys: list[str]) -> None:
        """Delete keys as a reader sees them (a delete marker on a versioned bucket: the
        locked versions stay, unread)."""
        if not keys:
            return
        with self.calls(f"removing objects from {bucket}"):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                self.client.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})

    # -- writing ----------------------------------------------------------------------
    def begin(self, school_year: int, district_id: str, part: str = MAIN) -> Pending:
        location = self.location(school_year, district_id, part)
        key = _key(location)
        year_key, name = key.rsplit("/", 1)
        with self.calls(f"preparing {location}"):
            pattern = leftover_pattern(name)
            stale = [
                obj["Key"]
                for obj in self._list(self.bucket, f"{year_key}/.{name}.")
                if "Key" in obj and pattern.fullmatch(obj["Key"][len(year_key) + 1 :].split("/")[0])
            ]
            # the manifest first: from here on the prefix reads as incomplete
            present = [obj["Key"] for obj in self._list(self.bucket, f"{key}/") if "Key" in obj]
            manifest = f"{key}/{MANIFEST}"
            self.delete_latest(self.bucket, [k for k in present if k == manifest])
            self.delete_latest(self.bucket, stale + [k for k in present if k != manifest])
        return S3Pending(self, location, staging_name(name))

    def put_in_place(self, location: str, staging: str) -> None:
        """Retain the part's objects until its purge date (on an Object Lock bucket), then
        copy its staging manifest to its final key, written last, and drop the staging one."""
        bucket, key = _bucket(location), _key(location)
        staging_key = f"{key.rsplit('/', 1)[0]}/{staging}/{MANIFEST}"
        with self.calls(f"putting {location} in place"):
            data = self.client.get_object(Bucket=bucket, Key=staging_key)["Body"].read()
            manifest = _manifest_of(data, self._url(staging_key))
            lock: dict[str, Any] = {}
            until = retain_until(manifest, self.days)
            if self.lock_enabled and until > datetime.now(UTC):
                lock = {"ObjectLockMode": self.lock_mode, "ObjectLockRetainUntilDate": until}
                for obj in self._list(bucket, f"{key}/"):
                    if "Key" in obj and not obj["Key"].endswith(f"/{MANIFEST}"):
                        self.client.put_object_retention(
                            Bucket=bucket,
                            Key=obj["Key"],
                            Retention={"Mode": self.lock_mode, "RetainUntilDate": until},
                        )
            self.client.put_object(
                Bucket=bucket,
                Key=f"{key}/{MANIFEST}",
                Body=data,
                ContentType="application/json",
                **lock,
            )
            self.client.delete_object(Bucket=bucket, Key=staging_key)

    def settle(self, location: str, staging: str, manifest_sha256: str) -> bool:
        if self.manifest_sha(location) == manifest_sha256:
            return False
        key = _key(location)
        staging_key = f"{key.rsplit('/', 1)[0]}/{staging}/{MANIFEST}"
        data = self._get(_bucket(location), staging_key)
        if data is None or hashlib.sha256(data).hexdigest() != manifest_sha256:
            return False
        self.put_in_place(location, staging)
        return True

    def waiting(self, school_year: int) -> dict[str, str]:
        year_key = "/".join(p for p in (self.prefix, str(int(school_year))) if p)
        found: dict[str, str] = {}
        with self.calls(f"listing {self._url(year_key)}"):
            for obj in self._list(self.bucket, f"{year_key}/."):
                rest = obj.get("Key", "")[len(year_key) + 1 :]
                folder, _, name = rest.partition("/")
                if name == MANIFEST and STAGING.fullmatch(folder):
                    data = self._get(self.bucket, obj["Key"])
                    if data is not None:
                        found[hashlib.sha256(data).hexdigest()] = folder
        return found

    # -- reading ----------------------------------------------------------------------
    def _get(self, bucket: str, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            with self.calls(f"reading {self._url(key)}"):
                return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) in ("NoSuchKey", "404"):
                return None
            raise

    def manifest_bytes(self, location: str) -> bytes | None:
        return self._get(_bucket(location), f"{_key(location)}/{MANIFEST}")

    def snapshots(self) -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        found = []
        with self.calls(f"listing {self.root}"):
            for obj in self._list(self.bucket, base):
                rest = obj.get("Key", "")[len(base) :].split("/")
                if (
                    len(rest) == 3
                    and rest[0].isdigit()
                    and not rest[1].startswith(".")
                    and rest[2] == MANIFEST
                ):
                    found.append(self._url(f"{base}{rest[0]}/{rest[1]}"))
        return sorted(found)

    def copies(self) -> list[str]:
        base = f"{self.prefix}/" if self.prefix else ""
        found = set()
        with self.calls(f"listing {self.root}"):
            for obj in self._list(self.bucket, base):
                rest = obj.get("Key", "")[len(base) :].split("/")
                if (
                    len(rest) == 3
                    and rest[0].isdigit()
                    and not rest[1].startswith(".")
                    and split_part_name(rest[1])[1] == COPY
                ):
                    found.add(self._url(f"{base}{rest[0]}/{rest[1]}"))
        return sorted(found)

    def files(self, location: str) -> list[str]:
        """The names of the objects directly under the part's prefix."""
        bucket, key = _bucket(location), _key(location)
        with self.calls(f"listing {location}"):
            return sorted(
                obj["Key"][len(key) + 1 :]
                for obj in self._list(bucket, f"{key}/", delimiter="/")
                if "Key" in obj
            )

    @contextmanager
    def local(self, location: str) -> Iterator[Path]:
        """The part's objects downloaded into a private temporary folder (0700, files 0600),
        removed when the block ends."""
        bucket, key = _bucket(location), _key(location)
        folder = Path(tempfile.mkdtemp(prefix="eoy-snapshot-"))
        os.chmod(folder, DIR_MODE)
        try:
            with self.calls(f"reading {location}"):
                for name in self.files(location):
                    target = folder / name
                    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
                    with os.fdopen(fd, "wb") as fh:
                        self.client.download_fileobj(bucket, f"{key}/{name}", fh)
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    # -- retention --------------------------------------------------------------------
    def remove(self, location: str) -> list[str]:
        from botocore.exceptions import ClientError

        bucket, key = _bucket(location), _key(location)
        locked: list[str] = []
        with self.calls(f"removing {location}"):
            versions = list(self._versions(bucket, f"{key}/"))
            # the manifest first, so what stays reads as incomplete, never as complete
            versions.sort(key=lambda v: (not v["Key"].endswith(f"/{MANIFEST}"), v["Key"]))
            for version in versions:
                try:
                    self.client.delete_object(
                        Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"]
                    )
                except ClientError as exc:
                    if _code(exc) not in _DENIED_CODES:
                        raise
                    locked.append(self._url(version["Key"]))
        return sorted(set(locked))

    def set_legal_hold(self, location: str, on: bool) -> int:
        if not self.lock_enabled:
            return 0
        bucket, key = _bucket(location), _key(location)
        count = 0
        with self.calls(f"{'holding' if on else 'releasing'} {location}"):
            for version in self._versions(bucket, f"{key}/"):
                if version["marker"]:
                    continue
                self.client.put_object_legal_hold(
                    Bucket=bucket,
                    Key=version["Key"],
                    VersionId=version["VersionId"],
                    LegalHold={"Status": "ON" if on else "OFF"},
                )
                count += 1
        return count

    def lock_of(self, url: str) -> dict[str, Any]:
        """The retention and legal hold of an object's current version."""
        with self.calls(f"reading {url}"):
            head = self.client.head_object(Bucket=_bucket(url), Key=_key(url))
        return {
            "mode": head.get("ObjectLockMode"),
            "retain_until": head.get("ObjectLockRetainUntilDate"),
            "legal_hold": head.get("ObjectLockLegalHoldStatus"),
            "version_id": head.get("VersionId"),
        }

    # -- the district's copy ----------------------------------------------------------
    def put_copy(self, location: str, source: Path) -> str:
        key = _key(location)
        target = f"{key.rsplit('/', 1)[0]}/{part_name(key.rsplit('/', 1)[1], COPY)}/{source.name}"
        with self.calls(f"uploading the district's copy to {self._url(target)}"):
            self.client.upload_file(
                str(source),
                _bucket(location),
                target,
                ExtraArgs={"ContentType": "application/zip"},
            )
        return f"{S3_SCHEME}{_bucket(location)}/{target}"

    def link(self, copy_location: str, expires: timedelta) -> str:
        seconds = int(expires.total_seconds())
        name = _key(copy_location).rsplit("/", 1)[-1]
        with self.calls(f"signing a link to {copy_location}"):
            return str(
                self.client.generate_presigned_url(
                    "get_object",
                    Params={
                        "Bucket": _bucket(copy_location),
                        "Key": _key(copy_location),
                        "ResponseContentDisposition": f'attachment; filename="{name}"',
                    },
                    ExpiresIn=seconds,
                )
            )

    def sha256_of(self, url: str) -> str:
        digest = hashlib.sha256()
        with self.calls(f"reading {url}"):
            body = self.client.get_object(Bucket=_bucket(url), Key=_key(url))["Body"]
            for chunk in iter(lambda: body.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()


__all__ = [
    "COPY",
    "LOCK_MODES",
    "MAIN",
    "FolderStore",
    "Pending",
    "S3Store",
    "SnapshotStore",
    "StoreError",
    "is_object_root",
    "open_store",
    "retain_until",
    "store_for",
]
