"""Where snapshots live: safe paths, manifests, and which snapshots are complete.

A snapshot is `<root>/<school_year>/<safe_segment(district_id)>/` holding one Parquet file per
deleted table and `manifest.json`, written last. No manifest means incomplete.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

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
