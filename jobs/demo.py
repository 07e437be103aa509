"""`eoy-reset demo` (`make demo`): the whole reset on a fresh embedded DuckDB, in about a minute.

Generate districts, plan as of the 2023 default reset date, run, roster the new school year
for a few districts and resume their syncs, show the status, write the report. The demo
only ever removes a warehouse and snapshots that an earlier demo made (it leaves a marker).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.plan.planner import make_plan
from jobs.plan.view import render_plan
from jobs.reset.runner import render_status, render_summary, reset_status, resume_syncs, run_reset
from jobs.roster.load import import_oneroster, render_import
from jobs.roster.sample import write_sample_export
from jobs.snapshot.layout import district_dir
from jobs.synthetic.generate import generate_districts, render_counts
from jobs.warehouse.connection import connect
from jobs.warehouse.schema import init_warehouse

AS_OF = date(2023, 7, 28)
SCHOOL_YEAR = 2023
DISTRICTS = 30
SEED = 1
ROSTERED = 3  # districts whose 2024 roster is imported during the demo


class DemoError(EoyError):
    """The demo cannot run here; the message says why."""


def _marker(settings: Settings) -> Path:
    path = Path(settings.duckdb_path)
    return path.with_name(path.name + ".demo.json")


def _clear_previous(settings: Settings) -> None:
    """Remove an earlier demo's warehouse and snapshots; refuse to touch anything else."""
    path, marker = Path(settings.duckdb_path), _marker(settings)
    if not path.exists():
        marker.unlink(missing_ok=True)
        return
    if not marker.is_file():
        raise DemoError(
            f"{path} exists and was not made by the demo: pass --duckdb-path with a new file "
            "(the demo starts from an empty warehouse)"
        )
    made = json.loads(marker.read_text(encoding="utf-8"))
    root = Path(settings.snapshot_root).resolve()
    for folder in made.get("snapshot_folders", []):
        folder_path = Path(folder).resolve()
        if folder_path.is_relative_to(root) and folder_path != root:
            shutil.rmtree(folder_path, ignore_errors=True)
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(_roster_folder(settings), ignore_errors=True)
    marker.unlink()


def _roster_folder(settings: Settings) -> Path:
    """Where the demo writes the OneRoster exports it imports (beside the warehouse)."""
    path = Path(settings.duckdb_path)
    return path.with_name(path.name + ".oneroster")


def _remember(settings: Settings, folders: list[str]) -> None:
    _marker(settings).write_text(
        json.dumps({"snapshot_folders": sorted(folders)}, indent=2) + "\n", encoding="utf-8"
    )


def _snapshot_folders(settings: Settings, district_ids: list[str]) -> list[str]:
    folders = []
    for district in district_ids:
        main = district_dir(settings.snapshot_root, SCHOOL_YEAR, district)
        folders.append(str(main))
        folders.extend(str(p) for p in main.parent.glob(f"{main.name}~delta-*"))
    return folders


def run_demo(settings: Settings, console: Console) -> dict[str, Any]:
    if settings.target != "duckdb":
        raise DemoError("the demo runs on the embedded DuckDB only: drop --target postgres")
    began = time.perf_counter()
    _clear_previous(settings)
    console.rule("[bold]1. A fresh warehouse with synthetic districts")
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        _remember(settings, [])
        district_ids = [f"d{n:05d}" for n in range(1, DISTRICTS + 1)]
        _remember(settings, _snapshot_folders(settings, district_ids))
        counts = generate_districts(wh, DISTRICTS, SEED, show_progress=True)
    render_counts(console, counts)

    console.rule(f"[bold]2. The plan as of {AS_OF} (school year {SCHOOL_YEAR})")
    plan = make_plan(settings, AS_OF, SCHOOL_YEAR)
    render_plan(console, plan)

    console.rule("[bold]3. The reset: pause syncs, export, verify, delete, check, complete")
    result = run_reset(settings, AS_OF, SCHOOL_YEAR, yes=True, show_progress=True, console=console)
    render_summary(console, result)
    _remember(settings, _snapshot_folders(settings, district_ids))

    console.rule("[bold]4. New-year rostering (OneRoster) for a few districts: resume their syncs")
    done = [d["district_id"] for d in result["districts"] if d["status"] == "completed"]
    rostered = []
    for district in done[:ROSTERED]:
        folder = _roster_folder(settings) / district
        with connect(settings) as wh:
            write_sample_export(wh, district, SCHOOL_YEAR + 1, folder)
        doc = import_oneroster(settings, folder, district, SCHOOL_YEAR + 1, yes=True)
        rostered.append(doc)
        render_import(console, doc)
    resumed = resume_syncs(settings)
    console.print(f"Resumed the import syncs of {', '.join(resumed['resumed']) or 'no district'}.")

    console.rule("[bold]5. Status")
    render_status(console, reset_status(settings, SCHOOL_YEAR))

    report_path = None
    if importlib.util.find_spec("jobs.report.html") is not None:
        from jobs.report.html import write_report

        report_path = Path(settings.duckdb_path).with_name("report.html")
        write_report(settings, report_path, AS_OF)
        console.print(f"Compliance report written to {report_path}.")
    seconds = time.perf_counter() - began
    console.rule(f"[bold]Demo done in {seconds:.0f} s")
    hints = [
        f"eoy-reset status --school-year {SCHOOL_YEAR}",
        "eoy-reset run --as-of 2023-08-15 --dry-run",
    ]
    if done:
        folder = district_dir(settings.snapshot_root, SCHOOL_YEAR, done[0])
        hints.insert(1, f"eoy-reset verify-snapshot {folder}")
    console.print(
        f"Warehouse {settings.duckdb_path}, snapshots under {settings.snapshot_root}. Try:"
    )
    for hint in hints:
        console.print(f"  {hint}", highlight=False)
    return {
        "run": result,
        "rostered": [d["district_id"] for d in rostered],
        "resumed": resumed["resumed"],
        "report": str(report_path) if report_path else None,
        "seconds": round(seconds, 1),
    }
