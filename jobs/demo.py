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
from contextlib import suppress
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from jobs.config import DEFAULT_DUCKDB_PATH, DEFAULT_SNAPSHOT_ROOT, Settings
from jobs.errors import EoyError
from jobs.output import command_line, program
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
        main = district_dir(Path(settings.snapshot_root), SCHOOL_YEAR, district)
        folders.append(str(main))
        folders.extend(str(p) for p in main.parent.glob(f"{main.name}~delta-*"))
    return folders


def print_hints(console: Console, settings: Settings, reset_district: str | None) -> None:
    """Commands to try next, as a new shell runs them: the program as that shell reaches it
    (`.venv/bin/eoy-reset` until the virtual environment is activated), and the demo's own
    warehouse and snapshots when they are not the defaults."""
    options: list[str] = []
    if Path(settings.duckdb_path).absolute() != Path(DEFAULT_DUCKDB_PATH).absolute():
        options += ["--duckdb-path", str(settings.duckdb_path)]
    if Path(settings.snapshot_root).absolute() != Path(DEFAULT_SNAPSHOT_ROOT).absolute():
        options += ["--snapshot-root", str(settings.snapshot_root)]
    hints = [["status", "--school-year", str(SCHOOL_YEAR)]]
    if reset_district is not None:
        folder = district_dir(Path(settings.snapshot_root), SCHOOL_YEAR, reset_district)
        with suppress(ValueError):  # shorter under the working folder
            folder = folder.absolute().relative_to(Path.cwd())
        hints.append(["verify-snapshot", str(folder)])
    hints.append(["run", "--as-of", "2023-08-15", "--dry-run"])
    console.print(
        f"Warehouse {settings.duckdb_path}, snapshots under {settings.snapshot_root}.",
        highlight=False,
        soft_wrap=True,
    )
    where = Path(program()).parent
    if where != Path():  # not on the shell's PATH
        activate = where / "activate"
        console.print(
            f"eoy-reset and dbt are in {where}: `. {activate}` puts them on your PATH. Try:",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print("Try:")
    for hint in hints:
        console.print(f"  {command_line(hint, options)}", highlight=False, soft_wrap=True)


def run_demo(settings: Settings, console: Console) -> dict[str, Any]:
    if settings.target != "duckdb":
        raise DemoError("the demo runs on the embedded DuckDB only: drop --target postgres")
    if str(settings.snapshot_root).startswith("s3://"):
        raise DemoError("the demo keeps its snapshots in a folder: drop the s3:// --snapshot-root")
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
    done = [d.district_id for d in result.districts if d.status == "completed"]
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
    print_hints(console, settings, done[0] if done else None)
    return {
        "run": result,
        "rostered": [d["district_id"] for d in rostered],
        "resumed": resumed["resumed"],
        "report": str(report_path) if report_path else None,
        "seconds": round(seconds, 1),
    }
