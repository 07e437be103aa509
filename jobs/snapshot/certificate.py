"""Certificates a district can keep (`certificate`): a signed statement that its
student data of a school year was disposed of (`disposition`), and that the snapshot kept
before the delete was destroyed later (`copy_destroyed`).

A certificate is a canonical JSON document (`signing.canonical_json`) with a detached Ed25519
signature over its exact bytes. What it states is read from the ledger and checked against
the snapshots: the tables and their counts come from the ledger's delete events (one per
part: `main`, `delta-<n>`) and must equal each part's manifest; nothing here knows the
names of the tables. Issued certificates are kept in `eoy_runner.certificates` (the
document, its signature, sha256 and key fingerprint). The same facts certified again give
back the certificate already issued, so a district is never handed two documents for one
disposition; new facts (a later part, a purge) make a new one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobs import __version__
from jobs.config import SIGNING_KEY_ENV, Settings
from jobs.errors import EoyError
from jobs.scope import current_scope
from jobs.scope.sql import district_name_sql
from jobs.snapshot.layout import SnapshotError
from jobs.snapshot.signing import (
    ALGORITHM,
    canonical_json,
    fingerprint,
    load_private_key,
    sign,
    signing_key_path,
)
from jobs.snapshot.store import MAIN, store_for
from jobs.snapshot.writer import settle_parts
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import STEPS
from jobs.warehouse.ledger import events, get_run, utcnow

FORMAT = "eoy-certificate/1"
DISPOSITION = "disposition"
COPY_DESTROYED = "copy_destroyed"
KINDS = (DISPOSITION, COPY_DESTROYED)
JSON_NAME = "certificate.json"
SIGNATURE_NAME = "certificate.json.sig"
HTML_NAME = "certificate.html"
FILE_MODE = 0o644  # the district's to keep: counts and ids only
# what differs between two issues of the same facts
ISSUE_KEYS = ("issued_at", "issuer", "signing_key")
TITLES = {
    DISPOSITION: "Certificate of disposition of student data",
    COPY_DESTROYED: "Certificate of destruction of the snapshot copy",
}


class CertificateError(EoyError):
    """A certificate cannot be issued or written; the message says why and what to do."""


class NotCertifiable(CertificateError):
    """What was asked is not so (no completed reset, a restored one, nothing purged)."""

    exit_code = 1


class NoSigningKey(CertificateError):
    """EOY_SIGNING_KEY is not set: nothing can be signed."""


@dataclass(frozen=True)
class Certificate:
    """One issued certificate: its exact bytes, its signature, and who it is for."""

    district_id: str
    school_year: int
    kind: str
    document: bytes
    signature: bytes
    sha256: str
    key_fingerprint: str
    issued_at: str
    reused: bool = False  # the facts were certified already: this is that certificate

    @property
    def body(self) -> dict[str, Any]:
        return dict(json.loads(self.document))


# ---------------------------------------------------------------------------------------
# small forms
# ---------------------------------------------------------------------------------------
def utc_text(value: datetime | str) -> str:
    """A time as `YYYY-MM-DDTHH:MM:SSZ` (the ledger's naive times are UTC)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.replace(microsecond=0).isoformat() + "Z"


def school_year_label(year: int) -> str:
    return f"{year - 1}-{year % 100:02d}"


def _part(detail: dict[str, Any]) -> str:
    return str(detail.get("part") or MAIN)


def require_table(wh: Warehouse) -> None:
    if not wh.relation_exists("eoy_runner", "certificates"):
        raise CertificateError(
            "the ledger has no eoy_runner.certificates (the warehouse was initialised before "
            "certificates existed): run `eoy-reset init` to add it"
        )


# ---------------------------------------------------------------------------------------
# what the ledger says
# ---------------------------------------------------------------------------------------
def cycle_events(wh: Warehouse, district_id: str, school_year: int) -> list[dict[str, Any]]:
    """The district's events of the school year since its last completed restore."""
    found = events(wh, district_id, school_year)
    restored = [(e["step"], e["status"]) == ("restore", "completed") for e in found]
    starts = [i for i, yes in enumerate(restored) if yes]
    return found[starts[-1] + 1 :] if starts else found


def purge_events(wh: Warehouse, district_id: str, school_year: int) -> list[dict[str, Any]]:
    return [
        e
        for e in events(wh, district_id, school_year, "purge_snapshots")
        if e["status"] == "completed"
    ]


def purged_at(purges: list[dict[str, Any]], delete: dict[str, Any]) -> datetime | None:
    """When a deleted part's snapshot was purged: a purge naming its manifest, or (an older
    ledger) its path, after the delete."""
    detail = delete["detail"]
    for purge in purges:
        said = purge["detail"]
        if said.get("part") == "copy" or purge["at"] < delete["at"]:
            continue
        if said.get("manifest_sha256"):
            if said["manifest_sha256"] == detail.get("manifest_sha256"):
                return purge["at"]
        elif str(detail.get("path", "")).endswith("/" + str(said.get("path", ""))):
            return purge["at"]
    return None


def check_manifest(settings: Settings, location: str, sha: str, rows: dict[str, int]) -> None:
    """The part's manifest is the one the ledger recorded, with the same rows per table."""
    try:
        data = store_for(location, settings).manifest_bytes(location)
    except SnapshotError as exc:
        raise CertificateError(
            f"cannot read the snapshot manifest at {location} to check it against the ledger: {exc}"
        ) from None
    if data is None:
        raise CertificateError(
            f"the snapshot at {location} has no manifest and the ledger records no purge of "
            f"it: run `eoy-reset verify-snapshot {location}`; nothing was certified"
        )
    found = hashlib.sha256(data).hexdigest()
    if found != sha:
        raise CertificateError(
            f"the manifest at {location} is not the one the ledger recorded (sha256 "
            f"{found[:12]}…, ledger {sha[:12]}…): nothing was certified"
        )
    tables = json.loads(data).get("tables", {})
    said = {str(t): int(v.get("rows") or 0) for t, v in tables.items()}
    if said != rows:
        raise CertificateError(
            f"the manifest at {location} counts other rows than the ledger's delete: "
            "nothing was certified"
        )


def _part_facts(
    settings: Settings, delete: dict[str, Any], purges: list[dict[str, Any]]
) -> dict[str, Any]:
    detail = delete["detail"]
    location, sha = str(detail["path"]), str(detail["manifest_sha256"])
    rows = {str(t): int(n) for t, n in (detail.get("rows") or {}).items()}
    gone = purged_at(purges, delete)
    if gone is None:
        check_manifest(settings, location, sha, rows)
    created = datetime.fromisoformat(str(detail.get("created_at") or delete["at"]))
    return {
        "part": _part(detail),
        "location": location,
        "manifest_sha256": sha,
        "created_at": utc_text(created),
        "deleted_at": utc_text(delete["at"]),
        "retain_until": utc_text(created + timedelta(days=settings.retention_days)),
        "purged_at": utc_text(gone) if gone is not None else None,
        "rows": rows,
        "rows_total": sum(rows.values()),
    }


def _tables(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = sorted({t for p in parts for t in p["rows"]})
    return [
        {
            "table": t,
            "rows_deleted": sum(p["rows"].get(t, 0) for p in parts),
            "rows_by_part": {p["part"]: p["rows"].get(t, 0) for p in parts},
        }
        for t in names
    ]


def _approval(wh: Warehouse, cycle: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The approved plan the run used (hash, approver, when), from its pause_syncs event."""
    for event in reversed(cycle):
        used = event["detail"].get("approval") if event["step"] == "pause_syncs" else None
        if used:
            at = wh.scalar(
                "select approved_at from eoy_runner.plan_approvals "
                "where plan_sha256 = %s and approved_by = %s",
                [used["plan_sha256"], used["approved_by"]],
            )
            return {
                "plan_sha256": str(used["plan_sha256"]),
                "approved_by": str(used["approved_by"]),
                "approved_at": utc_text(at) if at is not None else None,
            }
    return None


def _district(wh: Warehouse, district_id: str) -> dict[str, Any]:
    name = wh.scalar(district_name_sql(current_scope()), [district_id])
    return {"id": district_id, "name": name}


def disposition_facts(
    wh: Warehouse, settings: Settings, district_id: str, school_year: int
) -> dict[str, Any]:
    """What a certificate of disposition states, before it is signed."""
    run = get_run(wh, district_id, school_year)
    where = f"district {district_id!r} for school year {school_year}"
    if run is None:
        raise NotCertifiable(f"no reset of {where} is in the ledger: there is nothing to certify")
    if run["status"] == "restored":
        when = f" on {run['finished_at']:%Y-%m-%d}" if run["finished_at"] else ""
        raise NotCertifiable(
            f"the reset of {where} was restored{when}: its student "
            "data is back in the warehouse, so there is no disposition to certify until it is "
            "reset again"
        )
    if run["status"] != "completed":
        raise NotCertifiable(
            f"the reset of {where} is {run['status']}, not completed: certify it once "
            "`eoy-reset run` has completed it"
        )
    cycle = cycle_events(wh, district_id, school_year)
    deletes = [e for e in cycle if (e["step"], e["status"]) == ("delete", "completed")]
    if not deletes:
        raise CertificateError(f"the ledger holds no delete of {where}: nothing was certified")
    settle_parts([e["detail"] for e in deletes], settings)  # a part a kill left unplaced
    purges = purge_events(wh, district_id, school_year)
    parts = [_part_facts(settings, e, purges) for e in deletes]
    total = sum(p["rows_total"] for p in parts)
    if total != int(run["rows_deleted"] or 0):
        raise CertificateError(
            f"the ledger's run of {where} says {run['rows_deleted']} rows deleted, its delete "
            f"events {total}: nothing was certified"
        )
    steps = [
        {"step": e["step"], "at": utc_text(e["at"])}
        | ({"part": _part(e["detail"])} if "part" in e["detail"] else {})
        for e in cycle
        if e["status"] == "completed" and e["step"] in STEPS
    ]
    return {
        "format": FORMAT,
        "kind": DISPOSITION,
        "title": TITLES[DISPOSITION],
        "district": _district(wh, district_id),
        "school_year": int(school_year),
        "school_year_label": school_year_label(int(school_year)),
        "effective_reset_date": run["effective_reset_date"].isoformat(),
        "reset": {
            "started_at": utc_text(run["started_at"]),
            "completed_at": utc_text(run["finished_at"]),
            "steps": steps,
        },
        "tables": _tables(parts),
        "rows_deleted": total,
        "snapshot": {"retention_days": settings.retention_days, "parts": parts},
        "approval": _approval(wh, cycle),
    }


def _shared_copies(
    wh: Warehouse, district_id: str, school_year: int, purges: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each copy `share` made, and when a purge removed it (its folder: `copy`/`location`)."""
    found = []
    for share in events(wh, district_id, school_year, "share"):
        if share["status"] != "completed" or not share["detail"].get("copy"):
            continue
        copy = str(share["detail"]["copy"])
        folder = copy.rsplit("/", 1)[0]
        removed = next(
            (
                p["at"]
                for p in purges
                if p["at"] >= share["at"]
                and folder in (p["detail"].get("copy"), p["detail"].get("location"))
            ),
            None,
        )
        found.append(
            {
                "location": copy,
                "shared_at": utc_text(share["at"]),
                "removed_at": utc_text(removed) if removed is not None else None,
            }
        )
    return found


def copy_destroyed_facts(
    wh: Warehouse, settings: Settings, district_id: str, school_year: int
) -> dict[str, Any]:
    """What a certificate of destruction of the snapshot copy states: each part of the
    district's snapshot a purge removed, and each still kept."""
    deletes = [
        e for e in events(wh, district_id, school_year, "delete") if e["status"] == "completed"
    ]
    purges = purge_events(wh, district_id, school_year)
    destroyed, kept = [], []
    for delete in deletes:
        detail, gone = delete["detail"], purged_at(purges, delete)
        entry = {
            "part": _part(detail),
            "location": str(detail.get("path")),
            "manifest_sha256": str(detail.get("manifest_sha256")),
            "created_at": utc_text(str(detail.get("created_at") or delete["at"])),
            "rows_total": int(detail.get("rows_total") or 0),
        }
        if gone is not None:
            destroyed.append({**entry, "purged_at": utc_text(gone)})
        else:
            kept.append(entry)
    if not destroyed:
        raise NotCertifiable(
            f"no snapshot of district {district_id!r} for school year {school_year} was "
            "purged: there is no destroyed copy to certify (purge-snapshots issues it when "
            "it purges)"
        )
    return {
        "format": FORMAT,
        "kind": COPY_DESTROYED,
        "title": TITLES[COPY_DESTROYED],
        "district": _district(wh, district_id),
        "school_year": int(school_year),
        "school_year_label": school_year_label(int(school_year)),
        "destroyed": destroyed,
        "still_kept": kept,
        "shared_copies": _shared_copies(wh, district_id, school_year, purges),
    }


FACTS = {DISPOSITION: disposition_facts, COPY_DESTROYED: copy_destroyed_facts}


# ---------------------------------------------------------------------------------------
# issuing
# ---------------------------------------------------------------------------------------
def check_kind(kind: str) -> str:
    kind = (kind or "").strip().lower().replace("-", "_")
    if kind not in KINDS:
        raise CertificateError(f"unknown --kind {kind!r}: use {' or '.join(KINDS)}")
    return kind


def _facts_of(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ISSUE_KEYS}


def latest_issued(
    wh: Warehouse, district_id: str, school_year: int, kind: str
) -> Certificate | None:
    rows = wh.query(
        "select document, signature, document_sha256, key_fingerprint, issued_at "
        "from eoy_runner.certificates where district_id = %s and school_year = %s "
        "and kind = %s order by certificate_id desc limit 1",
        [district_id, int(school_year), kind],
    )
    if not rows:
        return None
    document, signature, sha, key, at = rows[0]
    return Certificate(
        district_id,
        int(school_year),
        kind,
        str(document).encode("utf-8"),
        base64.b64decode(str(signature)),
        str(sha),
        str(key),
        utc_text(at),
    )


def issue_certificate(
    settings: Settings,
    district_id: str,
    school_year: int,
    kind: str = DISPOSITION,
    *,
    wh: Warehouse | None = None,
) -> Certificate:
    """The district's certificate of the facts as they are now: the one issued already when
    they have not changed, else a new one signed with EOY_SIGNING_KEY and kept in the ledger."""
    if wh is None:
        with connect(settings) as own:
            return issue_certificate(settings, district_id, school_year, kind, wh=own)
    kind = check_kind(kind)
    require_table(wh)
    facts = FACTS[kind](wh, settings, district_id, int(school_year))
    latest = latest_issued(wh, district_id, school_year, kind)
    if latest is not None and _facts_of(latest.body) == facts:
        return replace(latest, reused=True)
    path = signing_key_path()
    if path is None:
        raise NoSigningKey(
            f"no signing key: set {SIGNING_KEY_ENV} to the private key file "
            "(`eoy-reset keygen --out DIR` makes one) to issue certificates"
        )
    key = load_private_key(path)
    issued_at = utcnow()
    key_fingerprint = fingerprint(key.public_key())
    doc = {
        **facts,
        "issued_at": utc_text(issued_at),
        "issuer": {"tool": "eoy-reset", "version": __version__},
        "signing_key": {"algorithm": ALGORITHM, "fingerprint_sha256": key_fingerprint},
    }
    data = canonical_json(doc)
    signature = sign(key, data)
    cert = Certificate(
        district_id,
        int(school_year),
        kind,
        data,
        signature,
        hashlib.sha256(data).hexdigest(),
        key_fingerprint,
        doc["issued_at"],
    )
    wh.execute(
        "insert into eoy_runner.certificates (district_id, school_year, kind, issued_at, "
        "document_sha256, key_fingerprint, document, signature) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s)",
        [
            district_id,
            int(school_year),
            kind,
            issued_at,
            cert.sha256,
            cert.key_fingerprint,
            data.decode("utf-8"),
            base64.b64encode(signature).decode("ascii"),
        ],
    )
    return cert


# ---------------------------------------------------------------------------------------
# the files
# ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Written:
    """What `eoy-reset certificate` wrote, for its output."""

    district_id: str
    school_year: int
    kind: str
    document_sha256: str
    key_fingerprint: str
    issued_at: str
    reused: bool
    json_path: Path
    signature_path: Path
    html_path: Path


def certificate_files(cert: Certificate) -> dict[str, bytes]:
    """The three files of a certificate, by name."""
    from jobs.snapshot.certificate_html import render_certificate

    return {
        JSON_NAME: cert.document,
        SIGNATURE_NAME: cert.signature,
        HTML_NAME: render_certificate(cert.body).encode("utf-8"),
    }


def write_certificate(cert: Certificate, out: Path) -> Written:
    """certificate.json, certificate.json.sig and certificate.html in `out` (one folder per
    certificate: another district's certificate there is never replaced)."""
    out = Path(out)
    _check_folder(out, cert)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, data in certificate_files(cert).items():
            tmp = out / f".{name}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, out / name)
    except OSError as exc:
        raise CertificateError(
            f"cannot write the certificate into {out}: {exc.strerror or exc}; choose a "
            "writable --out"
        ) from None
    return Written(
        cert.district_id,
        cert.school_year,
        cert.kind,
        cert.sha256,
        cert.key_fingerprint,
        cert.issued_at,
        cert.reused,
        out / JSON_NAME,
        out / SIGNATURE_NAME,
        out / HTML_NAME,
    )


def _check_folder(out: Path, cert: Certificate) -> None:
    if out.exists() and not out.is_dir():
        raise CertificateError(f"--out {out} is a file: give a folder for the certificate")
    present = out / JSON_NAME
    if not present.is_file():
        return
    try:
        doc = json.loads(present.read_bytes())
        same = (doc["district"]["id"], doc["school_year"], doc["kind"]) == (
            cert.district_id,
            cert.school_year,
            cert.kind,
        )
    except (OSError, ValueError, KeyError, TypeError):
        same = False
    if not same:
        raise CertificateError(
            f"{present} is another certificate: give each certificate a folder of its own "
            "(--out), so none is replaced"
        )


def certify(
    settings: Settings, district_id: str, school_year: int, kind: str, out: Path
) -> Written:
    """`eoy-reset certificate`: issue (or find) the certificate and write its files."""
    with connect(settings) as wh:
        cert = issue_certificate(settings, district_id, school_year, kind, wh=wh)
        written = write_certificate(cert, out)
        wh.execute(
            "update eoy_runner.certificates set written_to = %s where document_sha256 = %s",
            [str(Path(out).resolve()), cert.sha256],
        )
    return written
