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
from jobs.reset.runner import run_reset
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import DELETED_TABLES
from tests.support.crash_helpers import run_cli

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
    assert result.failed, "a run whose snapshots cannot be written must fail"
    failed = [d for d in result.districts if d.status == "failed"]
    assert failed and all(d.step == "export" for d in failed), failed
    assert {d.error for d in failed} == {
        f"the snapshot could not be written under {tiny_tmpfs} (No space left on device): "
        "nothing was deleted; fix the snapshot root and run again"
    }
    assert student_rows(wh) == before
    assert not [p for p in tiny_tmpfs.rglob("*") if p.is_file()], "a half-written file is left"
    assert wh.scalar("select count(*) from eoy_runner.reset_runs where status = 'completed'") == 0


def test_snapshot_root_that_is_a_file_deletes_nothing(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    generate_districts(wh, 9, seed=3, students_per_district=2, show_progress=False)
    before = student_rows(wh)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    wh.close()
    done = run_cli(
        Settings(**{**settings.__dict__, "snapshot_root": blocker}),
        ["run", "--as-of", "2023-07-28", "--yes"],
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"eoy-reset: snapshot root {blocker} is not a folder ({blocker} is a file): point "
        "--snapshot-root or EOY_SNAPSHOT_ROOT at a folder; nothing was deleted"
    ]
    with connect(settings) as w:
        assert student_rows(w) == before
        assert w.scalar("select count(*) from eoy_runner.reset_runs") == 0
