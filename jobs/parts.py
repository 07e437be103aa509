"""Snapshot parts of one district's reset: `main` is the district's snapshot folder of SPEC §7;
rows that arrived after it was deleted go into `delta-<n>` parts, sibling folders named
`<district folder>~delta-<n>` (`~` never occurs in a district's folder name otherwise).

A part is written once; a part whose rows were deleted is never written again.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.contract import DELETED_TABLES
from jobs.export import Progress, consistent_view, export_district, shaped
from jobs.fingerprint import CONTENT_MOD, Fingerprint, fingerprint_batches
from jobs.snapshots import MANIFEST, district_dir, read_manifest, sha256_file
from jobs.verify import verify_snapshot
from jobs.warehouse import Warehouse

MAIN = "main"


def part_dir(settings: Settings, school_year: int, district_id: str, part: str) -> Path:
    main = district_dir(settings.snapshot_root, school_year, district_id)
    return main if part == MAIN else main.with_name(f"{main.name}~{part}")


def delta_number(part: str) -> int:
    return int(part.split("-", 1)[1]) if part.startswith("delta-") else 0


def export_part(
    wh: Warehouse,
    settings: Settings,
    district_id: str,
    school_year: int,
    part: str,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Snapshot the district's current rows into the part's folder; the export's manifest."""
    if part == MAIN:
        return export_district(wh, settings, district_id, school_year, progress=progress)
    final = part_dir(settings, school_year, district_id, part)
    # export into a private root, then move the finished folder into place in one rename
    scratch = final.parent / f".{final.name}.staging-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        made = export_district(
            wh,
            replace(settings, snapshot_root=scratch),
            district_id,
            school_year,
            progress=progress,
        )
        if final.exists():  # a part written before a crash and never deleted: stale
            shutil.rmtree(final)
        os.rename(made["path"], final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {**made, "path": str(final)}


def source_fingerprints(wh: Warehouse, district_id: str) -> dict[str, Fingerprint]:
    """Rows and content fingerprint of the district's live rows, per student-data table."""
    out: dict[str, Fingerprint] = {}
    with consistent_view(wh, district_id) as view:
        for table in DELETED_TABLES:
            out[table] = fingerprint_batches(table, shaped(view.batches(table), table))
    return out


def check_part(wh: Warehouse, folder: Path, district_id: str, school_year: int) -> list[str]:
    """Problems with a part: its files against its manifest, and its rows against the live
    rows of the district (empty list = it verifies and holds exactly the current rows)."""
    result = verify_snapshot(folder)
    problems = list(result["problems"])
    if problems:
        return problems
    manifest = read_manifest(folder)
    if manifest.get("district_id") != district_id or int(manifest["school_year"]) != school_year:
        return [
            f"manifest: it is the snapshot of {manifest.get('district_id')!r}, not this district"
        ]
    live = source_fingerprints(wh, district_id)
    for table in DELETED_TABLES:
        entry = manifest["tables"][table]
        fp = live[table]
        if fp.rows != entry["rows"]:
            problems.append(
                f"{table}: the warehouse has {fp.rows} rows, the snapshot {entry['rows']}"
            )
        elif fp.content != entry["fingerprint"]:
            problems.append(f"{table}: the warehouse rows differ from the snapshot's")
    return problems


def manifest_of(folder: Path) -> tuple[dict[str, Any], str]:
    return read_manifest(folder), sha256_file(folder / MANIFEST)


def sum_parts(manifests: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """(rows, content fingerprint) per table over several parts (fingerprints add up)."""
    out: dict[str, tuple[int, int]] = {}
    for table in DELETED_TABLES:
        rows = sum(int(m["tables"][table]["rows"]) for m in manifests)
        content = sum(int(m["tables"][table]["fingerprint"]) for m in manifests) % CONTENT_MOD
        out[table] = (rows, content)
    return out
