"""Snapshots (SPEC §7): their layout and manifests, fingerprints, writing and verifying, the
district's copy, retention and holds."""

from jobs.snapshot.copy import export_for_district
from jobs.snapshot.layout import SnapshotError, read_manifest
from jobs.snapshot.retention import purge_snapshots, set_hold
from jobs.snapshot.source import consistent_view
from jobs.snapshot.verify import verify_snapshot
from jobs.snapshot.writer import write_table

__all__ = [
    "SnapshotError",
    "consistent_view",
    "export_for_district",
    "purge_snapshots",
    "read_manifest",
    "set_hold",
    "verify_snapshot",
    "write_table",
]
