"""Snapshots: their layout and manifests, the store that keeps them (a folder or an
S3 bucket), fingerprints, writing and verifying, the district's copy and its link, retention
and holds."""

from jobs.snapshot.copy import export_for_district
from jobs.snapshot.layout import SnapshotError, read_manifest
from jobs.snapshot.retention import purge_snapshots, set_hold
from jobs.snapshot.share import share_copy
from jobs.snapshot.source import consistent_view
from jobs.snapshot.store import SnapshotStore, open_store
from jobs.snapshot.verify import verify_snapshot
from jobs.snapshot.writer import write_table

__all__ = [
    "SnapshotError",
    "SnapshotStore",
    "consistent_view",
    "export_for_district",
    "open_store",
    "purge_snapshots",
    "read_manifest",
    "set_hold",
    "share_copy",
    "verify_snapshot",
    "write_table",
]
