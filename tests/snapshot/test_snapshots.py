"""Snapshots: exact round trips, fingerprints, consistent views, safe paths,
permissions, atomic replacement, purge and legal holds, on both targets."""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jobs.config import Settings
from jobs.reset.onepass import export_district
from jobs.snapshot.fingerprint import (
    arrow_schema,
    fingerprint_batches,
    key_fingerprint_python,
    key_fingerprint_sql,
)
from jobs.snapshot.layout import MANIFEST, SnapshotError, district_dir, safe_segment, segment_to_id
from jobs.snapshot.retention import purge_snapshots, set_hold
from jobs.snapshot.verify import verify_snapshot
from jobs.warehouse.connection import Warehouse
from jobs.warehouse.contract import DELETED_TABLES, TABLES

T = datetime(2024, 3, 4, 5, 6, 7, 123456)

# A district with NULLs, unicode names, microsecond timestamps, and an EMPTY pathways table.
SEED: dict[str, list[tuple[Any, ...]]] = {
    "students": [
        ("st1", "D", "s1", "zoe1", "Zoë", "O'Brien", "K", T),
        ("st2", "D", "s1", "li", "李雷", "Ñúñez 🙂", "12", T + timedelta(microseconds=1)),
        ("st3", "D", None, None, None, None, None, None),
        ('st,4|"x"', "D", "s1", "", "", "", "PK", datetime(1999, 12, 31, 23, 59, 59, 999999)),
    ],
    "classrooms": [
        ("c1", "D", "s1", "e1", "imagine_math", "Math 1 — Room ü", T),
        ("c2", "D", None, None, "imagine_math_facts", None, None),
    ],
    "classroom_enrollments": [("c1", "st1", "D"), ("c1", "st2", "D"), ("c2", "st3", "D")],
    "assessments": [
        ("a1", "D", "st1", "imagine_math", "benchmark", T, 1450),
        ("a2", "D", "st2", "imagine_math", "benchmark", None, None),
        ("a3", "D", "st1", "imagine_math_facts", "placement", T, -1),
    ],
    "progress": [
        ("p1", "D", "st1", "imagine_math", "L1", "completed", T, 0.1),
        ("p2", "D", "st1", "imagine_math", "L2", "in_progress", None, None),
        ("p3", "D", "st2", "imagine_math", "L1", "completed", T, 1e-300),
        ("p4", "D", "st2", "imagine_math", "L3", "completed", T, -123456.789),
    ],
    "pathways": [],
    "usage_sessions": [
        ("u1", "D", "st1", "imagine_math", T, 30),
        ("u2", "D", "st2", "imagine_math_facts", None, None),
    ],
}


def rows_for(district_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """SEED with its district id and row ids made unique to the district."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table, rows in SEED.items():
        keys = TABLES[table].primary_key
        cols = TABLES[table].column_names
        out[table] = []
        for row in rows:
            r = list(row)
            r[cols.index("district_id")] = district_id
            for k in keys:
                i = cols.index(k)
                r[i] = f"{district_id}:{r[i]}"
            for ref in ("student_id", "school_id", "educator_id", "classroom_id"):
                if ref in cols and ref not in keys and r[cols.index(ref)] is not None:
                    r[cols.index(ref)] = f"{district_id}:{r[cols.index(ref)]}"
            out[table].append(tuple(r))
    return out


def seed_district(wh: Warehouse, district_id: str, *, students: bool = True) -> None:
    """Insert one district by hand (district, school, educator, and the SEED rows)."""
    d = district_id
    wh.execute("insert into app.districts values (%s, %s, %s)", [d, f"District {d}", "TX"])
    wh.execute("insert into app.schools values (%s, %s, %s)", [f"{d}:s1", d, "School"])
    wh.execute(
        "insert into app.educators values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [f"{d}:e1", d, f"{d}:s1", "t@example.org", "Ann", "Lee", "teacher", T, T],
    )
    if not students:
        return
    for table in (
        "students",
        "classrooms",
        "classroom_enrollments",
        "assessments",
        "progress",
        "pathways",
        "usage_sessions",
    ):
        for row in rows_for(d)[table]:
            marks = ", ".join(["%s"] * len(row))
            wh.execute(f"insert into app.{table} values ({marks})", list(row))


def source_rows(wh: Warehouse, table: str, district_id: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(TABLES[table].column_names)
    return [
        tuple(r)
        for r in wh.query(f"select {cols} from app.{table} where district_id = %s", [district_id])
    ]


def file_rows(path: Path) -> list[tuple[Any, ...]]:
    return [tuple(d.values()) for d in pq.read_table(path).to_pylist()]


def same(a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> bool:
    return sorted(a, key=repr) == sorted(b, key=repr)


# ---------------------------------------------------------------------------------------
# round trip and fingerprints
# ---------------------------------------------------------------------------------------
def test_snapshot_round_trips_the_source_exactly(wh: Warehouse, settings: Settings) -> None:
    seed_district(wh, "D")
    seed_district(wh, "OTHER")
    manifest = export_district(wh, settings, "D", 2024)
    folder = Path(manifest["path"])
    assert folder == district_dir(settings.snapshot_root, 2024, "D")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MANIFEST] + [f"{t}.parquet" for t in DELETED_TABLES]
    )
    for table in DELETED_TABLES:
        expected = source_rows(wh, table, "D")
        got = file_rows(folder / f"{table}.parquet")
        assert same(got, expected), table
        assert manifest["tables"][table]["rows"] == len(SEED[table])
        assert pq.read_schema(folder / f"{table}.parquet").names == TABLES[table].column_names
    assert manifest["tables"]["pathways"]["rows"] == 0
    assert manifest["district_id"] == "D" and manifest["school_year"] == 2024
    assert manifest["target"] == wh.target and manifest["format"] == "eoy-snapshot/1"
    on_disk = json.loads((folder / MANIFEST).read_text())
    assert on_disk == {k: v for k, v in manifest.items() if k not in ("path", "manifest_sha256")}
    result = verify_snapshot(folder, wh=wh)
    assert result["ok"], result["problems"]
    assert result["manifest_sha256"] == manifest["manifest_sha256"]


def test_fingerprints_are_the_same_from_every_source(wh: Warehouse, settings: Settings) -> None:
    """The warehouse's rows, the file's rows and an Arrow table built in Python agree."""
    seed_district(wh, "D")
    manifest = export_district(wh, settings, "D", 2024)
    for table, rows in rows_for("D").items():
        schema = arrow_schema(table)
        built = pa.Table.from_pylist(
            [dict(zip(schema.names, r, strict=True)) for r in rows], schema=schema
        )
        fp = fingerprint_batches(table, built.to_batches(max_chunksize=2))
        entry = manifest["tables"][table]
        assert (fp.rows, fp.content, fp.key) == (
            entry["rows"],
            entry["fingerprint"],
            entry["key_fingerprint"],
        ), table
        keys = [
            [r[TABLES[table].column_names.index(k)] for k in TABLES[table].primary_key]
            for r in rows
        ]
        assert key_fingerprint_python(table, keys) == (entry["rows"], entry["key_fingerprint"])
        # the runner's SQL check of what it is about to delete gives the same numbers
        sql = key_fingerprint_sql(wh.target, table, "district_id = %s")
        assert tuple(wh.query(sql, ["D"])[0]) == (entry["rows"], entry["key_fingerprint"])


def test_fingerprint_sees_every_change() -> None:
    table = "progress"
    schema = arrow_schema(table)
    base = [dict(zip(schema.names, r, strict=True)) for r in rows_for("D")[table]]

    def fp(rows: list[dict[str, Any]]) -> int:
        return fingerprint_batches(table, [pa.RecordBatch.from_pylist(rows, schema=schema)]).content

    ref = fp(base)
    assert fp(list(reversed(base))) == ref  # order does not matter
    for change in (
        {"score": 0.10000000000000002},
        {"lesson_id": ""},
        {"lesson_id": None},
        {"completed_at": T + timedelta(microseconds=1)},
        {"status": "completed "},
    ):
        edited = [dict(base[0], **change), *base[1:]]
        assert fp(edited) != ref, change
    assert fp([*base, base[0]]) != ref  # a duplicated row shows


def test_consistent_view_ignores_writes_during_export(wh: Warehouse, settings: Settings) -> None:
    """A row committed by someone else mid-export is in no table of the snapshot."""
    seed_district(wh, "D")
    writer: Any = wh.con.cursor() if wh.target == "duckdb" else None
    if writer is None:
        import psycopg

        writer = psycopg.connect(settings.pg_dsn or "", autocommit=True)
    inserted = []

    def progress(table: str, rows: int) -> None:
        # the first table taken (children first); usage_sessions is taken later
        if table == "classroom_enrollments" and not inserted:
            writer.execute(
                "insert into app.usage_sessions values "
                "('late', 'D', 'D:st1', 'imagine_math', null, 5)"
            )
            inserted.append(True)

    try:
        manifest = export_district(wh, settings, "D", 2024, progress=progress)
    finally:
        writer.close()
    assert inserted
    assert manifest["tables"]["usage_sessions"]["rows"] == len(SEED["usage_sessions"])
    assert len(source_rows(wh, "usage_sessions", "D")) == len(SEED["usage_sessions"]) + 1


# ---------------------------------------------------------------------------------------
# safety: paths, permissions, atomic replacement
# ---------------------------------------------------------------------------------------
NASTY_IDS = [
    "../x",
    "..",
    ".",
    ".hidden",
    "a/b",
    "a\\b",
    "/abs",
    ";drop table app.students;--",
    "Zoë-区",
    "a b",
    "~x",
    "x" * 101,
    "y" * 2000,
    "nul\x00byte",
    "tab\tnew\nline\x7f",
    "COM1:",
    "*?[x]",
]
SEGMENT = re.compile(r"~~?[a-z0-9]{1,98}")


@pytest.mark.parametrize("district_id", NASTY_IDS)
def test_unsafe_ids_stay_inside_their_folder(tmp_path: Path, district_id: str) -> None:
    seg = safe_segment(district_id)
    assert SEGMENT.fullmatch(seg) and seg not in (".", "..")
    assert seg.startswith("~")
    folder = district_dir(tmp_path, 2024, district_id)
    assert folder.parent == (tmp_path / "2024").resolve()
    assert segment_to_id(seg) in (district_id, None)
    if len(district_id) < 50:
        assert segment_to_id(seg) == district_id  # short ids are reversible


def test_safe_ids_are_kept_and_encodings_never_collide() -> None:
    for plain in ("d-001", "District_7", "a.b", "x" * 100):
        assert safe_segment(plain) == plain
    segments = {safe_segment(i) for i in [*NASTY_IDS, "d-001", "x" * 100]}
    assert len(segments) == len(NASTY_IDS) + 2
    with pytest.raises(SnapshotError):
        safe_segment("")


@pytest.mark.parametrize("district_id", ["../escape", "a/b", "Zoë ;drop", "z" * 2000, "it's\\here"])
def test_export_of_an_unsafe_id_lands_inside_the_root(
    wh: Warehouse, settings: Settings, district_id: str
) -> None:
    seed_district(wh, district_id)
    manifest = export_district(wh, settings, district_id, 2024)
    root = Path(settings.snapshot_root).resolve()
    folder = Path(manifest["path"])
    assert folder.parent == root / "2024"
    assert manifest["district_id"] == district_id
    assert all(p.resolve().is_relative_to(root) for p in root.rglob("*"))
    assert [p for p in root.parent.iterdir() if p.name == "escape"] == []
    assert verify_snapshot(folder)["ok"]


def test_files_are_0600_and_folders_0700_whatever_the_umask(
    wh: Warehouse, settings: Settings
) -> None:
    seed_district(wh, "D")
    old = os.umask(0)
    try:
        manifest = export_district(wh, settings, "D", 2024)
    finally:
        os.umask(old)
    folder = Path(manifest["path"])
    for path in [folder, folder.parent, Path(settings.snapshot_root)]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_failed_export_leaves_the_previous_snapshot_whole(
    wh: Warehouse, settings: Settings
) -> None:
    seed_district(wh, "D")
    first = export_district(wh, settings, "D", 2024)
    wh.execute("delete from app.usage_sessions where district_id = %s", ["D"])

    def boom(table: str, rows: int) -> None:
        if table == "progress":
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        export_district(wh, settings, "D", 2024, progress=boom)
    folder = Path(first["path"])
    assert verify_snapshot(folder)["ok"]
    assert json.loads((folder / MANIFEST).read_text())["created_at"] == first["created_at"]
    assert [p.name for p in folder.parent.iterdir()] == ["D"]  # no staging leftovers
    second = export_district(wh, settings, "D", 2024)
    assert second["tables"]["usage_sessions"]["rows"] == 0
    assert verify_snapshot(folder)["ok"]


# ---------------------------------------------------------------------------------------
# purge and legal holds
# ---------------------------------------------------------------------------------------
def events(wh: Warehouse, step: str) -> list[dict[str, Any]]:
    return wh.query_dicts(
        "select district_id, school_year, status, detail from eoy_runner.reset_events "
        "where step = %s order by event_id",
        [step],
    )


def test_purge_respects_holds_and_records_each_purge(wh: Warehouse, settings: Settings) -> None:
    for d in ("D1", "D2", "D3"):
        seed_district(wh, d)
        export_district(wh, settings, d, 2024)
    set_hold(settings, "D2", held=True, reason="litigation 2024-17")
    root = Path(settings.snapshot_root)

    nothing = purge_snapshots(settings, older_than_days=90)
    assert nothing["purged"] == [] and len(nothing["kept"]) == 3

    later = datetime.now(UTC) + timedelta(days=91)
    done = purge_snapshots(settings, older_than_days=90, now=later)
    assert sorted(e["district_id"] for e in done["purged"]) == ["D1", "D3"]
    assert [e["district_id"] for e in done["held"]] == ["D2"]
    assert not (root / "2024" / "D1").exists() and not (root / "2024" / "D3").exists()
    assert verify_snapshot(root / "2024" / "D2")["ok"]
    purged = events(wh, "purge_snapshots")
    assert sorted(e["district_id"] for e in purged) == ["D1", "D3"]
    for e in purged:
        detail = e["detail"] if isinstance(e["detail"], dict) else json.loads(e["detail"])
        assert e["status"] == "completed" and detail["path"] == f"2024/{e['district_id']}"
    assert [e["district_id"] for e in events(wh, "hold")] == ["D2"]

    set_hold(settings, "D2", held=False)
    assert [e["district_id"] for e in events(wh, "release")] == ["D2"]
    again = purge_snapshots(settings, older_than_days=90, now=later)
    assert [e["district_id"] for e in again["purged"]] == ["D2"]


def test_hold_of_an_unknown_district_is_refused(wh: Warehouse, settings: Settings) -> None:
    with pytest.raises(SnapshotError, match="unknown district"):
        set_hold(settings, "nope", held=True)
    seed_district(wh, "D", students=False)
    set_hold(settings, "D", held=True)
    set_hold(settings, "D", held=True, reason="again")  # idempotent
    assert wh.query("select district_id, reason from eoy_runner.legal_holds") == [("D", "again")]
