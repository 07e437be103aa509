"""How long snapshots stay: purge after the retention window, legal holds that stop it,
and the ledger events that say when a snapshot went."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.scope import ensure_scope
from jobs.scope.sql import district_known_sql
from jobs.snapshot.layout import SnapshotError, safe_segment
from jobs.snapshot.store import COPY, MAIN, SnapshotStore, open_store, split_part_name


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
    `held`, `kept`, `locked` (the object store keeps it) or `busy` (another eoy-reset process
    works on the district). A district's shared copy goes with its main snapshot, and a copy
    left behind once its snapshot was purged (a `share` that uploaded meanwhile) is found and
    purged too. `confirm` sees what is about to go before anything does, and raises to stop.
    Each removal happens under the district's lock, after reading its legal hold again, and
    is recorded in the ledger; then each district's "copy destroyed" certificate is issued
    (signed with EOY_SIGNING_KEY; without it, it is listed as owed).
    """
    from jobs.warehouse.connection import connect

    if older_than_days < 0:
        raise SnapshotError("--older-than must be zero or more days")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    cutoff = now - timedelta(days=older_than_days)
    store = open_store(settings)
    root = store.root if store.object_store else str(Path(store.root).resolve())
    certified: dict[str, Any] = {"certificates": [], "certificates_owed": []}
    with connect(settings) as wh:
        held = _held_districts(wh)
        listed = [_entry(store, root, f, cutoff, now, held) for f in store.snapshots()]
        found = [e for e in listed if e is not None] + _orphan_copies(wh, store, held, now)
        going = [e for e in found if e["status"] == "would_purge"]
        if going and not dry_run:
            _usable_signing_key()  # a broken key is said before anything goes
            if confirm is not None:
                confirm(going)
            for entry in going:
                _purge_one(wh, store, root, entry, older_than_days)
            certified = _certify(settings, wh, [e for e in going if e["status"] == "purged"])
    by = {s: [e for e in found if e["status"] == s] for s in PURGE_STATUSES}
    return {
        "snapshot_root": root,
        "older_than_days": older_than_days,
        "cutoff": cutoff.isoformat(),
        "dry_run": dry_run,
        "snapshots": found,
        **by,
        **certified,
    }


PURGE_STATUSES = ("purged", "would_purge", "held", "locked", "kept", "busy")
# how long a purge waits for a district another eoy-reset process holds
LOCK_WAIT_SECONDS = 30.0


def _entry(
    store: SnapshotStore,
    root: str,
    folder: str,
    cutoff: datetime,
    now: datetime,
    held: set[str],
) -> dict[str, Any] | None:
    """One snapshot part as purge lists it, or None when it is not ours to judge."""
    try:
        manifest = store.read_manifest(folder)
        created = datetime.fromisoformat(str(manifest["created_at"]))
        district, year = str(manifest["district_id"]), int(manifest["school_year"])
        rows = sum(int(t.get("rows") or 0) for t in manifest.get("tables", {}).values())
        sha = store.manifest_sha(folder)
    except (SnapshotError, KeyError, ValueError, TypeError, AttributeError):
        return None  # verify-snapshot reports it
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    if created >= cutoff:
        status = "kept"
    elif district in held:
        status = "held"
    elif not store.object_store and str(Path(folder).resolve().parent.parent) != root:
        return None  # a symlinked folder: never delete outside the root
    else:
        status = "would_purge"
    return {
        "district_id": district,
        "school_year": year,
        "part": split_part_name(folder.rstrip("/").rsplit("/", 1)[-1])[1],
        "status": status,
        "path": str(folder),
        "manifest_sha256": sha,
        "created_at": created.isoformat(),
        "age_days": (now - created).days,
        "rows": rows,
        "purged_at": None,
        "locked": [],
    }


def _orphan_copies(
    wh: Any, store: SnapshotStore, held: set[str], now: datetime
) -> list[dict[str, Any]]:
    """Shared copies whose snapshot a purge removed already (a `share` that uploaded after
    it): each is purged too. Which district a copy is comes from the ledger's share events."""
    shared: dict[str, tuple[str, int, datetime]] = {}
    for event in wh.query_dicts(
        'select district_id, school_year, "at", cast(detail as '
        + ("text" if wh.target == "postgres" else "varchar")
        + ") as detail from eoy_runner.reset_events where step = 'share' "
        "and status = 'completed' order by event_id"
    ):
        copy = str(json.loads(event["detail"] or "{}").get("copy") or "")
        if copy:
            folder = copy.rsplit("/", 1)[0]
            shared[folder] = (str(event["district_id"]), int(event["school_year"]), event["at"])
    purged = set(purges(wh))
    found = []
    for copy in store.copies():
        segment = split_part_name(copy.rsplit("/", 1)[-1])[0]
        main = f"{copy.rsplit('/', 1)[0]}/{segment}"
        known = shared.get(copy)
        if known is None or store.is_complete(main) or known[:2] not in purged:
            continue  # goes with its snapshot, or not ours to judge
        district, year, at = known
        created = at.replace(tzinfo=UTC)
        found.append(
            {
                "district_id": district,
                "school_year": year,
                "part": COPY,
                "status": "held" if district in held else "would_purge",
                "path": copy,
                "manifest_sha256": None,
                "created_at": created.isoformat(),
                "age_days": (now - created).days,
                "rows": 0,
                "purged_at": None,
                "locked": [],
            }
        )
    return found


def _purge_one(
    wh: Any, store: SnapshotStore, root: str, entry: dict[str, Any], older_than_days: int
) -> None:
    """Remove one part (a main part with the district's shared copy) under the district's
    lock, once its hold is read again there; record what happened."""
    from jobs.warehouse.locks import LockError, release_district_lock, wait_district_lock

    district, year, folder = entry["district_id"], entry["school_year"], entry["path"]
    try:
        wait_district_lock(wh, district, year, timeout=LOCK_WAIT_SECONDS)
    except LockError:
        entry.update(status="busy")
        return
    try:
        if wh.scalar(
            "select count(*) from eoy_runner.legal_holds where district_id = %s", [district]
        ):
            entry.update(status="held")  # held while the operator read the list
            return
        if entry["part"] != COPY and store.manifest_sha(folder) != entry["manifest_sha256"]:
            entry.update(status="kept")  # another snapshot took its place meanwhile
            return
        relative = folder[len(root) :].lstrip("/") if folder.startswith(root) else folder
        copy = f"{folder}~{COPY}" if entry["part"] == MAIN else None
        # the store decides: objects under Object Lock stay, and are named
        locked = store.remove(folder)
        if not locked and copy is not None:
            locked = store.remove(copy)
        if locked:
            record_event(
                wh,
                district,
                year,
                "purge_snapshots",
                "refused",
                {
                    "path": relative,
                    "locked_objects": len(locked),
                    "reason": "retained by the object store (Object Lock)",
                },
            )
            entry.update(status="locked", locked=locked)
            return
        at = utcnow()
        detail = {
            "path": relative,
            "location": folder,
            "part": entry["part"],
            "created_at": entry["created_at"],
            "older_than_days": older_than_days,
        }
        if entry["manifest_sha256"]:
            detail["manifest_sha256"] = entry["manifest_sha256"]
        if copy is not None:
            detail["copy"] = copy
        record_event(wh, district, year, "purge_snapshots", "completed", detail)
        entry.update(status="purged", purged_at=at.replace(tzinfo=UTC).isoformat())
    finally:
        release_district_lock(wh, district, year)


def _usable_signing_key() -> None:
    """EOY_SIGNING_KEY, when set, must name a usable key before anything is purged."""
    from jobs.snapshot.signing import load_private_key, signing_key_path

    path = signing_key_path()
    if path is not None:
        load_private_key(path)


def _certify(settings: Settings, wh: Any, purged: list[dict[str, Any]]) -> dict[str, Any]:
    """The "copy destroyed" certificate of each district and school year purged: issued, or
    owed with the reason (no signing key: `eoy-reset certificate --kind copy_destroyed`)."""
    from jobs.snapshot.certificate import COPY_DESTROYED, CertificateError, issue_certificate

    issued, owed = [], []
    for district, year in sorted({(e["district_id"], e["school_year"]) for e in purged}):
        try:
            cert = issue_certificate(settings, district, year, COPY_DESTROYED, wh=wh)
        except CertificateError as exc:
            owed.append({"district_id": district, "school_year": year, "reason": str(exc)})
            continue
        issued.append(
            {
                "district_id": district,
                "school_year": year,
                "kind": COPY_DESTROYED,
                "document_sha256": cert.sha256,
                "key_fingerprint": cert.key_fingerprint,
            }
        )
    return {"certificates": issued, "certificates_owed": owed}


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
    """Put a district's snapshots under legal hold, or lift it; recorded in the ledger.
    Under the district's lock, so a purge that reads the hold under it never misses it."""
    from jobs.warehouse.connection import connect
    from jobs.warehouse.locks import release_district_lock, wait_district_lock

    with connect(settings) as wh:
        scope = ensure_scope(settings, wh)
        if not wh.scalar(district_known_sql(scope), [district_id]):
            raise SnapshotError(
                f"unknown district {district_id!r}: it is not in {scope.districts.qualified}"
            )
        wait_district_lock(wh, district_id, 0)  # the lock is the district's, any school year
        try:
            return _set_hold(wh, settings, district_id, held, reason)
        finally:
            release_district_lock(wh, district_id, 0)


def _set_hold(
    wh: Any, settings: Settings, district_id: str, held: bool, reason: str | None
) -> dict[str, Any]:
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
            wh.execute("delete from eoy_runner.legal_holds where district_id = %s", [district_id])
        objects = _legal_hold(settings, district_id, held)
        record_event(
            wh,
            district_id,
            None,
            "hold" if held else "release",
            "completed",
            {"was_held": was_held, "objects": objects},
        )
    return {"district_id": district_id, "held": held, "was_held": was_held, "objects": objects}


def _legal_hold(settings: Settings, district_id: str, on: bool) -> int:
    """An S3 legal hold on every object of the district's snapshots (every school year,
    every part, and its shared copies), or lifted; how many objects. Nothing on a folder."""
    store = open_store(settings)
    if not store.object_store:
        return 0
    mine = safe_segment(district_id)
    count = 0
    for location in [*store.snapshots(), *store.copies()]:
        if split_part_name(location.rsplit("/", 1)[-1])[0] == mine:
            count += store.set_legal_hold(location, on)
    return count


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


def purge_totals(doc: dict[str, Any]) -> dict[str, Any]:
    """The totals of a purge's document: districts and rows of the snapshots that go (or would
    go), the snapshots by status, and how many go."""
    from jobs.output import count_by, totals

    going = doc["purged"] + doc["would_purge"]
    return totals(
        len({e["district_id"] for e in going}),
        sum(int(e["rows"]) for e in going),
        count_by(doc["snapshots"]),
        snapshots=len(going),
    )
