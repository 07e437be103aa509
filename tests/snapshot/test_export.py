"""`eoy-reset export`: a district's copy, from the warehouse before its reset and from its
snapshot after it, as zipped CSV (with a README) or Parquet."""

from __future__ import annotations

import csv
import io
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.config import PROJECT_DIR, Settings
from jobs.reset.onepass import export_district
from jobs.snapshot.copy import export_for_district
from jobs.snapshot.layout import district_dir
from jobs.snapshot.source import ExportError
from jobs.warehouse.connection import Warehouse
from jobs.warehouse.contract import DELETED_TABLES, TABLES
from tests.snapshot.test_snapshots import SEED, same, seed_district, source_rows


def csv_tables(path: Path) -> dict[str, list[list[str]]]:
    with zipfile.ZipFile(path) as zf:
        return {
            name.removesuffix(".csv"): list(
                csv.reader(io.TextIOWrapper(zf.open(name), encoding="utf-8"))
            )
            for name in zf.namelist()
            if name.endswith(".csv")
        }


def delete_district_rows(wh: Warehouse, district_id: str) -> None:
    from jobs.warehouse.contract import DELETE_ORDER

    for table in DELETE_ORDER:
        wh.execute(f"delete from app.{table} where district_id = %s", [district_id])


def test_csv_copy_from_the_warehouse(wh: Warehouse, settings: Settings, tmp_path: Path) -> None:
    seed_district(wh, "D")
    seed_district(wh, "OTHER")
    doc = export_for_district(settings, "D", 2024, "csv", tmp_path / "out")
    assert doc["source"] == "warehouse"
    path = Path(doc["path"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == sorted(
            ["README.txt"] + [f"{t}.csv" for t in DELETED_TABLES]
        )
        readme = zf.read("README.txt").decode()
    assert "district D" in readme and "students.csv (4 rows)" in readme
    tables = csv_tables(path)
    for table in DELETED_TABLES:
        header, *rows = tables[table]
        assert header == TABLES[table].column_names
        assert len(rows) == len(SEED[table]) == doc["tables"][table]["rows"]
    names = {r[4] for r in tables["students"][1:]}
    assert {"Zoë", "李雷", ""} <= names
    assert "2024-03-04 05:06:07.123456" in {r[7] for r in tables["students"][1:]}


def test_parquet_copy_from_the_snapshot_after_the_reset(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    seed_district(wh, "D")
    expected = {t: source_rows(wh, t, "D") for t in DELETED_TABLES}
    export_district(wh, settings, "D", 2024)
    delete_district_rows(wh, "D")
    doc = export_for_district(settings, "D", 2024, "parquet", tmp_path / "out")
    assert doc["source"] == "snapshot"
    unzipped = tmp_path / "unzipped"
    with zipfile.ZipFile(doc["path"]) as zf:
        zf.extractall(unzipped)
    for table in DELETED_TABLES:
        got = [tuple(r.values()) for r in pq.read_table(unzipped / f"{table}.parquet").to_pylist()]
        assert same(got, expected[table]), table
    csv_doc = export_for_district(settings, "D", 2024, "CSV", tmp_path / "out")
    assert csv_doc["source"] == "snapshot"
    assert len(csv_tables(Path(csv_doc["path"]))["progress"]) == 1 + len(SEED["progress"])


def test_parquet_copy_from_the_warehouse(wh: Warehouse, settings: Settings, tmp_path: Path) -> None:
    seed_district(wh, "D")
    out = tmp_path / "shared"
    out.mkdir()
    out.chmod(0o755)
    doc = export_for_district(settings, "D", 2024, "parquet", out)
    assert doc["source"] == "warehouse"
    with zipfile.ZipFile(doc["path"]) as zf:
        assert "assessments.parquet" in zf.namelist()
    assert [p.name for p in out.iterdir()] == ["D_2024_parquet.zip"]  # no scratch left
    assert stat.S_IMODE(out.stat().st_mode) == 0o755  # the operator's folder keeps its mode


def test_bad_requests_are_one_line_errors(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    seed_district(wh, "D")
    with pytest.raises(ExportError, match="unknown format"):
        export_for_district(settings, "D", 2024, "xlsx", tmp_path)
    with pytest.raises(ExportError, match="unknown district"):
        export_for_district(settings, "nope", 2024, "csv", tmp_path)
    delete_district_rows(wh, "D")
    with pytest.raises(ExportError, match="no complete snapshot"):
        export_for_district(settings, "D", 2024, "csv", tmp_path)
    assert not district_dir(settings.snapshot_root, 2024, "D").exists()


def test_cli_export_and_unknown_format(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    base = [
        sys.executable,
        "-m",
        "jobs",
        "--duckdb-path",
        str(db),
        "--snapshot-root",
        str(tmp_path / "snap"),
    ]
    subprocess.run([*base, "init"], check=True, capture_output=True, cwd=PROJECT_DIR)
    from jobs.warehouse.connection import connect

    with connect(Settings(duckdb_path=db)) as wh:
        seed_district(wh, "D")
    ok = subprocess.run(
        [
            *base,
            "export",
            "--district",
            "D",
            "--school-year",
            "2024",
            "--format",
            "csv",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "out" / "D_2024_csv.zip").is_file()
    bad = subprocess.run(
        [
            *base,
            "export",
            "--district",
            "D",
            "--school-year",
            "2024",
            "--format",
            "xml",
            "--out",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT_DIR,
        check=False,
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines() == [
        "eoy-reset: unknown format 'xml': use csv or parquet"
    ]


def test_the_copy_is_private_from_its_first_byte(
    wh: Warehouse, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never readable by others while it is written (before, the zip took the umask's mode
    and became 0600 only when complete)."""
    import os

    import jobs.snapshot.copy as copy

    seed_district(wh, "D")
    out = tmp_path / "out"
    seen: list[int] = []
    real = copy._add_table

    def watching(*args: object) -> int:
        seen.extend(stat.S_IMODE(p.stat().st_mode) for p in out.glob(".*.part"))
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(copy, "_add_table", watching)
    old = os.umask(0o022)
    try:
        doc = export_for_district(settings, "D", 2024, "csv", out)
    finally:
        os.umask(old)
    assert seen and set(seen) == {0o600}
    assert stat.S_IMODE(Path(doc["path"]).stat().st_mode) == 0o600
