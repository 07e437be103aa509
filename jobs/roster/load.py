"""`eoy-reset import-oneroster`: the new school year's rostering.

A district's OneRoster 1.1 CSV bulk export (what districts drop on the `oneroster_sftp`
sync) is checked whole, then loaded into schema `app` in one transaction that ends by
writing the `rostering_runs` row `resume-syncs` waits for.

Reading: `manifest.csv` (optional; `oneroster.version` must be 1.1 and each `file.*` of the
four files below `bulk`; other files of the export are not read), `orgs.csv`, `users.csv`,
`classes.csv`, `enrollments.csv`, each UTF-8 (a byte order mark is fine), RFC 4180, header
row first. Columns the import does not use may be absent, and any others (`metadata.*`
extensions) present; a missing column it uses is an error. Optional fields may be empty,
`status` and `dateLastModified` too (bulk files); a line with no value at all is no row. A
line number is the row's number counting the header as 1.

Mapping:
- orgs: `type=school` → app.schools (school_id = sourcedId). A `district` org must be
  --district. `department`, `local`, `state` and `national` orgs may be referred to, and are
  not loaded. The district itself must already be in app.districts.
- users: `teacher` / `administrator` → app.educators; school_id is the first of the user's
  orgSourcedIds that is a school, null for district staff; a new educator gets created_at now
  and last_login_at null, an existing one keeps both. `student` → app.students with the
  first school of orgSourcedIds (a student needs one) and a grade_level from `grades`, a
  list of CEDS entry grade levels: PK; KG or K; 01-12 or 1-12 → PK, K, 1-12. A student of
  a combined-grade program lists several: the lowest of PK..12 is kept. IT, PR, TK, 13, PS,
  UG and Other are valid but outside the contract: alone, or with no grade at all, they leave
  grade_level null. Any other value is an error. `aide`, `guardian`, `parent`, `proctor`
  and `relative` users are not loaded. `enabledUser` is not read: it governs sign-in, not
  the roster.
- classes → app.classrooms, school = schoolSourcedId (a school), name = title, whatever the
  classType (`homeroom`, `scheduled`); educator = the `primary` teacher enrollment of a
  teacher or administrator, else the first such teacher enrollment in file order, else null;
  product `imagine_math_facts` when title, classCode or subjects hold the word "facts" (any
  case), else `imagine_math`.
- enrollments: `student` → app.classroom_enrollments (one row per class and student);
  `teacher` rows only choose the class's educator (one of an aide or proctor user is not
  loaded; one of a student is an error); `administrator` / `proctor` rows are not loaded.
- Rows with status `tobedeleted` are skipped, and so are the rows that hang on them (a class
  of a skipped school, an enrollment of a skipped class or user). An id that no file holds is
  an error.
- The import adds and updates, never deletes: a row the files no longer list stays. The same
  files imported twice leave the same state (created_at, last_login_at and the first
  rostering_runs row are kept).

Safety: every file is checked before anything is written; the district's student data of
the previous school year must be gone (its reset completed in the ledger) unless the district
holds no student data, or was rostered for this school year already with no reset pending;
no id may belong to another district; all writes are one transaction. Errors name file, line
and column; values from users.csv never appear in them, nor in any output.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow.csv as pacsv
from rich.console import Console
from rich.table import Table as RichTable

from jobs.config import Settings
from jobs.faults import fault_point
from jobs.roster.check import read_roster
from jobs.roster.read import (
    Roster,
    RosterError,
)
from jobs.warehouse.connection import DuckDBWarehouse, PostgresWarehouse, Warehouse, connect
from jobs.warehouse.contract import DELETED_TABLES, TABLES
from jobs.warehouse.ledger import utcnow
from jobs.warehouse.locks import command_lock, release_district_lock, try_district_lock

# app tables in the order they are written (parents first), with the staged columns.
STAGED: dict[str, tuple[str, ...]] = {
    "schools": ("school_id", "name"),
    "educators": ("educator_id", "school_id", "email", "first_name", "last_name", "role"),
    "students": ("student_id", "school_id", "username", "first_name", "last_name", "grade_level"),
    "classrooms": ("classroom_id", "school_id", "educator_id", "product", "name"),
    "classroom_enrollments": ("classroom_id", "student_id"),
}
# Which file and what kind of row each table comes from, for error messages.
ORIGIN = {
    "schools": ("orgs", "school"),
    "educators": ("users", "educator"),
    "students": ("users", "student"),
    "classrooms": ("classes", "class"),
}


# ---------------------------------------------------------------------------------------
# the warehouse: stage, check, write (one transaction)
# ---------------------------------------------------------------------------------------
def _stage_name(table: str) -> str:
    return f"_roster_{table}"


@contextmanager
def _staged(wh: Warehouse, roster: Roster) -> Iterator[None]:
    """The roster's rows as relations `_roster_<table>` on the warehouse's own connection,
    so checks and writes are set-based SQL inside the caller's transaction."""
    if isinstance(wh, DuckDBWarehouse):
        for name, table in roster.tables.items():
            wh.con.register(_stage_name(name), table)
        try:
            yield
        finally:
            for name in roster.tables:
                wh.con.unregister(_stage_name(name))
        return
    assert isinstance(wh, PostgresWarehouse)
    for name, table in roster.tables.items():
        columns = ", ".join(
            f"{c} {'bigint' if c == 'line' else 'text'}" for c in table.column_names
        )
        wh.execute(f"create temp table {_stage_name(name)} ({columns}) on commit drop")
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer)  # quoted text, null as an unquoted empty field
        copy_sql = (
            f"copy {_stage_name(name)} ({', '.join(table.column_names)}) "
            "from stdin (format csv, header true)"
        )
        with wh.con.cursor() as cur, cur.copy(copy_sql) as copy:
            copy.write(buffer.getvalue())
    yield


def _holds_student_data(wh: Warehouse, district_id: str) -> bool:
    return any(
        wh.query(f"select 1 from app.{table} where district_id = %s limit 1", [district_id])
        for table in DELETED_TABLES
    )


def _check_ledger(wh: Warehouse, district_id: str, school_year: int) -> None:
    """The reset of the previous school year must come first, and no later one."""
    if not wh.scalar("select count(*) from app.districts where district_id = %s", [district_id]):
        raise RosterError(
            f"district {district_id} is not in app.districts: rostering fills a district "
            "that exists; check --district"
        )
    runs = dict(
        wh.query(
            "select school_year, status from eoy_runner.reset_runs "
            "where district_id = %s and school_year >= %s",
            [district_id, school_year - 1],
        )
    )
    later = sorted(y for y in runs if int(y) >= school_year)
    if later:
        raise RosterError(
            f"district {district_id} already has a reset of school year {later[-1]} in the "
            f"ledger: a roster of school year {school_year} would mix years; "
            f"import the roster of school year {int(later[-1]) + 1}"
        )
    previous = runs.get(school_year - 1)
    if previous == "completed" or not _holds_student_data(wh, district_id):
        return
    rostered = wh.scalar(
        "select count(*) from app.rostering_runs where district_id = %s and school_year = %s",
        [district_id, school_year],
    )
    if previous is None and rostered:
        return  # rostered for this year already (a district new this year): a re-import
    state = "not recorded" if previous is None else previous
    raise RosterError(
        f"district {district_id} still holds student data and its reset of school year "
        f"{school_year - 1} is {state}: complete that reset (eoy-reset run) before rostering "
        f"school year {school_year}"
    )


def _check_tenants(wh: Warehouse, district_id: str) -> None:
    """No school, educator, student or classroom id of the roster may be another district's."""
    for table, (file, kind) in ORIGIN.items():
        key = TABLES[table].primary_key[0]
        rows = wh.query(
            f"select s.line, a.district_id, s.{key} from {_stage_name(table)} s "
            f"join app.{table} a on a.{key} = s.{key} "
            "where a.district_id <> %s order by s.line limit 1",
            [district_id],
        )
        if rows:
            line, other, key_value = rows[0]
            shown = f"this {kind}'s sourcedId" if file == "users" else f"{kind} {key_value}"
            raise RosterError(
                f"{file}.csv line {line}: {shown} already belongs to district {other}: "
                "a roster never takes over another district's rows"
            )


def _new_rows(wh: Warehouse) -> dict[str, int]:
    """Rows of each table the import will add (the rest it updates)."""
    counts: dict[str, int] = {}
    for table in STAGED:
        keys = TABLES[table].primary_key
        match = " and ".join(f"a.{k} = s.{k}" for k in keys)
        counts[table] = int(
            wh.scalar(
                f"select count(*) from {_stage_name(table)} s "
                f"where not exists (select 1 from app.{table} a where {match})"
            )
        )
    return counts


def _upsert_sql(table: str) -> list[str]:
    """Update an existing row's roster columns (keeping its timestamps), then insert the new
    rows. Two statements rather than `insert … on conflict`: on DuckDB the student-data tables
    carry no primary key to conflict on (an ART index would make every reset's delete slow),
    and rows are matched on the key either way. The staged rows' keys are unique (checked
    when the files are read), so the table's keys stay unique."""
    staged = STAGED[table]
    keys = TABLES[table].primary_key
    match = " and ".join(f"a.{k} = s.{k}" for k in keys)
    stage = _stage_name(table)
    statements = []
    updates = [c for c in staged if c not in keys]
    if updates:
        sets = ", ".join(f"{c} = s.{c}" for c in updates)
        statements.append(f"update app.{table} as a set {sets} from {stage} s where {match}")
    columns = [*staged, "district_id"]
    values = [f"s.{c}" for c in staged] + ["%s"]
    if "created_at" in TABLES[table].column_names:
        columns.append("created_at")
        values.append("%s")
    if "last_login_at" in TABLES[table].column_names:
        columns.append("last_login_at")
        values.append("cast(null as timestamp)")
    statements.append(
        f"insert into app.{table} ({', '.join(columns)}) "
        f"select {', '.join(values)} from {stage} s "
        f"where not exists (select 1 from app.{table} a where {match})"
    )
    return statements


def _write(wh: Warehouse, roster: Roster, school_year: int, tick: Callable[[str], None]) -> str:
    """Every table, then the rostering_runs row; returns its completed_at."""
    now = utcnow()
    for table in STAGED:
        params: list[Any] = [roster.district_id]
        if "created_at" in TABLES[table].column_names:
            params.append(now)
        tick(f"write {table}")
        *updates, insert = _upsert_sql(table)
        for statement in updates:
            wh.execute(statement)
        wh.execute(insert, params)
        fault_point(f"import:{table}")  # tests kill the process here: nothing may be left
    tick("write rostering_runs")
    wh.execute(
        "insert into app.rostering_runs (district_id, school_year, completed_at) "
        "values (%s, %s, %s) on conflict (district_id, school_year) do nothing",
        [roster.district_id, school_year, now],
    )
    completed = wh.scalar(
        "select completed_at from app.rostering_runs where district_id = %s and school_year = %s",
        [roster.district_id, school_year],
    )
    return str(completed)


def _prepare(wh: Warehouse, roster: Roster, school_year: int) -> dict[str, int]:
    """Checks on the warehouse; the rows each table would gain. Call inside _staged."""
    _check_ledger(wh, roster.district_id, school_year)
    _check_tenants(wh, roster.district_id)
    return _new_rows(wh)


# ---------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------
Confirm = Callable[[dict[str, Any]], bool]


@contextmanager
def _progress(show: bool, steps: int) -> Iterator[Callable[[str], None]]:
    """A tick(step) callback driving a rich progress bar on stderr (or nothing)."""
    if not show:
        yield lambda step: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("import-oneroster {task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("", total=steps)

        def tick(step: str) -> None:
            bar.update(task, advance=1, description=step)

        yield tick


def import_oneroster(
    settings: Settings,
    directory: Path,
    district_id: str,
    school_year: int,
    *,
    yes: bool = False,
    confirm: Confirm | None = None,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Check the export, then load it and record the rostering in one transaction."""
    if not (yes or confirm):
        raise RosterError("refusing to import without --yes or a confirmation at a terminal")
    began = time.perf_counter()
    roster = read_roster(directory, district_id)
    doc: dict[str, Any] = {
        "district_id": district_id,
        "school_year": school_year,
        "warehouse": settings.describe(),
        "rows": roster.rows(),
        "not_loaded": roster.not_loaded,
        **roster.grades,
    }
    with command_lock(settings), connect(settings) as wh:
        # on PostgreSQL a run, restore or import of the district holds this lock
        if not try_district_lock(wh, district_id, school_year - 1):
            raise RosterError(
                f"district {district_id} is being worked on by another eoy-reset process "
                "(a run, restore or roster import): import when it has finished"
            )
        try:
            if not yes:
                with wh.transaction(), _staged(wh, roster):
                    doc["new"] = _prepare(wh, roster, school_year)
                assert confirm is not None
                if not confirm(doc):
                    raise RosterError("confirmation did not match: nothing was imported")
            with _progress(show_progress, len(STAGED) + 3) as tick:
                tick("check")
                with wh.transaction(), _staged(wh, roster):
                    doc["new"] = _prepare(wh, roster, school_year)
                    doc["rostering_completed_at"] = _write(wh, roster, school_year, tick)
                tick("done")
        finally:
            release_district_lock(wh, district_id, school_year - 1)
    doc["seconds"] = round(time.perf_counter() - began, 2)
    return doc


def render_import(console: Console, doc: dict[str, Any]) -> None:
    """Rows per table (new, already in app); counts only, never a value from the files."""
    done = "rostering_completed_at" in doc
    title = (
        f"{'Imported' if done else 'To import'}: OneRoster of district {doc['district_id']}, "
        f"school year {doc['school_year']}"
    )
    grid = RichTable(title=title, title_justify="left")
    for name in ("table", "rows", "new", "already in app"):
        grid.add_column(name, justify="left" if name == "table" else "right")
    for table, rows in doc["rows"].items():
        new = doc.get("new", {}).get(table, 0)
        grid.add_row(f"app.{table}", f"{rows:,}", f"{new:,}", f"{rows - new:,}")
    console.print(grid)
    skipped = ", ".join(f"{n:,} of {f}.csv" for f, n in doc["not_loaded"].items() if n)
    if skipped:
        console.print(f"Rows not loaded (tobedeleted, other roles or org types): {skipped}.")
    several = doc.get("students_with_several_grades", 0)
    if several:
        console.print(
            f"{several:,} students list several grades (a combined-grade program): "
            "each gets the lowest.",
            highlight=False,
        )
    ungraded = doc.get("students_without_grade_level", 0)
    if ungraded:
        console.print(
            f"{ungraded:,} students have no grade from PK to 12 (none given, or IT, PR, TK, 13, "
            "PS, UG, Other): their grade_level is empty.",
            highlight=False,
        )
    if done:
        console.print(
            f"Rostering of school year {doc['school_year']} is recorded as complete; "
            "`eoy-reset resume-syncs` turns the district's syncs back on.",
            highlight=False,
        )


def confirm_at_terminal(console: Console) -> Confirm:
    """Show what would be imported and have the operator type the district id."""

    def ask(doc: dict[str, Any]) -> bool:
        from jobs.terminal import typed_confirmation

        render_import(console, doc)
        return typed_confirmation("import", str(doc["district_id"]))

    return ask
