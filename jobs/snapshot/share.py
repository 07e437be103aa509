"""`eoy-reset share`: the district's copy next to its snapshot in the object store, and a
presigned link to download it that expires. The ledger records who shared what and
until when, never the link itself: whoever holds a link can download the copy."""

from __future__ import annotations

import getpass
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobs.config import ConfigError, Settings
from jobs.snapshot.copy import export_for_district
from jobs.snapshot.retention import record_event, utcnow
from jobs.snapshot.store import SnapshotStore, StoreError, open_store
from jobs.warehouse.connection import connect

# a presigned (SigV4) link works at most seven days
MAX_EXPIRY = timedelta(days=7)
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def parse_expiry(text: str) -> timedelta:
    """`7d`, `12h`, `30m` as a duration, from one minute up to seven days."""
    found = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text or "")
    if not found:
        raise ConfigError(f"--expires {text!r} is not a duration: use 7d, 12h or 30m")
    expires = timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    if not timedelta(minutes=1) <= expires <= MAX_EXPIRY:
        raise ConfigError(
            f"--expires {text!r}: a link works from 1m up to 7d (the longest an S3 presigned "
            "link can be valid)"
        )
    return expires


def _keep_with_snapshot(
    settings: Settings,
    store: SnapshotStore,
    district_id: str,
    school_year: int,
    main: str,
    copy: str,
    from_snapshot: bool,
) -> None:
    """The copy lives and dies with the district's snapshot: one purged while the copy was
    uploading takes the copy with it, and one under legal hold holds the copy too."""
    folder = copy.rsplit("/", 1)[0]
    if from_snapshot and not store.is_complete(main):
        store.remove(folder)
        raise StoreError(
            f"the snapshot of district {district_id!r} for school year {school_year} was "
            "purged while its copy was being shared: the copy was removed and no link made"
        )
    with connect(settings) as wh:
        on_legal_hold = wh.scalar(
            "select count(*) from eoy_runner.legal_holds where district_id = %s", [district_id]
        )
    if on_legal_hold:
        store.set_legal_hold(folder, True)


def share_copy(
    settings: Settings,
    district_id: str,
    school_year: int,
    fmt: str,
    expires: timedelta,
    shared_by: str | None = None,
) -> dict[str, Any]:
    """Write the district's copy (as `export` makes it) beside its snapshot and sign a link to
    it; returns where the copy is, the link and when it expires."""
    store = open_store(settings)
    if not store.object_store:
        raise StoreError(
            f"links need an object store: the snapshot root {store.root} is a folder; use "
            "`eoy-reset export` and hand the file over, or an s3://bucket/prefix snapshot root"
        )
    who = shared_by or getpass.getuser()
    main = store.location(school_year, district_id)
    with tempfile.TemporaryDirectory(prefix="eoy-share-") as scratch:
        doc = export_for_district(settings, district_id, school_year, fmt, Path(scratch))
        copy = store.put_copy(main, Path(doc["path"]))
    from_snapshot = "snapshot" in str(doc["source"])
    _keep_with_snapshot(settings, store, district_id, school_year, main, copy, from_snapshot)
    link = store.link(copy, expires)
    expires_at = datetime.now(UTC) + expires
    rows_total = sum(int(t["rows"]) for t in doc["tables"].values())
    with connect(settings) as wh:
        record_event(
            wh,
            district_id,
            school_year,
            "share",
            "completed",
            {
                "copy": copy,
                "format": doc["format"],
                "source": doc["source"],
                "rows_total": rows_total,
                "shared_by": who,
                "shared_at": utcnow().isoformat(),
                "expires_at": expires_at.replace(tzinfo=None).isoformat(timespec="seconds"),
            },
        )
    return {
        "district_id": district_id,
        "school_year": int(school_year),
        "copy": copy,
        "format": doc["format"],
        "source": doc["source"],
        "rows_total": rows_total,
        "shared_by": who,
        "expires_at": expires_at.replace(tzinfo=None).isoformat(timespec="seconds"),
        "link": link,
    }
