"""Readable at 80 columns (issue #16, item 5): tables are laid out for the terminal they are
printed on, COLUMNS is honoured when piped, and no number, path or step name is ever cut."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from jobs.config import Settings
from jobs.plan.view import render_plan
from jobs.reset.result import DistrictOutcome, RunResult
from jobs.reset.view import render_status, render_summary
from jobs.warehouse.contract import DELETED_TABLES
from tests.support import operator_data as od
from tests.support.operator_data import eoy

WIDTHS = (80, 120, 160)


def printed(render: Any, doc: dict[str, Any], width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    render(console, doc)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "…" not in text, text
    for line in text.splitlines():
        assert len(line) <= width, (width, line)
    return text


def cells(text: str) -> set[str]:
    """Every table cell's text (between the table's vertical bars)."""
    return {c.strip() for line in text.splitlines() for c in re.split(r"[│┃]", line)}


def big_plan(districts: int = 4) -> dict[str, Any]:
    due = []
    for n in range(districts):
        rows = {t: 1_234_567 * (n + 1) + i for i, t in enumerate(DELETED_TABLES)}
        due.append(
            {
                "district_id": f"d{n:05d}",
                "effective_reset_date": "2023-07-28",
                "date_source": "after_session_end",
                "issues": [],
                "rows": rows,
                "rows_total": sum(rows.values()),
            }
        )
    by_table = {t: sum(d["rows"][t] for d in due) for t in DELETED_TABLES}
    return {
        "as_of": "2023-07-28",
        "school_year": 2023,
        "warehouse": "duckdb:/srv/eoy/warehouse.duckdb",
        "due": due,
        "blocked": [
            {
                "district_id": "b1",
                "effective_reset_date": "2023-07-29",
                "issues": ["conflicts_with_rostering", "request_during_session"],
            }
        ],
        "request_issues": [],
        "inactive_educators": {"d00000": 12_345},
        "not_due": [],
        "totals": {
            "districts": len(due),
            "rows": sum(by_table.values()),
            "rows_by_table": by_table,
            "blocked": 1,
        },
    }


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("size", [1, 4])
def test_the_plan_shows_every_number_whole_at_any_width(width: int, size: int) -> None:
    plan = big_plan(size)
    text = printed(render_plan, plan, width)
    shown = cells(text)
    for d in plan["due"]:
        assert d["district_id"] in shown
        for n in d["rows"].values():
            assert f"{n:,}" in shown, (width, n)
    if width >= 160 or size == 1:
        assert "rows" in text
    legend = "stu students" in text
    assert legend == ("stu" in shown), "abbreviated headers come with their legend"


def test_small_plans_keep_full_headers_at_160() -> None:
    plan = big_plan(1)
    for d in plan["due"]:
        d["rows"] = dict.fromkeys(DELETED_TABLES, 12)
        d["rows_total"] = 84
    shown = cells(printed(render_plan, plan, 160))
    assert {"students", "classrooms", "enrollments", "sessions", "inactive educators"} <= shown


def status_doc(path: str) -> dict[str, Any]:
    return {
        "school_year": 2023,
        "by_status": {"failed": 1, "completed": 1},
        "districts": [
            {
                "district_id": "d00001",
                "status": "failed",
                "last_step": "check_retention",
                "last_step_status": "failed",
                "rows_deleted": 1_234_567,
                "syncs_paused": 2,
                "syncs": 3,
                "snapshot_path": path,
                "snapshot_purged_at": None,
                "error": "12 rows arrived after the snapshot (students 12): they stay; "
                "run again to snapshot and delete them as a delta",
            },
            {
                "district_id": "d00002",
                "status": "completed",
                "last_step": "complete",
                "last_step_status": "completed",
                "rows_deleted": 99,
                "syncs_paused": 1,
                "syncs": 1,
                "snapshot_path": path.replace("d00001", "d00002"),
                "snapshot_purged_at": "2023-10-01T00:00:00+00:00",
                "error": None,
            },
        ],
    }


@pytest.mark.parametrize("width", WIDTHS)
def test_status_never_splits_a_path_or_a_step(width: int) -> None:
    path = "/srv/eoy/snapshots-of-the-district-resets/2023/d00001"
    text = printed(render_status, status_doc(path), width)
    assert path in text  # whole, on one line
    assert "check_retention failed" in text
    assert "1,234,567" in text and "2/3" in text
    assert "purged on 2023-10-01" in text
    words = [
        "they",
        "stay;",
        "run",
        "again",
        "to",
        "snapshot",
        "and",
        "delete",
        "them",
        "as",
        "a",
        "delta",
    ]
    assert all(w in text.split() for w in words)


@pytest.mark.parametrize("width", WIDTHS)
def test_the_run_summary_fits(width: int) -> None:
    result = RunResult(
        as_of="2023-07-28",
        school_year=2023,
        dry_run=False,
        warehouse="duckdb:/srv/eoy/warehouse.duckdb",
        districts=[
            DistrictOutcome(
                "d00001",
                "failed",
                seconds=1.5,
                error="snapshot /srv/eoy/snapshots/2023/d00001 did not verify: students: "
                "rows 3, expected 4; nothing was deleted",
            ),
            DistrictOutcome("d00002", "completed", rows_deleted=12_345_678, seconds=2),
        ],
        seconds=3.5,
    )
    text = printed(render_summary, result, width)
    assert "12,345,678" in text and "/srv/eoy/snapshots/2023/d00001" in text


def test_commands_honour_columns_when_piped(settings: Settings) -> None:
    od.fresh(settings)
    assert (
        eoy(settings, ["run", "--as-of", "2023-07-28", "--district", "early", "--yes"]).returncode
        == 0
    )
    for width in (80, 160):
        for args in (["plan", "--as-of", "2023-07-28"], ["status"]):
            proc = eoy(settings, args, COLUMNS=str(width))
            assert proc.returncode == 0, proc.stderr
            assert "…" not in proc.stdout
            # a line holding a path is never wrapped: the terminal folds it, whole
            paths = [str(settings.snapshot_root.parent)]
            if settings.target == "duckdb":  # the plan names the warehouse file
                paths.append(str(settings.duckdb_path))
            lines = [ln for ln in proc.stdout.splitlines() if not any(p in ln for p in paths)]
            assert max(len(line) for line in lines) <= width, (args, width, proc.stdout)
        plan = eoy(settings, ["plan", "--as-of", "2023-07-28"], COLUMNS=str(width)).stdout
        assert ("inactive educators" in plan) == (width == 160), plan
        status = eoy(settings, ["status"], COLUMNS=str(width)).stdout
        assert str(settings.snapshot_root / "2023" / "early") in status
