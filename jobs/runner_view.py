"""What the operator sees of a run: progress while it works, a summary and the status table.

Ids and counts only: no student data is ever printed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table as RichTable

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "refused": "red",
    "skipped": "yellow",
    "would_run": "cyan",
    "running": "yellow",
    "restored": "blue",
}


class RunProgress:
    """Districts done, rows snapshotted and deleted (each row counts twice), rows/s and ETA."""

    def __init__(self, show: bool, districts: int, rows: int):
        self.show = show and districts > 0
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str, str], int] = {}
        self._bar: Progress | None = None
        self._current: dict[str, TaskID] = {}
        if self.show:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._districts = self._bar.add_task("districts", total=districts, rate="")
            self._rows = self._bar.add_task("rows", total=max(2 * rows, 1), rate="")

    def __enter__(self) -> RunProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def district_started(self, district: str, rows: int) -> None:
        if self._bar is None:
            return
        with self._lock:
            self._current[district] = self._bar.add_task(
                f"  {district[:40]}", total=max(2 * rows, 1), rate=""
            )

    def table(self, district: str, phase: str, table: str, rows: int) -> None:
        """`rows` is the running count of rows of that table in that phase."""
        if self._bar is None:
            return
        with self._lock:
            key = (district, phase, table)
            step = rows - self._seen.get(key, 0)
            self._seen[key] = rows
            task = self._current.get(district)
            if task is not None:
                self._bar.update(
                    task, advance=step, description=f"  {district[:40]} {phase} {table}"
                )
            self._bar.update(self._rows, advance=step)
            rate = self._bar.tasks[self._rows].speed
            self._bar.update(self._rows, rate=f"{rate:,.0f} rows/s" if rate else "")

    def district_done(self, district: str) -> None:
        if self._bar is None:
            return
        with self._lock:
            task = self._current.pop(district, None)
            if task is not None:
                self._bar.remove_task(task)
            self._bar.update(self._districts, advance=1)


def render_summary(console: Console, result: dict[str, Any]) -> None:
    """One row per district: status, rows deleted, seconds, reason."""
    title = (
        f"{'Dry run: ' if result.get('dry_run') else ''}reset as of {result['as_of']}, "
        f"school year {result['school_year']}"
    )
    grid = RichTable(title=title, title_justify="left")
    grid.add_column("district")
    grid.add_column("status")
    grid.add_column("rows deleted" if not result.get("dry_run") else "rows", justify="right")
    grid.add_column("seconds", justify="right")
    grid.add_column("note")
    for d in result["districts"]:
        status = d["status"]
        rows = sum(d.get("rows", {}).values()) if result.get("dry_run") else d.get("rows_deleted")
        note = d.get("error") or ""
        if status == "would_run" and d.get("resumes"):
            note = f"resumes a {d['resumes']} run"
        grid.add_row(
            d["district_id"],
            f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]",
            f"{int(rows or 0):,}",
            f"{d['seconds']:.1f}" if "seconds" in d else "",
            note,
            end_section=False,
        )
    console.print(grid)
    for entry in result.get("not_due", []):
        console.print(f"District {entry['district_id']} was not run: {entry['reason']}.")
    totals = result.get("totals", {})
    if not result["districts"]:
        console.print("No district is due: nothing to do.")
        return
    by_status = ", ".join(f"{n} {s}" for s, n in sorted(totals.get("by_status", {}).items()))
    console.print(
        f"{totals.get('districts', 0)} district(s): {by_status}; "
        f"{totals.get('rows_deleted', 0):,} rows deleted in {totals.get('seconds', 0):.1f} s."
    )


def _short_path(path: str | None) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def render_status(console: Console, doc: dict[str, Any]) -> None:
    grid = RichTable(title=f"Resets of school year {doc['school_year']}", title_justify="left")
    for col in ("district", "status", "last step", "rows", "syncs paused", "snapshot", "error"):
        grid.add_column(
            col, justify="right" if col in ("rows", "syncs paused") else "left", overflow="fold"
        )
    for d in doc["districts"]:
        step = d["last_step"] or ""
        if d["last_step_status"] not in (None, "completed"):
            step = f"{step} {d['last_step_status']}"
        grid.add_row(
            d["district_id"],
            f"[{STATUS_STYLE.get(d['status'], 'white')}]{d['status']}[/]",
            step,
            f"{int(d['rows_deleted'] or 0):,}",
            f"{d['syncs_paused']}/{d['syncs']}",
            _short_path(d["snapshot_path"]),
            d["error"] or "",
        )
    console.print(grid)
    if not doc["districts"]:
        console.print(f"No reset recorded for school year {doc['school_year']}.")
    else:
        shown = ", ".join(f"{n} {s}" for s, n in sorted(doc["by_status"].items()))
        console.print(f"{len(doc['districts'])} district(s): {shown}.")
