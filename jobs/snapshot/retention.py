"""How long snapshots stay (SPEC §7): purge after the retention window, legal holds that stop it,
and the ledger events that say when a snapshot went."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.snapshot.layout import SnapshotError, iter_snapshots, read_manifest


# ---------------------------------------------------------------------------------------
# ledger: purge and legal holds
# ---------------------------------------------------------------------------------------
def record_event(
    wh: Any,
    district_id: str,
    school_year: int | None,
    step: str,
    status: str,
    detail: dict[str, Any],
) -> None:
    """Append one event to eoy_runner.reset_events (no student PII in detail)."""
    cast = "%s::jsonb" if wh.target == "postgres" else "cast(%s as json)"
    wh.execute(
        'insert into eoy_runner.reset_events (district_id, school_year, step, status, "at", '
        f"detail) values (%s, %s, %s, %s, %s, {cast})",
        [district_id, school_year, step, status, utcnow(), json.dumps(detail, sort_keys=True)],
    )


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _held_districts(wh: Any) -> set[str]:
    return {r[0] for r in wh.query("select district_id from eoy_runner.legal_holds")}


def purge_snapshots(
    settings: Settings,
    older_than_days: int = 90,
    now: datetime | None = None,
    dry_run: bool = False,
    confirm: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """Remove snapshots created more than `older_than_days` ago, except under legal hold.

    Every snapshot found is listed with a status: `purged` (or `would_purge` in a dry run),
    `held` or `kept`. `confirm` sees the snapshots about to go before any does, and raises to
    stop. Each purge is recorded in the ledger, so status, export and the report can say
    when the snapshot went.
    """
    from jobs.warehouse.connection import connect

    if older_than_days < 0:
        raise SnapshotError("--older-than must be zero or more days")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    cutoff = now - timedelta(days=older_than_days)
    root = Path(settings.snapshot_root).resolve()
    found: list[dict[str, Any]] = []
    with connect(settings) as wh:
        held = _held_districts(wh)
        for folder in iter_snapshots(root):
            try:
                manifest = read_manifest(folder)
                created = datetime.fromisoformat(str(manifest["created_at"]))
                district, year = str(manifest["district_id"]), int(manifest["school_year"])
                rows = sum(int(t.get("rows") or 0) for t in manifest.get("tables", {}).values())
            except (SnapshotError, KeyError, ValueError, TypeError, AttributeError):
                continue  # not ours to judge: verify-snapshot reports it
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            if created >= cutoff:
                status = "kept"
            elif district in held:
                status = "held"
            elif folder.resolve().parent.parent != root:
                continue  # a symlinked folder: never delete outside the root
            else:
                status = "would_purge"
            found.append(
                {
                    "district_id": district,
                    "school_year": year,
                    "status": status,
                    "path": str(folder),
                    "created_at": created.isoformat(),
                    "age_days": (now - created).days,
                    "rows": rows,
                    "purged_at": None,
                }
            )
        going = [e for e in found if e["status"] == "would_purge"]
        if going and not dry_run:
            if confirm is not None:
                confirm(going)
            for entry in going:
                folder = Path(entry["path"])
                shutil.rmtree(folder)
                at = utcnow()
                record_event(
                    wh,
                    entry["district_id"],
                    entry["school_year"],
                    "purge_snapshots",
                    "completed",
                    {
                        "path": str(folder.relative_to(root)),
                        "created_at": entry["created_at"],
                        "older_than_days": older_than_days,
                    },
                )
                entry.update(status="purged", purged_at=at.replace(tzinfo=UTC).isoformat())
    return {
        "snapshot_root": str(root),
        "older_than_days": older_than_days,
        "cutoff": cutoff.isoformat(),
        "dry_run": dry_run,
        "snapshots": found,
        "purged": [e for e in found if e["status"] == "purged"],
        "would_purge": [e for e in found if e["status"] == "would_purge"],
        "held": [e for e in found if e["status"] == "held"],
        "kept": [e for e in found if e["status"] == "kept"],
    }


def purges(wh: Any, school_year: int | None = None) -> dict[tuple[str, int], datetime]:
    """When each district's snapshot of a school year (any part) was last purged (UTC)."""
    where = "step = 'purge_snapshots' and status = 'completed'"
    params: list[Any] = []
    if school_year is not None:
        where += " and school_year = %s"
        params.append(int(school_year))
    out: dict[tuple[str, int], datetime] = {}
    for district, year, at in wh.query(
        f'select district_id, school_year, "at" from eoy_runner.reset_events where {where}',
        params,
    ):
        key = (str(district), int(year))
        if key not in out or at > out[key]:
            out[key] = at
    return out


def purged_since(
    purged: dict[tuple[str, int], datetime],
    district_id: str,
    school_year: int,
    since: datetime | str | None,
) -> datetime | None:
    """The purge of the district's snapshot, when it came after `since` (the run's start):
    a snapshot taken again after a purge is there."""
    at = purged.get((district_id, int(school_year)))
    if at is None:
        return None
    if isinstance(since, str):
        since = datetime.fromisoformat(since)
    if since is not None:
        since = since.replace(tzinfo=None) if since.tzinfo else since
        if at.replace(tzinfo=None) < since:
            return None
    return at


def set_hold(
    settings: Settings, district_id: str, held: bool, reason: str | None = None
) -> dict[str, Any]:
    """Put a district's snapshots under legal hold, or lift it; recorded in the ledger."""
    from jobs.warehouse.connection import connect

    with connect(settings) as wh:
        if not wh.scalar(
            "select count(*) from app.districts where district_id = %s", [district_id]
        ):
            raise SnapshotError(f"unknown district {district_id!r}: it is not in app.districts")
        with wh.transaction():
            was_held = bool(
                wh.scalar(
                    "select count(*) from eoy_runner.legal_holds where district_id = %s",
                    [district_id],
                )
            )
            if held:
                wh.execute(
                    "insert into eoy_runner.legal_holds (district_id, held_at, reason) "
                    "values (%s, %s, %s) on conflict (district_id) do update "
                    "set reason = excluded.reason",
                    [district_id, utcnow(), reason],
                )
            else:
                wh.execute(
                    "delete from eoy_runner.legal_holds where district_id = %s", [district_id]
                )
            record_event(
                wh,
                district_id,
                None,
                "hold" if held else "release",
                "completed",
                {"was_held": was_held},
            )
    return {"district_id": district_id, "held": held, "was_held": was_held}


def mark_purged(settings: Settings, doc: dict[str, Any]) -> dict[str, Any]:
    """A status document with `snapshot_purged_at` per district (None: not purged)."""
    from jobs.warehouse.connection import connect

    with connect(settings) as wh:
        purged = purges(wh, doc["school_year"])
    for d in doc["districts"]:
        d["snapshot_purged_at"] = purged_since(
            purged, d["district_id"], doc["school_year"], d.get("started_at")
        )
    return doc


def purged_on(settings: Settings, district_id: str, school_year: int) -> datetime | None:
    """When the district's snapshot of the school year was purged after its latest run began."""
    from jobs.warehouse.connection import connect

    with connect(settings) as wh:
        started = wh.scalar(
            "select started_at from eoy_runner.reset_runs "
            "where district_id = %s and school_year = %s",
            [district_id, int(school_year)],
        )
        return purged_since(purges(wh, school_year), district_id, school_year, started)
