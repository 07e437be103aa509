"""Where snapshots live and how long they stay (SPEC §7): safe paths, manifests, purge, holds.

A snapshot is `<root>/<school_year>/<safe_segment(district_id)>/` holding one Parquet file per
deleted table and `manifest.json`, written last. No manifest means incomplete.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.errors import EoyError

MANIFEST = "manifest.json"
FORMAT = "eoy-snapshot/1"
DIR_MODE = 0o700
FILE_MODE = 0o600
MAX_SEGMENT = 100
_SAFE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


class SnapshotError(EoyError):
    """A snapshot is missing, incomplete or unsafe; the message says which and what to do."""


# ---------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------
def safe_segment(district_id: str) -> str:
    """The folder name of a district: the id itself when safe, else an unambiguous encoding.

    Safe ids ([A-Za-z0-9._-], not starting with '.', at most 100 characters) stay as they
    are. Others become `~` + lowercase unpadded base32 of the UTF-8 bytes (reversible), or,
    when that would be longer than 100 characters, `~~` + the SHA-256 hex of the bytes (the
    real id is in the manifest). Safe ids never start with `~`, so the forms cannot collide.
    """
    if not isinstance(district_id, str) or district_id == "":
        raise SnapshotError("a district id must be a non-empty string")
    if len(district_id) <= MAX_SEGMENT and _SAFE.fullmatch(district_id):
        return district_id
    raw = district_id.encode("utf-8", "surrogatepass")
    encoded = base64.b32encode(raw).decode("ascii").rstrip("=").lower()
    if len(encoded) + 1 <= MAX_SEGMENT:
        return "~" + encoded
    return "~~" + hashlib.sha256(raw).hexdigest()


def segment_to_id(segment: str) -> str | None:
    """The district id a folder name stands for, when the encoding is reversible."""
    if segment.startswith("~~"):
        return None
    if segment.startswith("~"):
        body = segment[1:].upper()
        body += "=" * (-len(body) % 8)
        return base64.b32decode(body).decode("utf-8", "surrogatepass")
    return segment


def district_dir(snapshot_root: Path, school_year: int, district_id: str) -> Path:
    """`<root>/<school_year>/<segment>`, proven to stay inside the root."""
    year = int(school_year)
    root = Path(snapshot_root).resolve()
    path = (root / str(year) / safe_segment(district_id)).resolve()
    if path.parent.parent != root or not path.is_relative_to(root):
        raise SnapshotError(
            f"district id {district_id!r} would place its snapshot outside {root}: refused"
        )
    return path


def ensure_dir(path: Path) -> Path:
    """Create a folder (and parents) with mode 0700, whatever the umask."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(folder, DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# manifests
# ---------------------------------------------------------------------------------------
def manifest_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON without its own digest: edits show."""
    body = {k: v for k, v in manifest.items() if k != "manifest_digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a snapshot folder; SnapshotError when missing or unreadable."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise SnapshotError(f"no {MANIFEST} in {directory}: the snapshot is incomplete")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not an {FORMAT} manifest")
    return doc


def is_complete(directory: Path) -> bool:
    """A manifest is written last: its presence marks a complete snapshot."""
    try:
        read_manifest(directory)
    except SnapshotError:
        return False
    return True


def iter_snapshots(snapshot_root: Path) -> list[Path]:
    """Every district folder under the root that holds a manifest."""
    root = Path(snapshot_root)
    if not root.is_dir():
        return []
    found = []
    for year in sorted(root.iterdir()):
        if not (year.is_dir() and year.name.isdigit()):
            continue
        for folder in sorted(year.iterdir()):
            hidden = folder.name.startswith(".")  # staging folders of an export
            if folder.is_dir() and not hidden and (folder / MANIFEST).is_file():
                found.append(folder)
    return found


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
    settings: Settings, older_than_days: int = 90, now: datetime | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Remove snapshots created more than `older_than_days` ago, except under legal hold."""
    from jobs.warehouse import connect

    if older_than_days < 0:
        raise SnapshotError("--older-than must be zero or more days")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    cutoff = now - timedelta(days=older_than_days)
    result: dict[str, list[dict[str, Any]]] = {"purged": [], "held": [], "kept": []}
    root = Path(settings.snapshot_root).resolve()
    with connect(settings) as wh:
        held = _held_districts(wh)
        for folder in iter_snapshots(root):
            try:
                manifest = read_manifest(folder)
                created = datetime.fromisoformat(str(manifest["created_at"]))
                district, year = str(manifest["district_id"]), int(manifest["school_year"])
            except (SnapshotError, KeyError, ValueError):
                continue  # not ours to judge: verify-snapshot reports it
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            entry = {
                "district_id": district,
                "school_year": year,
                "path": str(folder.relative_to(root)),
                "created_at": created.isoformat(),
            }
            if created >= cutoff:
                result["kept"].append(entry)
            elif district in held:
                result["held"].append(entry)
            else:
                if folder.resolve().parent.parent != root:
                    continue  # a symlinked folder: never delete outside the root
                shutil.rmtree(folder)
                record_event(
                    wh,
                    district,
                    year,
                    "purge_snapshots",
                    "completed",
                    {
                        "path": entry["path"],
                        "created_at": entry["created_at"],
                        "older_than_days": older_than_days,
                    },
                )
                result["purged"].append(entry)
    return result


def set_hold(
    settings: Settings, district_id: str, held: bool, reason: str | None = None
) -> dict[str, Any]:
    """Put a district's snapshots under legal hold, or lift it; recorded in the ledger."""
    from jobs.warehouse import connect

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
