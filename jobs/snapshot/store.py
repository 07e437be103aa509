"""Where snapshot files are kept: a folder on the runner's disk (`jobs.snapshot.folder`), or a
bucket of an S3-compatible object store (`jobs.snapshot.s3`), behind one interface
(`jobs.snapshot.part`). `open_store` gives the store a snapshot root names, `store_for` the one
that holds a location the ledger recorded.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from jobs.config import Settings, aws_environment
from jobs.snapshot.folder import FolderStore
from jobs.snapshot.part import (
    COPY,
    LOCK_MODES,
    MAIN,
    S3_SCHEME,
    PartCommitted,
    Pending,
    SnapshotStore,
    StoreError,
    is_object_root,
    retain_until,
    split_part_name,
    thread_pool,
)
from jobs.snapshot.s3 import S3Store, bucket_of

_stores: dict[tuple[Any, ...], SnapshotStore] = {}
_stores_lock = threading.Lock()


def open_store(settings: Settings) -> SnapshotStore:
    """The store of the settings' snapshot root. An object store is made once per root and
    AWS settings and shared by the runner's workers (its clients are thread-safe)."""
    root = settings.snapshot_root
    if not is_object_root(root):
        return FolderStore(Path(root))
    aws = aws_environment()
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
        if is_object_root(settings.snapshot_root) and bucket_of(location) == bucket_of(
            str(settings.snapshot_root)
        ):
            return open_store(settings)
        return S3Store(
            f"{S3_SCHEME}{bucket_of(location)}",
            lock_mode=settings.object_lock_mode,
            days=settings.retention_days,
        )
    if is_object_root(settings.snapshot_root):
        return FolderStore(Path(location).parent.parent)
    return open_store(settings)


__all__ = [
    "COPY",
    "LOCK_MODES",
    "MAIN",
    "FolderStore",
    "PartCommitted",
    "Pending",
    "S3Store",
    "SnapshotStore",
    "StoreError",
    "is_object_root",
    "open_store",
    "retain_until",
    "split_part_name",
    "store_for",
    "thread_pool",
]
