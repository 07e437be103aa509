"""The snapshot root out of space or unusable: a clear error, and nothing deleted
(issue: reliability, item 2)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from rich.console import Console

from jobs.config import Settings
from jobs.contract import DELETED_TABLES
from jobs.generate import generate_districts
from jobs.runner import run_reset
from jobs.warehouse import Warehouse

QUIET = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115


def student_rows(wh: Warehouse) -> int:
    return sum(int(wh.scalar(f"select count(*) from app.{t}")) for t in DELETED_TABLES)


def reset(settings: Settings) -> dict:
    return run_reset(
        settings,
        as_of=date(2023, 7, 28),
        school_year=2023,
        districts=None,
        plan_path=None,
        yes=True,
        dry_run=False,
        workers=1,
        interactive=False,
        show_progress=False,
        console=QUIET,
    )


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 48 KiB file system: too small for any district's snapshot."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"this test mounts a tmpfs and needs root: {done.stderr}"
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_snapshot_root_out_of_space_deletes_nothing(
    settings: Settings, wh: Warehouse, tiny_tmpfs: Path
) -> None:
    generate_districts(wh, 9, seed=3, students_per_district=60, show_progress=False)
    before = student_rows(wh)
    result = reset(Settings(**{**settings.__dict__, "snapshot_root": tiny_tmpfs}))
    assert result["failed"], "a run whose snapshots cannot be written must fail"
    errors = " ".join(str(d.get("error") or "") for d in result["districts"])
    assert "space" in errors.lower(), errors
    assert "\n" not in errors
    assert student_rows(wh) == before
    assert wh.scalar("select count(*) from eoy_runner.reset_runs where status = 'completed'") == 0


def test_snapshot_root_that_is_a_file_deletes_nothing(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    generate_districts(wh, 9, seed=3, students_per_district=2, show_progress=False)
    before = student_rows(wh)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    try:
        result = reset(Settings(**{**settings.__dict__, "snapshot_root": blocker}))
    except Exception as exc:  # refused up front is as good as failed per district
        assert "not-a-folder" in str(exc) or "snapshot" in str(exc).lower()
    else:
        assert result["failed"]
    assert student_rows(wh) == before
