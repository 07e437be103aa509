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

    def district_dropped(self, district: str) -> None:
        """A district given back (its batch rolled back): it starts again alone."""
        if self._bar is None:
            return
        with self._lock:
            task = self._current.pop(district, None)
            if task is not None:
                self._bar.remove_task(task)

    def district_done(self, district: str) -> None:
        if self._bar is None:
            return
        self.district_dropped(district)
        with self._lock:
            self._bar.update(self._districts, advance=1)


def render_summary(console: Console, result: dict[str, Any]) -> None:
    """One row per district: status, rows deleted, seconds, reason."""
    from jobs.tables import print_fitted

    title = (
        f"{'Dry run: ' if result.get('dry_run') else ''}reset as of {result['as_of']}, "
        f"school year {result['school_year']}"
    )
    rows = []
    for d in result["districts"]:
        status = d["status"]
        rows_n = sum(d.get("rows", {}).values()) if result.get("dry_run") else d.get("rows_deleted")
        note = d.get("error") or ""
        if status == "would_run" and d.get("resumes"):
            note = f"resumes a {d['resumes']} run"
        rows.append(
            [
                d["district_id"],
                f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]",
                f"{int(rows_n or 0):,}",
                f"{d['seconds']:.1f}" if "seconds" in d else "",
                note,
            ]
        )
    counted = "rows" if result.get("dry_run") else "rows deleted"
    print_fitted(
        console,
        title,
        ["district", "status", counted, "seconds", "note"],
        rows,
        right=(counted, "seconds"),
        wrap=("note",),
        movable=("note",),
    )
    for entry in result.get("not_due", []):
        console.print(f"District {entry['district_id']} was not run: {entry['reason']}.")
    totals = result.get("totals", {})
    if not result["districts"]:
        console.print("No district is due: nothing to do.")
        return
    by_status = ", ".join(f"{n} {s}" for s, n in sorted(totals.get("by_status", {}).items()))
    if result.get("dry_run"):
        rows_total = sum(
            sum(d.get("rows", {}).values())
            for d in result["districts"]
            if d["status"] == "would_run"
        )
        done = f"{rows_total:,} rows would be deleted; nothing was changed."
    else:
        done = (
            f"{totals.get('rows_deleted', 0):,} rows deleted in {totals.get('seconds', 0):.1f} s."
        )
    console.print(f"{totals.get('districts', 0)} district(s): {by_status}; {done}")


def _short_path(path: str | None) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def snapshot_cell(d: dict[str, Any]) -> str:
    """Where the district's snapshot is, or when it was purged."""
    purged = d.get("snapshot_purged_at")
    if purged:
        return f"purged on {str(purged)[:10]}"
    return _short_path(d.get("snapshot_path"))


def render_status(console: Console, doc: dict[str, Any]) -> None:
    """One row per district; snapshot paths and errors go below the table when it would
    otherwise be too wide for the terminal."""
    from jobs.tables import print_fitted

    header = ["district", "status", "last step", "rows", "paused", "snapshot", "error"]
    rows = []
    for d in doc["districts"]:
        step = d["last_step"] or ""
        if d["last_step_status"] not in (None, "completed"):
            step = f"{step} {d['last_step_status']}"
        rows.append(
            [
                d["district_id"],
                f"[{STATUS_STYLE.get(d['status'], 'white')}]{d['status']}[/]",
                step,
                f"{int(d['rows_deleted'] or 0):,}",
                f"{d['syncs_paused']}/{d['syncs']}",
                snapshot_cell(d),
                d["error"] or "",
            ]
        )
    print_fitted(
        console,
        f"Resets of school year {doc['school_year']}",
        header,
        rows,
        right=("rows", "paused"),
        wrap=("error",),
        movable=("snapshot", "error"),
    )
    if not doc["districts"]:
        console.print(f"No reset recorded for school year {doc['school_year']}.")
    else:
        shown = ", ".join(f"{n} {s}" for s, n in sorted(doc["by_status"].items()))
        console.print(
            f"{len(doc['districts'])} district(s): {shown}. "
            "paused: the district's import syncs paused / all of them.",
            highlight=False,
        )


# ---------------------------------------------------------------------------------------
# purge-snapshots
# ---------------------------------------------------------------------------------------
def _day(value: str | None) -> str:
    return str(value or "")[:10]


def render_purge_list(console: Console, entries: list[dict[str, Any]], title: str = "") -> None:
    """The snapshots a purge removes: district, school year, when taken, rows."""
    n = len(entries)
    grid = RichTable(
        title=title or f"{n} snapshot{'s' if n != 1 else ''} to purge", title_justify="left"
    )
    grid.add_column("district", overflow="fold")
    grid.add_column("year", no_wrap=True)
    grid.add_column("taken on", no_wrap=True)
    grid.add_column("age (days)", justify="right", no_wrap=True)
    grid.add_column("rows", justify="right", no_wrap=True)
    for e in entries:
        grid.add_row(
            e["district_id"],
            str(e["school_year"]),
            _day(e["created_at"]),
            f"{int(e['age_days']):,}",
            f"{int(e['rows']):,}",
        )
    console.print(grid)


def render_purge(console: Console, doc: dict[str, Any]) -> None:
    """What a purge removed (or would), and what it kept."""
    going = doc["would_purge"] if doc["dry_run"] else doc["purged"]
    if going:
        verb = "Would purge" if doc["dry_run"] else "Purged"
        render_purge_list(console, going, title=f"{verb} {len(going)} snapshot(s)")
    held, kept = len(doc["held"]), len(doc["kept"])
    if doc["dry_run"]:
        days = doc["older_than_days"]
        head = f"Dry run: {len(going)} snapshot(s) older than {days} days would go"
        tail = "nothing was removed; purge them with --yes."
    else:
        head = f"Purged {len(going)} snapshot(s) older than {doc['older_than_days']} days"
        tail = "each purge is in the ledger."
    console.print(
        f"{head}; kept {held} under legal hold and {kept} younger; {tail}", highlight=False
    )
    for entry in doc.get("busy", []):
        console.print(
            f"Not purged, another eoy-reset process works on district {entry['district_id']}: "
            f"{entry['path']} (run the purge again later)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for cert in doc.get("certificates", []):
        console.print(
            f"Copy-destroyed certificate of district {cert['district_id']}, school year "
            f"{cert['school_year']}: sha256 {cert['document_sha256'][:16]}… (write it with "
            "`eoy-reset certificate --kind copy_destroyed`)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for entry in doc.get("locked", []):
        locked = entry["locked"]
        console.print(
            f"Still locked by the object store (Object Lock retention or legal hold): "
            f"{entry['path']} ({len(locked)} object(s), e.g. {locked[0]})",
            highlight=False,
            soft_wrap=True,
        )


def purge_certificate_note(doc: dict[str, Any]) -> str | None:
    """One line when a purge could not issue its copy-destroyed certificates, and how to."""
    owed = doc.get("certificates_owed") or []
    if not owed:
        return None
    names = ", ".join(f"{o['district_id']} {o['school_year']}" for o in owed[:5])
    more = f" and {len(owed) - 5} more" if len(owed) > 5 else ""
    return (
        f"{len(owed)} copy-destroyed certificate(s) not issued ({names}{more}): "
        f"{owed[0]['reason']}; issue each later with `eoy-reset certificate --district ID "
        "--school-year Y --kind copy_destroyed --out DIR`"
    )
