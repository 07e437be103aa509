"""What the operator sees of a run: progress while it works, a summary and the status table.

Ids and counts only: no student data is ever printed.
"""

from __future__ import annotations

import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID
from rich.table import Column
from rich.table import Table as RichTable
from rich.text import Text

from jobs.output import check_interrupt
from jobs.plan.view import SHORT_NAMES, render_restored
from jobs.reset.result import DistrictOutcome, RunResult

STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "refused": "red",
    "blocked": "red",
    "not_started": "yellow",
    "skipped": "yellow",
    "would_run": "cyan",
    "running": "yellow",
    "restored": "blue",
}


# The progress lines at a terminal: label, bar, `done/total`, a note. Counts are never cut:
# the label gives way first, then the note, and the bar keeps at least BAR_MIN cells.
BAR_MIN = 8
NOTE_WIDTH = 26  # "999,999 rows/s, 59:59 left" (rate_note keeps within it)
LABEL_WIDTH = 24  # "  d00042 verify, commit": two spaces, a district id, what it does
# What a district's line says once its rows are all taken: the pass checks, then commits.
CHECKING = "verify, commit"


class _Counts(ProgressColumn):
    """`done/total` with thousands separators, right-aligned."""

    def render(self, task: Task) -> Text:
        return Text(f"{int(task.completed):,}/{int(task.total or 0):,}", no_wrap=True)


class _Field(ProgressColumn):
    """One of the task's fields, as it is (the label, or the note)."""

    def __init__(self, name: str, column: Column):
        super().__init__(table_column=column)
        self.name = name

    def render(self, task: Task) -> Text:
        return Text(str(task.fields.get(self.name, "")), no_wrap=True, overflow="ellipsis")


def progress_widths(width: int, rows: int) -> tuple[int, int, int, int]:
    """(label, bar, counts, note) widths for a terminal `width` wide and a total of `rows`:
    together with the three spaces between them, never wider than the terminal."""
    counts = 2 * len(f"{max(rows, 1):,}") + 1
    note = NOTE_WIDTH if width - counts - NOTE_WIDTH - BAR_MIN - 3 >= 16 else 0
    label = max(min(LABEL_WIDTH, width - counts - note - BAR_MIN - 3), 8)
    bar = max(width - label - counts - note - 3, BAR_MIN)
    return label, bar, counts, note


class RunProgress:
    """Districts done, rows snapshotted and deleted (each row once: a district's rows leave
    the warehouse through its snapshot), rows/s and time left, and one line per district in
    hand naming the table being taken. At the end the rows bar holds the rows this run
    deleted. Every call first stops the runner's thread if Ctrl-C was pressed."""

    def __init__(self, show: bool, districts: int, rows: int, console: Console | None = None):
        self.show = show and districts > 0
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], int] = {}  # (district, table): rows counted
        self._counted: dict[str, int] = {}  # district: rows counted
        self._planned: dict[str, int] = {}
        self._current: dict[str, TaskID] = {}
        self._bar: Progress | None = None
        self._label_width = LABEL_WIDTH
        if self.show:
            console = console or Console(stderr=True)
            label, bar, counts, note = progress_widths(console.width, rows)
            self._label_width = label
            columns: list[ProgressColumn] = [
                _Field("label", Column(width=label, no_wrap=True, overflow="ellipsis")),
                BarColumn(bar_width=bar),
                _Counts(table_column=Column(width=counts, justify="right", no_wrap=True)),
            ]
            if note:
                columns.append(_Field("note", Column(width=note, no_wrap=True)))
            self._bar = Progress(*columns, console=console, transient=False)
            self._districts = self._bar.add_task("", total=districts, label="districts", note="")
            self._rows = self._bar.add_task("", total=max(rows, 1), label="rows", note="")

    def __enter__(self) -> RunProgress:
        if self._bar is not None:
            try:
                self._bar.start()
            except BaseException:  # Ctrl-C as it starts: __exit__ will not run
                self._bar.stop()
                raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            for task in self._current.values():  # stopped midway: no district is in hand
                self._bar.remove_task(task)
            self._current.clear()
            self._bar.stop()

    def _label(self, district: str, doing: str = "") -> str:
        """`  <district> <doing>`, the district id cut so that what it does stays whole."""
        room = self._label_width - 2 - (len(doing) + 1 if doing else 0)
        shown = district if len(district) <= room else district[: max(room - 1, 1)] + "…"
        return f"  {shown} {doing}".rstrip()

    def district_started(self, district: str, rows: int) -> None:
        _stop_if_interrupted()
        if self._bar is None:
            return
        with self._lock:
            self._planned[district] = rows
            self._current[district] = self._bar.add_task(
                "", total=max(rows, 1), label=self._label(district), note=""
            )

    def table(self, district: str, phase: str, table: str, rows: int) -> None:
        """`rows` is the running count of that table's rows taken (0: the table begins)."""
        _stop_if_interrupted()
        if self._bar is None:
            return
        with self._lock:
            step = rows - self._seen.get((district, table), 0)
            self._seen[district, table] = rows
            counted = self._counted[district] = self._counted.get(district, 0) + step
            task = self._current.get(district)
            if task is not None:
                planned = self._planned.get(district, 0)
                doing = CHECKING if 0 < planned <= counted else SHORT_NAMES.get(table, table)
                self._bar.update(task, advance=step, label=self._label(district, doing))
            self._bar.update(self._rows, advance=step)
            self._bar.update(self._rows, note=_rows_note(self._bar.tasks[self._rows]))

    def district_dropped(self, district: str) -> None:
        """A district given back (its batch rolled back): it starts again alone, and what was
        counted of it goes back off the rows bar."""
        if self._bar is None:
            return
        with self._lock:
            self._forget(district)

    def _forget(self, district: str) -> None:
        assert self._bar is not None
        task = self._current.pop(district, None)
        if task is not None:
            self._bar.remove_task(task)
        self._bar.update(self._rows, advance=-self._counted.pop(district, 0))
        for key in [k for k in self._seen if k[0] == district]:
            del self._seen[key]

    def district_done(self, district: str) -> None:
        if self._bar is not None:
            with self._lock:
                task = self._current.pop(district, None)
                if task is not None:
                    self._bar.remove_task(task)
                self._bar.update(self._districts, advance=1)
                self._bar.update(self._districts, note=_elapsed(self._bar.tasks[self._districts]))
        _stop_if_interrupted()

    def finish(self, outcomes: list[DistrictOutcome]) -> None:
        """The districts' outcomes are in: the rows bar ends at the rows this run deleted,
        full (a district that failed deleted nothing of what was counted)."""
        if self._bar is None:
            return
        with self._lock:
            for outcome in outcomes:
                if outcome.status != "completed":
                    self._counted.pop(outcome.district_id, None)
            deleted = sum(self._counted.values())
            self._bar.update(self._rows, total=deleted, completed=deleted, note="")
            self._bar.update(self._districts, note=_elapsed(self._bar.tasks[self._districts]))


def _stop_if_interrupted() -> None:
    """Ctrl-C reaches Python in the main thread only: the runner's batch threads, and the
    main thread whose driver turned it into a failed statement, stop here. A daemon thread
    (the relay of the worker processes' progress) only draws."""
    if not threading.current_thread().daemon:
        check_interrupt()


def _rows_note(task: Task) -> str:
    return rate_note(task.speed, task.time_remaining)


def rate_note(speed: float | None, left: float | None) -> str:
    """Rows a second and the time left, within NOTE_WIDTH: millions in short (a burst over
    a few milliseconds can read 1,369,368 rows/s), the time left only where it fits."""
    if not speed:
        return ""
    rate = f"{speed:,.0f}" if speed < 999_999.5 else f"{speed / 1_000_000:,.1f}M"
    note = f"{rate} rows/s"
    if left is not None and len(f"{note}, {_clock(left)} left") <= NOTE_WIDTH:
        note += f", {_clock(left)} left"
    return note


def _elapsed(task: Task) -> str:
    return f"{_clock(task.elapsed or 0)} elapsed"


def _clock(seconds: float) -> str:
    """m:ss, or h:mm:ss from an hour on."""
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
    return f"{whole // 60}:{whole % 60:02d}"


def render_summary(console: Console, result: RunResult) -> None:
    """One row per district: status, rows deleted, seconds, reason."""
    from jobs.terminal import print_fitted

    title = (
        f"{'Dry run: ' if result.dry_run else ''}reset as of {result.as_of}, "
        f"school year {result.school_year}"
    )
    rows = []
    for d in result.districts:
        rows_n = d.rows_total if result.dry_run else d.rows_deleted
        note = d.error or ""
        if d.status == "would_run" and d.resumes:
            note = f"resumes a {d.resumes} run"
        rows.append(
            [
                d.district_id,
                f"[{STATUS_STYLE.get(d.status, 'white')}]{d.status}[/]",
                f"{int(rows_n or 0):,}",
                f"{d.seconds:.1f}" if d.seconds is not None else "",
                note,
            ]
        )
    counted = "rows" if result.dry_run else "rows deleted"
    print_fitted(
        console,
        title,
        ["district", "status", counted, "seconds", "note"],
        rows,
        right=(counted, "seconds"),
        wrap=("note",),
        movable=("note",),
    )
    for entry in result.not_due:
        console.print(f"District {entry['district_id']} was not run: {entry['reason']}.")
    render_restored(console, result.restored or [])
    if not result.districts:
        console.print("No district is due: nothing to do.")
        return
    totals = result.totals()
    by_status = ", ".join(f"{n} {s}" for s, n in sorted(totals["by_status"].items()))
    if result.dry_run:
        done = f"{totals['rows']:,} rows would be deleted; nothing was changed."
    else:
        done = f"{totals['rows']:,} rows deleted in {totals['seconds'] or 0:.1f} s."
    console.print(f"{totals['districts']} district(s): {by_status}; {done}")


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
    from jobs.terminal import print_fitted

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
    render_attention(console, doc)


def _state(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'yellow')}]{status.replace('_', ' ')}[/]"


def render_attention(console: Console, doc: dict[str, Any]) -> None:
    """What needs someone in the school year (failed, stopped, refused, blocked, not
    started, restored districts), and the districts under legal hold."""
    from jobs.terminal import print_fitted

    attention = doc.get("attention", [])
    if attention:
        counts: dict[str, int] = {}
        for entry in attention:
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        said = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in counts.items())
        print_fitted(
            console,
            f"Needs attention: {said}",
            ["district", "state", "why"],
            [[e["district_id"], _state(e["status"]), e["why"]] for e in attention],
            wrap=("why",),
        )
    holds = doc.get("legal_holds", [])
    if holds:
        held = ", ".join(
            f"{h['district_id']} ({h['reason']})" if h.get("reason") else str(h["district_id"])
            for h in holds
        )
        console.print(
            f"Under legal hold (purge-snapshots keeps their snapshots): {held}.",
            highlight=False,
            markup=False,
        )


def render_resume(console: Console, doc: dict[str, Any]) -> None:
    """resume-syncs: one row per district whose syncs a reset paused, resumed or not and why."""
    from jobs.terminal import print_fitted

    if not doc["districts"]:
        console.print("No import sync is paused by a reset: nothing to resume.")
        return
    print_fitted(
        console,
        "Import syncs paused by a reset",
        ["district", "school year", "syncs", "why still paused"],
        [
            [
                d["district_id"],
                str(d["school_year"]),
                f"[{'green' if d['status'] == 'resumed' else 'yellow'}]{d['status']}[/]",
                d["why"] or "",
            ]
            for d in doc["districts"]
        ],
        wrap=("why still paused",),
    )
    n = len(doc["resumed"])
    console.print(
        f"Resumed import syncs of {n} district{'s' if n != 1 else ''}; "
        f"{len(doc['waiting'])} still paused.",
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
    names = ", ".join(sorted({str(e["district_id"]) for e in doc["held"]}))
    console.print(
        f"{head}; kept {held} under legal hold{f' ({names})' if held else ''} and {kept} "
        f"younger; {tail}",
        highlight=False,
        markup=False,
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
