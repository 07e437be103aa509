"""`eoy-reset verify-certificate FILE --public-key KEY`: is this certificate what we signed,
and do the ledger and the snapshot still say what it says?

The signature is always checked, with nothing but the file, its detached signature (FILE.sig)
and the public key: a district checks it without us. Where the warehouse can be reached, the
ledger must hold the very certificate (its sha256) and still say what it states: the reset
completed and not restored since, each part's delete with the same manifest and counts, each
destroyed part purged. Where the snapshot can be reached, its manifest must be the one
certified (or, for a part purged since, gone). What could not be reached is said, never
taken for a pass of that check.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.errors import EoyError, first_line
from jobs.snapshot.certificate import (
    COPY_DESTROYED,
    FORMAT,
    KINDS,
    CertificateError,
    cycle_events,
    purge_events,
    purged_at,
)
from jobs.snapshot.layout import SnapshotError
from jobs.snapshot.signing import (
    canonical_json,
    fingerprint,
    load_public_key,
    signature_matches,
)
from jobs.snapshot.store import store_for
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.ledger import events, get_run


class Invalid(Exception):
    """The certificate does not hold; the message is the one line saying why."""


@dataclass
class Verdict:
    """The outcome of a check: valid, or the one reason it is not."""

    file: str
    valid: bool = False
    reason: str | None = None
    district_id: str | None = None
    school_year: int | None = None
    kind: str | None = None
    key_fingerprint: str | None = None
    checked: list[str] = field(default_factory=list)
    not_checked: dict[str, str] = field(default_factory=dict)


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise CertificateError(f"{what} {path} is a folder: give the file") from None
    except OSError as exc:
        raise CertificateError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None


def verify_certificate(
    path: Path,
    public_key: Path,
    settings: Settings | None = None,
    *,
    signature: Path | None = None,
    district_id: str | None = None,
    school_year: int | None = None,
) -> Verdict:
    """Check a certificate file; `settings`: also against that warehouse and its snapshots.
    `district_id`, `school_year`: the certificate must be for them."""
    key = load_public_key(public_key)
    verdict = Verdict(file=str(path), key_fingerprint=fingerprint(key))
    data = _read(path, "certificate")
    sig_path = signature or Path(f"{path}.sig")
    try:
        doc = _signed_document(data, _read(sig_path, "signature"), key, verdict)
        verdict.checked.append("signature")
        _expected(doc, district_id, school_year)
        if settings is not None:
            _against_warehouse(settings, doc, hashlib.sha256(data).hexdigest(), verdict)
    except Invalid as exc:
        verdict.reason = str(exc)
        return verdict
    verdict.valid = True
    return verdict


def _signed_document(data: bytes, sig: bytes, key: Any, verdict: Verdict) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        doc = None
    named = doc.get("signing_key") if isinstance(doc, dict) else None
    named = named if isinstance(named, dict) else {}
    if not signature_matches(key, data, sig):
        said = str(named.get("fingerprint_sha256") or "")
        given = str(verdict.key_fingerprint)
        if said and said != given:
            raise Invalid(
                f"signed with another key: the certificate names key {said[:16]}…, the "
                f"--public-key is {given[:16]}…"
            )
        raise Invalid(
            "the signature does not match the certificate: it was changed after it was signed, "
            "or the signature file belongs to another certificate"
        )
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("kind") not in KINDS:
        raise Invalid(f"signed, but not an {FORMAT} certificate")
    if canonical_json(doc) != data:
        raise Invalid("signed, but not in canonical form: not a certificate eoy-reset issued")
    if named.get("fingerprint_sha256") != verdict.key_fingerprint:
        raise Invalid("the certificate names another key than the one that signed it")
    verdict.district_id = str(doc["district"]["id"])
    verdict.school_year = int(doc["school_year"])
    verdict.kind = str(doc["kind"])
    return doc


def _expected(doc: dict[str, Any], district_id: str | None, school_year: int | None) -> None:
    said = str(doc["district"]["id"])
    if district_id is not None and said != district_id:
        raise Invalid(f"the certificate is for district {said!r}, not {district_id!r}")
    if school_year is not None and int(doc["school_year"]) != int(school_year):
        raise Invalid(f"the certificate is for school year {doc['school_year']}, not {school_year}")


def _against_warehouse(settings: Settings, doc: dict[str, Any], sha: str, verdict: Verdict) -> None:
    try:
        wh = connect(settings)
    except EoyError as exc:
        verdict.not_checked["ledger"] = first_line(exc)
        verdict.not_checked["snapshot"] = "the ledger was not reached"
        return
    with wh:
        district, year = str(doc["district"]["id"]), int(doc["school_year"])
        if not wh.relation_exists("eoy_runner", "certificates") or not wh.scalar(
            "select count(*) from eoy_runner.certificates where document_sha256 = %s "
            "and district_id = %s and school_year = %s and kind = %s",
            [sha, district, year, doc["kind"]],
        ):
            raise Invalid(
                f"the ledger of {settings.describe()} never issued this certificate "
                f"(district {district!r}, school year {year}, sha256 {sha[:12]}…)"
            )
        if doc["kind"] == COPY_DESTROYED:
            _destroyed_still_so(wh, settings, doc, verdict)
        else:
            _disposition_still_so(wh, settings, doc, verdict)
    verdict.checked.append("ledger")


def _disposition_still_so(
    wh: Warehouse, settings: Settings, doc: dict[str, Any], verdict: Verdict
) -> None:
    district, year = str(doc["district"]["id"]), int(doc["school_year"])
    run = get_run(wh, district, year)
    if run is None or run["status"] != "completed":
        now = "no reset" if run is None else f"the reset {run['status']}"
        raise Invalid(f"the ledger now says {now} for district {district!r}, school year {year}")
    deletes = {
        str(e["detail"].get("part") or "main"): e
        for e in cycle_events(wh, district, year)
        if (e["step"], e["status"]) == ("delete", "completed")
    }
    certified = {p["part"]: p for p in doc["snapshot"]["parts"]}
    later = sorted(set(deletes) - set(certified))
    if later:
        raise Invalid(
            f"the ledger has deleted part(s) {', '.join(later)} since: the certificate is "
            "incomplete, issue a new one"
        )
    purges = purge_events(wh, district, year)
    for part, said in certified.items():
        delete = deletes.get(part)
        detail = delete["detail"] if delete else {}
        rows = {str(t): int(n) for t, n in (detail.get("rows") or {}).items()}
        if detail.get("manifest_sha256") != said["manifest_sha256"] or rows != said["rows"]:
            raise Invalid(f"the ledger's delete of part {part} says otherwise than the certificate")
        assert delete is not None
        gone = purged_at(purges, delete)
        _snapshot_says(settings, said, gone is not None, verdict)


def _destroyed_still_so(
    wh: Warehouse, settings: Settings, doc: dict[str, Any], verdict: Verdict
) -> None:
    district, year = str(doc["district"]["id"]), int(doc["school_year"])
    purges = purge_events(wh, district, year)
    deletes = [e for e in events(wh, district, year, "delete") if e["status"] == "completed"]
    for said in doc["destroyed"]:
        sha = said["manifest_sha256"]
        match = [e for e in deletes if e["detail"].get("manifest_sha256") == sha]
        if not match or all(purged_at(purges, e) is None for e in match):
            raise Invalid(
                f"the ledger records no purge of part {said['part']} at {said['location']}"
            )
        _snapshot_says(settings, said, True, verdict)


def _snapshot_says(
    settings: Settings, part: dict[str, Any], purged: bool, verdict: Verdict
) -> None:
    """The part's manifest is the one certified, or, purged, gone."""
    location = str(part["location"])
    try:
        data = store_for(location, settings).manifest_bytes(location)
    except SnapshotError as exc:
        verdict.not_checked.setdefault("snapshot", first_line(exc))
        return
    found = hashlib.sha256(data).hexdigest() if data is not None else None
    if purged:
        if found == part["manifest_sha256"]:
            raise Invalid(f"the snapshot at {location} is still there, though recorded as purged")
    elif found is None:
        raise Invalid(f"the snapshot at {location} is gone and the ledger records no purge of it")
    elif found != part["manifest_sha256"]:
        raise Invalid(f"the manifest at {location} is no longer the one certified")
    if "snapshot" not in verdict.checked:
        verdict.checked.append("snapshot")
