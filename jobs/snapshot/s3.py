"""Snapshots in a bucket of an S3-compatible object store (`s3://bucket/prefix`).

There is no rename. The part's old manifest is removed first (so the prefix reads as
incomplete), the Parquet objects stream (multipart) to their final keys, the manifest goes to
a staging key `<year>/.<segment>.tmp-<pid>-<hex8>/manifest.json`, and after the commit it is
copied to `<segment>/manifest.json`, the last object written. On a bucket with Object Lock
every object of the part is then retained until its purge date.

Endpoint, region and credentials come from the standard AWS variables (`AWS_ENDPOINT_URL`,
`AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
`AWS_PROFILE`), read once by boto3; the data streams go through pyarrow's S3 file system with
the same endpoint and credentials.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jobs.config import aws_environment
from jobs.snapshot.layout import DIR_MODE, FILE_MODE, MANIFEST, safe_segment
from jobs.snapshot.part import (
    COPY,
    LOCK_MODES,
    MAIN,
    S3_SCHEME,
    STAGING,
    Committed,
    Pending,
    SnapshotStore,
    StoreError,
    leftover_pattern,
    manifest_of,
    part_name,
    refuse_committed,
    retain_until,
    split_part_name,
    staging_name,
)

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


def bucket_of(url: str) -> str:
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
        self.bucket, self.key = bucket_of(location), _key(location)
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
    key = aws_environment(with_home=True)
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
    def begin(
        self,
        school_year: int,
        district_id: str,
        part: str = MAIN,
        committed: Committed = None,
        listed: Any = None,
    ) -> Pending:
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
            waiting = {}
            for stale_key in stale:
                folder, _, file = stale_key[len(year_key) + 1 :].partition("/")
                data = self._get(self.bucket, stale_key) if file == MANIFEST else None
                if data is not None and STAGING.fullmatch(folder):
                    waiting[hashlib.sha256(data).hexdigest()] = folder
            refuse_committed(self, location, waiting, committed)
            # the manifest first: from here on the prefix reads as incomplete
            present = [obj["Key"] for obj in self._list(self.bucket, f"{key}/") if "Key" in obj]
            manifest = f"{key}/{MANIFEST}"
            self.delete_latest(self.bucket, [k for k in present if k == manifest])
            self.delete_latest(self.bucket, stale + [k for k in present if k != manifest])
        return S3Pending(self, location, staging_name(name))

    def put_in_place(self, location: str, staging: str) -> None:
        """Retain the part's objects until its purge date (on an Object Lock bucket), then
        copy its staging manifest to its final key, written last, and drop the staging one."""
        bucket, key = bucket_of(location), _key(location)
        staging_key = f"{key.rsplit('/', 1)[0]}/{staging}/{MANIFEST}"
        with self.calls(f"putting {location} in place"):
            data = self.client.get_object(Bucket=bucket, Key=staging_key)["Body"].read()
            manifest = manifest_of(data, self._url(staging_key))
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
        data = self._get(bucket_of(location), staging_key)
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
        return self._get(bucket_of(location), f"{_key(location)}/{MANIFEST}")

    def snapshots(self) -> list[str]:
        return self._district_folders(lambda _folder, name: name == MANIFEST)

    def copies(self) -> list[str]:
        return self._district_folders(lambda folder, _name: split_part_name(folder)[1] == COPY)

    def _district_folders(self, holds: Callable[[str, str], bool]) -> list[str]:
        """The year/district folders under the root with an object `holds` picks, by the
        folder's name and the object's."""
        base = f"{self.prefix}/" if self.prefix else ""
        found = set()
        with self.calls(f"listing {self.root}"):
            for obj in self._list(self.bucket, base):
                rest = obj.get("Key", "")[len(base) :].split("/")
                if (
                    len(rest) == 3
                    and rest[0].isdigit()
                    and not rest[1].startswith(".")
                    and holds(rest[1], rest[2])
                ):
                    found.add(self._url(f"{base}{rest[0]}/{rest[1]}"))
        return sorted(found)

    def files(self, location: str) -> list[str]:
        """The names of the objects directly under the part's prefix."""
        bucket, key = bucket_of(location), _key(location)
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
        bucket, key = bucket_of(location), _key(location)
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

        bucket, key = bucket_of(location), _key(location)
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
        bucket, key = bucket_of(location), _key(location)
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
            head = self.client.head_object(Bucket=bucket_of(url), Key=_key(url))
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
                bucket_of(location),
                target,
                ExtraArgs={"ContentType": "application/zip"},
            )
        return f"{S3_SCHEME}{bucket_of(location)}/{target}"

    def link(self, copy_location: str, expires: timedelta) -> str:
        seconds = int(expires.total_seconds())
        name = _key(copy_location).rsplit("/", 1)[-1]
        with self.calls(f"signing a link to {copy_location}"):
            return str(
                self.client.generate_presigned_url(
                    "get_object",
                    Params={
                        "Bucket": bucket_of(copy_location),
                        "Key": _key(copy_location),
                        "ResponseContentDisposition": f'attachment; filename="{name}"',
                    },
                    ExpiresIn=seconds,
                )
            )

    def sha256_of(self, url: str) -> str:
        digest = hashlib.sha256()
        with self.calls(f"reading {url}"):
            body = self.client.get_object(Bucket=bucket_of(url), Key=_key(url))["Body"]
            for chunk in iter(lambda: body.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()
