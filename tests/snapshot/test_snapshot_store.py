"""The snapshot store against a real S3 API (moto's server) and a folder: a part is complete
only once its manifest is in place, Object Lock keeps it from every delete until its purge
date, legal holds, links, and the store's faults as one line each."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import botocore.exceptions
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.config import Settings
from jobs.snapshot.layout import FORMAT, MANIFEST, safe_segment
from jobs.snapshot.store import (
    FolderStore,
    S3Store,
    SnapshotStore,
    StoreError,
    open_store,
)
from tests.support.s3_server import ThrowawayS3, aws_env, free_port

pytestmark = pytest.mark.s3


def _manifest(days_ago: int = 0) -> bytes:
    created = datetime.now(UTC) - timedelta(days=days_ago)
    doc = {"format": FORMAT, "district_id": "d1", "school_year": 2023}
    doc["created_at"] = created.isoformat()
    return json.dumps(doc).encode()


def _write_part(store: SnapshotStore, rows: int = 1000, days_ago: int = 0, publish: bool = True):
    pending = store.begin(2023, "d1")
    stream = pending.open_output("students.parquet")
    table = pa.table({"student_id": [f"s{i}" for i in range(rows)]})
    with pq.ParquetWriter(stream, table.schema) as writer:
        writer.write_table(table)
    stream.close()
    pending.write_manifest(_manifest(days_ago))
    pending.sync()
    if publish:
        pending.publish()
    return pending


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> SnapshotStore:
    if request.param == "folder":
        return open_store(Settings(snapshot_root=tmp_path / "snapshots"))
    root = request.getfixturevalue("s3_root")
    return open_store(Settings(snapshot_root=root))


def test_a_part_is_complete_only_once_its_manifest_is_in_place(store: SnapshotStore) -> None:
    pending = _write_part(store, publish=False)
    assert store.snapshots() == []
    assert not store.is_complete(pending.location)
    pending.publish()
    assert store.snapshots() == [pending.location]
    assert store.read_manifest(pending.location)["district_id"] == "d1"
    with store.local(pending.location) as folder:
        assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, "students.parquet"]
        assert pq.ParquetFile(folder / "students.parquet").metadata.num_rows == 1000
    # a new pass over the same part: in a folder the old part stays until the new one is
    # renamed over it; in a bucket (no rename) it reads as incomplete until the new commits
    again = _write_part(store, rows=10, publish=False)
    assert again.location == pending.location
    assert store.snapshots() == ([] if store.object_store else [pending.location])
    again.publish()
    with store.local(again.location) as folder:
        assert pq.ParquetFile(folder / "students.parquet").metadata.num_rows == 10


def test_a_committed_part_cut_off_before_its_manifest_is_settled(store: SnapshotStore) -> None:
    pending = _write_part(store, publish=False)
    waiting = store.waiting(2023)
    assert list(waiting.values()) == [pending.staging]
    (sha,) = waiting
    assert store.settle(pending.location, pending.staging, "0" * 64) is False
    assert store.snapshots() == []
    assert store.settle(pending.location, pending.staging, sha) is True
    assert store.manifest_sha(pending.location) == sha
    assert store.waiting(2023) == {}
    assert store.settle(pending.location, pending.staging, sha) is False


def test_s3_root_is_written_in_the_folder_layout(s3_root: str, s3_server: ThrowawayS3) -> None:
    store = open_store(Settings(snapshot_root=s3_root))
    pending = _write_part(store)
    bucket = urlsplit(s3_root).netloc
    keys = sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["snapshots/2023/d1/manifest.json", "snapshots/2023/d1/students.parquet"]
    assert pending.location == f"{s3_root}/2023/d1"
    odd = safe_segment("../x")
    assert odd.startswith("~")
    assert store.location(2023, "../x", "delta-1") == f"{s3_root}/2023/{odd}~delta-1"


def test_a_locked_snapshot_cannot_be_deleted_by_the_cli_or_directly(
    s3_root: str, s3_server: ThrowawayS3
) -> None:
    store = open_store(Settings(snapshot_root=s3_root, retention_days=30))
    assert isinstance(store, S3Store)
    pending = _write_part(store)
    bucket = urlsplit(s3_root).netloc
    client = s3_server.client()
    for name in (MANIFEST, "students.parquet"):
        head = client.head_object(Bucket=bucket, Key=f"snapshots/2023/d1/{name}")
        assert head["ObjectLockMode"] == "COMPLIANCE"
        until = head["ObjectLockRetainUntilDate"]
        assert timedelta(days=29) < until - datetime.now(UTC) <= timedelta(days=30)
        # the store itself refuses to delete the locked version
        with pytest.raises(botocore.exceptions.ClientError) as refused:
            client.delete_object(
                Bucket=bucket, Key=f"snapshots/2023/d1/{name}", VersionId=head["VersionId"]
            )
        assert refused.value.response["Error"]["Code"] == "AccessDenied"
    locked = store.remove(pending.location)
    assert locked == [f"{pending.location}/{MANIFEST}", f"{pending.location}/students.parquet"]
    assert store.snapshots() == [pending.location]  # still complete, still readable


def test_governance_mode_by_option(s3_root: str) -> None:
    store = open_store(Settings(snapshot_root=s3_root, object_lock_mode="GOVERNANCE"))
    assert isinstance(store, S3Store)
    pending = _write_part(store)
    assert store.lock_of(f"{pending.location}/{MANIFEST}")["mode"] == "GOVERNANCE"
    assert store.remove(pending.location) != []  # governance is never bypassed by the runner


def test_a_legal_hold_keeps_what_retention_would_let_go(s3_root: str) -> None:
    store = open_store(Settings(snapshot_root=s3_root, retention_days=0))
    pending = _write_part(store, days_ago=10)
    assert store.set_legal_hold(pending.location, True) == 2
    assert isinstance(store, S3Store)
    assert store.lock_of(f"{pending.location}/{MANIFEST}")["legal_hold"] == "ON"
    assert len(store.remove(pending.location)) == 2
    assert store.set_legal_hold(pending.location, False) == 2
    assert store.remove(pending.location) == []
    assert store.snapshots() == []


def test_a_link_downloads_the_copy_with_plain_http(s3_root: str, tmp_path: Path) -> None:
    store = open_store(Settings(snapshot_root=s3_root))
    pending = _write_part(store)
    copy = tmp_path / "d1_2023_csv.zip"
    copy.write_bytes(b"PK\x05\x06" + bytes(18))
    where = store.put_copy(pending.location, copy)
    assert where == f"{s3_root}/2023/d1~copy/d1_2023_csv.zip"
    link = store.link(where, timedelta(days=7))
    query = parse_qs(urlsplit(link).query)
    assert query["X-Amz-Expires"] == [str(7 * 24 * 3600)]
    with urllib.request.urlopen(link, timeout=10) as response:
        assert response.read() == copy.read_bytes()
    assert store.snapshots() == [pending.location]  # the copy is not a snapshot


def test_a_folder_root_says_links_need_an_object_store(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "snapshots")
    with pytest.raises(StoreError, match="links need an object store"):
        store.link(str(tmp_path / "x.zip"), timedelta(days=1))


# ---------------------------------------------------------------------------------------
# faults: each one line naming the cause
# ---------------------------------------------------------------------------------------
def _fails_in_one_line(store: SnapshotStore, needle: str) -> str:
    with pytest.raises(StoreError) as failed:
        _write_part(store)
    message = str(failed.value)
    assert "\n" not in message
    assert needle in message, message
    assert "eoy-test-secret" not in message
    return message


def test_an_unreachable_endpoint(s3_server: ThrowawayS3) -> None:
    env = {**s3_server.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    with aws_env(env):
        store = open_store(Settings(snapshot_root="s3://eoy-nowhere/snapshots"))
        began = time.monotonic()
        _fails_in_one_line(store, "cannot be reached")
        assert time.monotonic() - began < 60


def test_a_missing_bucket(s3_server: ThrowawayS3) -> None:
    with aws_env(s3_server.env()):
        store = open_store(Settings(snapshot_root="s3://eoy-no-such-bucket/snapshots"))
        _fails_in_one_line(store, "bucket 'eoy-no-such-bucket' does not exist")
        with pytest.raises(StoreError, match="does not exist"):
            store.check()


def test_credentials_the_store_refuses(s3_with_auth: str) -> None:
    env = {
        "AWS_ENDPOINT_URL": s3_with_auth,
        "AWS_ACCESS_KEY_ID": "AKIANOTAREALKEY00000",
        "AWS_SECRET_ACCESS_KEY": "not-the-secret",
        "AWS_REGION": "us-east-1",
    }
    with aws_env(env):
        store = open_store(Settings(snapshot_root="s3://eoy-any/snapshots"))
        message = _fails_in_one_line(store, "refused the credentials")
        assert "not-the-secret" not in message


def test_a_bucket_without_object_lock_keeps_nothing_past_a_purge(s3_server: ThrowawayS3) -> None:
    bucket = s3_server.make_bucket(object_lock=False)
    with aws_env(s3_server.env()):
        store = open_store(Settings(snapshot_root=f"s3://{bucket}/snapshots"))
        assert isinstance(store, S3Store)
        pending = _write_part(store)
        assert store.lock_of(f"{pending.location}/{MANIFEST}")["mode"] is None
        assert store.remove(pending.location) == []
        assert store.snapshots() == []
