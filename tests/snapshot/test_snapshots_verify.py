"""verify-snapshot catches every kind of damage and names the table; random rows round-trip."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from jobs.config import PROJECT_DIR, Settings
from jobs.reset.onepass import export_district
from jobs.snapshot.fingerprint import key_fingerprint_sql
from jobs.snapshot.layout import MANIFEST, manifest_digest
from jobs.snapshot.verify import verify_snapshot
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.schema import init_warehouse
from tests.snapshot.test_snapshots import file_rows, same, seed_district, source_rows


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One good snapshot (DuckDB); each test damages its own copy."""
    base = tmp_path_factory.mktemp("pristine")
    settings = Settings(
        target="duckdb", duckdb_path=base / "w.duckdb", snapshot_root=base / "snapshots"
    )
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        seed_district(wh, "D")
        return Path(export_district(wh, settings, "D", 2024)["path"])


@pytest.fixture
def snap(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "D"
    shutil.copytree(pristine, copy)
    return copy


def edit_manifest(
    folder: Path, change: Callable[[dict[str, Any]], None], reseal: bool = True
) -> None:
    """Edit the manifest; with reseal, also forge its digest (a careful forger)."""
    doc = json.loads((folder / MANIFEST).read_text())
    change(doc)
    if reseal:
        doc["manifest_digest"] = manifest_digest(doc)
    (folder / MANIFEST).write_text(json.dumps(doc))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def other_rows(folder: Path) -> None:
    """A well-formed file with different content, and a manifest sha256 forged to match."""
    from jobs.snapshot.layout import sha256_file

    path = folder / "assessments.parquet"
    table = pq.read_table(path)
    table = table.set_column(6, "scaled_score", pa.array([7] * table.num_rows, pa.int32()))
    pq.write_table(table, path)
    edit_manifest(folder, lambda d: d["tables"]["assessments"].update(sha256=sha256_file(path)))


DAMAGE: dict[str, tuple[Callable[[Path], object], str]] = {
    "missing manifest": (lambda f: (f / MANIFEST).unlink(), "manifest"),
    "manifest not json": (lambda f: (f / MANIFEST).write_text("{not json"), "manifest"),
    "manifest edited": (
        lambda f: edit_manifest(
            f, lambda d: d.update(created_at="2020-01-01T00:00:00+00:00"), reseal=False
        ),
        "manifest",
    ),
    "rows edited": (
        lambda f: edit_manifest(f, lambda d: d["tables"]["progress"].update(rows=3)),
        "progress",
    ),
    "fingerprint edited": (
        lambda f: edit_manifest(f, lambda d: d["tables"]["students"].update(fingerprint=1)),
        "students",
    ),
    "key fingerprint edited": (
        lambda f: edit_manifest(f, lambda d: d["tables"]["classrooms"].update(key_fingerprint=1)),
        "classrooms",
    ),
    "columns edited": (
        lambda f: edit_manifest(f, lambda d: d["tables"]["pathways"]["columns"].pop()),
        "pathways",
    ),
    "missing file": (lambda f: (f / "usage_sessions.parquet").unlink(), "usage_sessions"),
    "extra file": (lambda f: (f / "notes.txt").write_text("hi"), "notes.txt"),
    "leftover part file": (
        lambda f: (f / ".students.parquet.part").write_text(""),
        ".students.parquet.part",
    ),
    "byte flipped": (lambda f: flip_byte(f / "students.parquet"), "students"),
    "truncated": (lambda f: truncate(f / "progress.parquet"), "progress"),
    "emptied": (lambda f: (f / "classrooms.parquet").write_bytes(b""), "classrooms"),
    "swapped files": (
        lambda f: shutil.copy(f / "assessments.parquet", f / "usage_sessions.parquet"),
        "usage_sessions",
    ),
    "other rows, forged sha256": (other_rows, "assessments"),
}


def test_pristine_snapshot_verifies(snap: Path) -> None:
    result = verify_snapshot(snap)
    assert result["ok"], result["problems"]
    assert result["district_id"] == "D" and result["school_year"] == 2024


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damage_is_caught_and_the_table_named(snap: Path, kind: str) -> None:
    damage, culprit = DAMAGE[kind]
    damage(snap)
    result = verify_snapshot(snap)
    assert not result["ok"]
    assert any(p.startswith(f"{culprit}: ") for p in result["problems"]), result["problems"]


def test_cli_verify_exits_non_zero_with_one_line(snap: Path) -> None:
    truncate(snap / "progress.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "jobs", "verify-snapshot", str(snap)],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        check=False,
    )
    assert proc.returncode != 0
    assert "progress:" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_against_source_sees_a_changed_warehouse(wh: Warehouse, settings: Settings) -> None:
    seed_district(wh, "D")
    folder = Path(export_district(wh, settings, "D", 2024)["path"])
    assert verify_snapshot(folder, wh=wh)["ok"]
    wh.execute("update app.progress set score = 0.5 where progress_id = 'D:p1'")
    result = verify_snapshot(folder, wh=wh)
    assert not result["ok"]
    assert result["problems"] == [
        "progress: the warehouse rows differ from the snapshot's (content fingerprint)"
    ]
    wh.execute("delete from app.usage_sessions where district_id = 'D'")
    result = verify_snapshot(folder, settings=settings)
    assert any(p.startswith("usage_sessions: the warehouse has 0 rows") for p in result["problems"])


# ---------------------------------------------------------------------------------------
# random rows round-trip (hypothesis)
# ---------------------------------------------------------------------------------------
# PostgreSQL text cannot hold U+0000; surrogates are not UTF-8.
texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
maybe = st.none() | texts
stamps = st.none() | st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31))
scores = st.none() | st.floats(allow_nan=False, allow_infinity=False, width=64)
student_rows = st.lists(
    st.tuples(texts, maybe, maybe, maybe, maybe, stamps), max_size=6, unique_by=lambda r: r[0]
)
progress_rows = st.lists(st.tuples(maybe, maybe, stamps, scores), max_size=6)


@pytest.fixture
def random_wh(wh: Warehouse) -> Iterator[Warehouse]:
    seed_district(wh, "H", students=False)
    yield wh


def round_trip(wh: Warehouse, settings: Settings, students: list[Any], progress: list[Any]) -> None:
    for table in ("progress", "students"):
        wh.execute(f"delete from app.{table} where district_id = 'H'")
    for i, (sid, first, last, user, grade, created) in enumerate(students):
        wh.execute(
            "insert into app.students values (%s, 'H', 'H:s1', %s, %s, %s, %s, %s)",
            [f"{i}:{sid}", user, first, last, grade, created],
        )
    for i, (lesson, status, done, score) in enumerate(progress):
        wh.execute(
            "insert into app.progress values (%s, 'H', %s, 'imagine_math', %s, %s, %s, %s)",
            [f"p{i}", None, lesson, status, done, score],
        )
    manifest = export_district(wh, settings, "H", 2024)
    folder = Path(manifest["path"])
    for table in ("students", "progress"):
        assert same(file_rows(folder / f"{table}.parquet"), source_rows(wh, table, "H"))
        sql = key_fingerprint_sql(wh.target, table, "district_id = %s")
        entry = manifest["tables"][table]
        assert tuple(wh.query(sql, ["H"])[0]) == (entry["rows"], entry["key_fingerprint"])
    assert verify_snapshot(folder, wh=wh)["ok"]


def test_random_rows_round_trip(random_wh: Warehouse, settings: Settings) -> None:
    examples = 12 if random_wh.target == "duckdb" else 6

    @hsettings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(students=student_rows, progress=progress_rows)
    def check(students: list[Any], progress: list[Any]) -> None:
        round_trip(random_wh, settings, students, progress)

    check()
