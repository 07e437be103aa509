"""`eoy-reset import-oneroster`: the new school year's rostering (SPEC §6, §8).

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

import csv
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
from rich.console import Console
from rich.table import Table as RichTable

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.faults import fault_point
from jobs.warehouse.connection import DuckDBWarehouse, PostgresWarehouse, Warehouse, connect
from jobs.warehouse.contract import DELETED_TABLES, GRADE_LEVELS, TABLES
from jobs.warehouse.ledger import utcnow
from jobs.warehouse.locks import command_lock, release_district_lock, try_district_lock


class RosterError(EoyError):
    """The export or the warehouse state does not allow the import; nothing was written."""


@dataclass(frozen=True)
class CsvSpec:
    file: str
    required: tuple[str, ...]  # columns the import reads: must be in the header
    optional: tuple[str, ...]  # read when present, null when absent
    not_empty: tuple[str, ...]  # values every row must carry
    private: bool = False  # users.csv: errors name line and column, never a value


SPECS = {
    "orgs": CsvSpec(
        "orgs",
        ("sourcedId", "name", "type"),
        ("status", "parentSourcedId"),
        ("sourcedId", "type"),
    ),
    "users": CsvSpec(
        "users",
        ("sourcedId", "orgSourcedIds", "role", "givenName", "familyName"),
        ("status", "username", "email", "grades"),
        ("sourcedId", "role"),
        private=True,
    ),
    "classes": CsvSpec(
        "classes",
        ("sourcedId", "title", "schoolSourcedId"),
        ("status", "classCode", "subjects"),
        ("sourcedId", "title", "schoolSourcedId"),
    ),
    "enrollments": CsvSpec(
        "enrollments",
        ("sourcedId", "classSourcedId", "userSourcedId", "role"),
        ("status", "primary", "schoolSourcedId"),
        ("sourcedId", "classSourcedId", "userSourcedId", "role"),
    ),
}

ORG_TYPES = ("district", "school", "department", "local", "state", "national")
USER_ROLES = (
    "administrator",
    "aide",
    "guardian",
    "parent",
    "proctor",
    "relative",
    "student",
    "teacher",
)
EDUCATOR_ROLES = ("teacher", "administrator")
ENROLLMENT_ROLES = ("administrator", "proctor", "student", "teacher")
STATUSES = ("active", "tobedeleted")
# users.grades: CEDS entry grade levels (OneRoster 1.1). PK..12 map to the contract's
# grade_level; the others are valid but outside it, and leave grade_level null.
GRADES = {"PK": "PK", "KG": "K", "K": "K"}
GRADES |= {f"{g:02d}": str(g) for g in range(1, 13)} | {str(g): str(g) for g in range(1, 13)}
OTHER_GRADES = ("IT", "PR", "TK", "13", "PS", "UG", "OTHER")
GRADE_RANK = {code: GRADE_LEVELS.index(level) for code, level in GRADES.items()}
FACTS = r"(?i)\bfacts\b"

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


@dataclass
class Roster:
    """A checked export: the rows for each app table (with their line), and per file how
    many rows became no app row (tobedeleted, roles and org types not loaded, teacher
    enrollments, repeated enrollments)."""

    district_id: str
    tables: dict[str, pa.Table]
    not_loaded: dict[str, int] = field(default_factory=dict)
    grades: dict[str, int] = field(default_factory=dict)  # students_with_several_grades, …

    def rows(self) -> dict[str, int]:
        return {name: table.num_rows for name, table in self.tables.items()}


# ---------------------------------------------------------------------------------------
# reading and checking the files (no warehouse)
# ---------------------------------------------------------------------------------------
def _fail(spec: CsvSpec, line: int, column: str, problem: str) -> RosterError:
    return RosterError(f"{spec.file}.csv line {line}, column {column}: {problem}")


def _first_line(df: pl.DataFrame, bad: pl.Expr) -> int | None:
    """Line of the first row where `bad` holds (null counts as not bad)."""
    hit = df.filter(bad.fill_null(False)).select("line").head(1)
    return int(hit["line"][0]) if hit.height else None


def _csv_problem(exc: Exception) -> str:
    """What went wrong, without the file's text (polars quotes values in its messages)."""
    text = str(exc).lower()
    if "more fields" in text:
        return "a row has more fields than the header"
    if "utf-8" in text or "utf8" in text:
        return "it is not UTF-8"
    if "could not parse" in text or "quote" in text:
        return "a quoted field is not closed"
    return f"{type(exc).__name__}"


def _read_csv(path: Path, spec: CsvSpec) -> pl.DataFrame:
    """All columns as text, header checked, values trimmed, empty as null, a `line` column."""
    try:
        raw = pl.read_csv(path, has_header=False, infer_schema=False)
    except pl.exceptions.NoDataError:
        raise RosterError(f"{spec.file}.csv is empty: it needs a header row") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RosterError(
            f"{spec.file}.csv is not well-formed CSV ({_csv_problem(exc)}): "
            "export it again as UTF-8 CSV"
        ) from None
    header = [(h or "").strip() for h in raw.row(0)]
    for i, name in enumerate(header):
        if name and name in header[:i]:
            raise _fail(spec, 1, name, "this column appears twice in the header")
    for name in spec.required:
        if name not in header:
            raise RosterError(
                f"{spec.file}.csv line 1: the header has no column {name}, which the import needs"
            )
    body = raw.slice(1)
    columns: list[pl.Expr] = []
    for name in (*spec.required, *spec.optional):
        if name in header:
            value = pl.col(raw.columns[header.index(name)]).str.strip_chars()
            columns.append(pl.when(value == "").then(None).otherwise(value).alias(name))
        else:
            columns.append(pl.lit(None, pl.String).alias(name))
    # a line with no value at all (a blank line at the end of a file) is no row
    blank = pl.all_horizontal(pl.col(c).str.strip_chars().fill_null("") == "" for c in raw.columns)
    return (
        body.select(*columns, blank.alias("_blank"))
        .with_row_index("line", offset=2)
        .cast({"line": pl.Int64})
        .filter(~pl.col("_blank"))
        .drop("_blank")
    )


def _check_common(df: pl.DataFrame, spec: CsvSpec) -> pl.DataFrame:
    """Values present, sourcedId unique, status known; status lower-cased."""
    for name in spec.not_empty:
        line = _first_line(df, pl.col(name).is_null())
        if line is not None:
            raise _fail(spec, line, name, "is empty")
    line = _first_line(df, ~pl.col("sourcedId").is_first_distinct())
    if line is not None:
        dup = df.filter(pl.col("line") == line)["sourcedId"][0]
        first = int(df.filter(pl.col("sourcedId") == dup)["line"][0])
        shown = "this sourcedId" if spec.private else f"sourcedId {dup}"
        raise _fail(spec, line, "sourcedId", f"{shown} is already on line {first}")
    df = df.with_columns(pl.col("status").str.to_lowercase())
    line = _first_line(df, ~pl.col("status").is_in(STATUSES))
    if line is not None:
        raise _fail(spec, line, "status", "must be active, tobedeleted or empty")
    return df


def _check_values(df: pl.DataFrame, spec: CsvSpec, column: str, allowed: tuple[str, ...]) -> None:
    line = _first_line(df, ~pl.col(column).is_in(allowed))
    if line is not None:
        value = df.filter(pl.col("line") == line)[column][0]
        shown = "this value" if spec.private else repr(value)
        raise _fail(spec, line, column, f"{shown} is not one of {', '.join(allowed)}")


def _read_manifest(directory: Path) -> None:
    """If there is a manifest: OneRoster 1.1, and bulk files only."""
    path = directory / "manifest.csv"
    if not path.is_file():
        return
    spec = CsvSpec("manifest", ("propertyName", "value"), (), ("propertyName",))
    df = _read_csv(path, spec)
    for line, name, value in df.select("line", "propertyName", "value").iter_rows():
        value = (value or "").lower()
        if name == "oneroster.version" and value != "1.1":
            raise _fail(spec, line, "value", f"oneroster.version is {value!r}; this reads 1.1")
        if name.startswith("file.") and name[5:] in SPECS and value != "bulk":
            raise _fail(
                spec,
                line,
                "value",
                f"{name} is {value!r}: import-oneroster takes a bulk export of "
                "orgs, users, classes and enrollments",
            )


@dataclass
class _Orgs:
    known: set[str]  # every org id a row may refer to
    schools: set[str]  # active schools
    skipped_schools: set[str]


def _check_orgs(df: pl.DataFrame, district_id: str) -> tuple[_Orgs, pl.DataFrame]:
    spec = SPECS["orgs"]
    df = _check_common(df, spec).with_columns(pl.col("type").str.to_lowercase())
    _check_values(df, spec, "type", ORG_TYPES)
    line = _first_line(df, (pl.col("type") == "district") & (pl.col("sourcedId") != district_id))
    if line is not None:
        raise _fail(
            spec,
            line,
            "sourcedId",
            f"the district org is not --district {district_id}: "
            "this export belongs to another district",
        )
    known = set(df["sourcedId"].to_list()) | {district_id}
    line = _first_line(df, ~pl.col("parentSourcedId").is_in(list(known)))
    if line is not None:
        raise _fail(spec, line, "parentSourcedId", "no org in orgs.csv has this sourcedId")
    schools = df.filter(pl.col("type") == "school")
    active = schools.filter(pl.col("status").ne_missing("tobedeleted"))
    line = _first_line(active, pl.col("name").is_null())
    if line is not None:
        raise _fail(spec, line, "name", "a school needs a name")
    orgs = _Orgs(
        known=known,
        schools=set(active["sourcedId"].to_list()),
        skipped_schools=set(schools["sourcedId"].to_list()) - set(active["sourcedId"].to_list()),
    )
    rows = active.select("line", pl.col("sourcedId").alias("school_id"), "name")
    return orgs, rows


def _first_school(users: pl.DataFrame, orgs: _Orgs) -> pl.DataFrame:
    """sourcedId → the first of its orgSourcedIds that is an active school; checks every id."""
    spec = SPECS["users"]
    long = (
        users.select("line", "sourcedId", pl.col("orgSourcedIds").str.split(","))
        .explode("orgSourcedIds")
        .with_columns(pl.col("orgSourcedIds").str.strip_chars())
        .filter(pl.col("orgSourcedIds") != "")
    )
    line = _first_line(long, ~pl.col("orgSourcedIds").is_in(list(orgs.known)))
    if line is not None:
        raise _fail(spec, line, "orgSourcedIds", "refers to an org that is not in orgs.csv")
    return (
        long.filter(pl.col("orgSourcedIds").is_in(list(orgs.schools)))
        .group_by("sourcedId", maintain_order=True)
        .first()
        .select("sourcedId", pl.col("orgSourcedIds").alias("school_id"))
    )


def _check_users(df: pl.DataFrame, orgs: _Orgs) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(educators, students, every user's id, role and whether it is loaded)."""
    spec = SPECS["users"]
    df = _check_common(df, spec).with_columns(pl.col("role").str.to_lowercase())
    _check_values(df, spec, "role", USER_ROLES)
    line = _first_line(df, pl.col("orgSourcedIds").is_null())
    if line is not None:
        raise _fail(spec, line, "orgSourcedIds", "every user needs an org")
    df = df.join(_first_school(df, orgs), on="sourcedId", how="left", maintain_order="left")
    wanted = pl.col("status").ne_missing("tobedeleted")
    loaded = df.filter(wanted & pl.col("role").is_in([*EDUCATOR_ROLES, "student"]))
    students = _students(loaded.filter(pl.col("role") == "student"))
    educators = loaded.filter(pl.col("role").is_in(EDUCATOR_ROLES)).select(
        "line",
        pl.col("sourcedId").alias("educator_id"),
        "school_id",
        "email",
        pl.col("givenName").alias("first_name"),
        pl.col("familyName").alias("last_name"),
        "role",
    )
    index = df.select(
        "sourcedId", "role", pl.col("sourcedId").is_in(loaded["sourcedId"].implode()).alias("in")
    )
    return educators, students, index


def _students(df: pl.DataFrame) -> pl.DataFrame:
    spec = SPECS["users"]
    line = _first_line(df, pl.col("school_id").is_null())
    if line is not None:
        raise _fail(spec, line, "orgSourcedIds", "a student needs a school from orgs.csv")
    # grades is a list (a student of a combined-grade program has several): keep the lowest
    # grade of PK..12; none there, or no grade at all, leaves grade_level null
    listed = (
        df.select("line", pl.col("grades").str.split(","))
        .explode("grades")
        .with_columns(pl.col("grades").str.strip_chars().str.to_uppercase())
        .filter(pl.col("grades").is_not_null() & (pl.col("grades") != ""))
    )
    line = _first_line(listed, ~pl.col("grades").is_in([*GRADES, *OTHER_GRADES]))
    if line is not None:
        raise _fail(
            spec,
            line,
            "grades",
            "unknown grade: use the CEDS grade levels of OneRoster 1.1 "
            "(PK, KG, 01 to 12; IT, PR, TK, 13, PS, UG, Other)",
        )
    levels = listed.group_by("line").agg(
        pl.col("grades").replace_strict(GRADE_RANK, default=None).min().alias("rank"),
        (pl.col("grades").n_unique() > 1).alias("several_grades"),
    )
    df = df.join(levels, on="line", how="left", maintain_order="left").with_columns(
        pl.col("rank").replace_strict(dict(enumerate(GRADE_LEVELS)), default=None).alias("grades"),
        pl.col("several_grades").fill_null(False),
    )
    return df.select(
        "line",
        pl.col("sourcedId").alias("student_id"),
        "school_id",
        "username",
        pl.col("givenName").alias("first_name"),
        pl.col("familyName").alias("last_name"),
        pl.col("grades").alias("grade_level"),
        "several_grades",
    )


def _check_classes(df: pl.DataFrame, orgs: _Orgs) -> pl.DataFrame:
    """Every class with whether it is loaded; products decided."""
    spec = SPECS["classes"]
    df = _check_common(df, spec)
    schools = orgs.schools | orgs.skipped_schools
    line = _first_line(df, ~pl.col("schoolSourcedId").is_in(list(orgs.known)))
    if line is not None:
        value = df.filter(pl.col("line") == line)["schoolSourcedId"][0]
        raise _fail(spec, line, "schoolSourcedId", f"org {value} is not in orgs.csv")
    line = _first_line(df, ~pl.col("schoolSourcedId").is_in(list(schools)))
    if line is not None:
        value = df.filter(pl.col("line") == line)["schoolSourcedId"][0]
        raise _fail(spec, line, "schoolSourcedId", f"org {value} is not a school")
    facts = pl.any_horizontal(
        pl.col(c).str.contains(FACTS).fill_null(False) for c in ("title", "classCode", "subjects")
    )
    return df.with_columns(
        (
            pl.col("status").ne_missing("tobedeleted")
            & pl.col("schoolSourcedId").is_in(list(orgs.schools))
        ).alias("in"),
        pl.when(facts)
        .then(pl.lit("imagine_math_facts"))
        .otherwise(pl.lit("imagine_math"))
        .alias("product"),
    )


def _check_enrollments(
    df: pl.DataFrame, orgs: _Orgs, users: pl.DataFrame, classes: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(student enrollments to load, each class's educator)."""
    spec = SPECS["enrollments"]
    df = _check_common(df, spec).with_columns(
        pl.col("role").str.to_lowercase(), pl.col("primary").str.to_lowercase()
    )
    _check_values(df, spec, "role", ENROLLMENT_ROLES)
    line = _first_line(df, ~pl.col("primary").is_in(["true", "false"]))
    if line is not None:
        raise _fail(spec, line, "primary", "must be true, false or empty")
    line = _first_line(df, ~pl.col("schoolSourcedId").is_in(list(orgs.known)))
    if line is not None:
        raise _fail(spec, line, "schoolSourcedId", "refers to an org that is not in orgs.csv")
    df = df.join(
        classes.select(pl.col("sourcedId").alias("classSourcedId"), pl.col("in").alias("class_in")),
        on="classSourcedId",
        how="left",
        maintain_order="left",
    ).join(
        users.rename({"sourcedId": "userSourcedId", "role": "user_role", "in": "user_in"}),
        on="userSourcedId",
        how="left",
        maintain_order="left",
    )
    line = _first_line(df, pl.col("class_in").is_null())
    if line is not None:
        value = df.filter(pl.col("line") == line)["classSourcedId"][0]
        raise _fail(spec, line, "classSourcedId", f"class {value} is not in classes.csv")
    line = _first_line(df, pl.col("user_in").is_null())
    if line is not None:
        raise _fail(spec, line, "userSourcedId", "refers to a user that is not in users.csv")
    line = _first_line(df, (pl.col("role") == "student") & (pl.col("user_role") != "student"))
    if line is not None:
        raise _fail(spec, line, "userSourcedId", "a student enrollment of a user who is not one")
    # an aide or proctor may hold a teacher enrollment (1.1 has no aide enrollment role):
    # like the user, it is not loaded; a student never teaches a class
    line = _first_line(df, (pl.col("role") == "teacher") & (pl.col("user_role") == "student"))
    if line is not None:
        raise _fail(spec, line, "userSourcedId", "a teacher enrollment of a user who is a student")
    live = pl.col("status").ne_missing("tobedeleted") & pl.col("class_in")
    live = live & pl.col("user_in")
    used = df.filter(live & pl.col("role").is_in(["student", "teacher"]))
    enrollments = (
        used.filter(pl.col("role") == "student")
        .unique(["classSourcedId", "userSourcedId"], keep="first", maintain_order=True)
        .select(
            "line",
            pl.col("classSourcedId").alias("classroom_id"),
            pl.col("userSourcedId").alias("student_id"),
        )
    )
    educators = (
        used.filter(pl.col("role") == "teacher")
        .sort(pl.col("primary").eq_missing("true"), "line", descending=[True, False])
        .unique("classSourcedId", keep="first")
        .select(pl.col("classSourcedId").alias("sourcedId"), pl.col("userSourcedId"))
    )
    return enrollments, educators


def read_roster(directory: Path, district_id: str) -> Roster:
    """Read and check a OneRoster 1.1 bulk export; no warehouse is touched."""
    if not directory.is_dir():
        raise RosterError(
            f"{directory} is not a folder: pass the folder of the OneRoster CSV files"
        )
    _read_manifest(directory)
    frames: dict[str, pl.DataFrame] = {}
    for name, spec in SPECS.items():
        path = directory / f"{name}.csv"
        if not path.is_file():
            raise RosterError(
                f"{directory} has no {name}.csv: a OneRoster bulk export holds "
                "orgs.csv, users.csv, classes.csv and enrollments.csv"
            )
        frames[name] = _read_csv(path, spec)
    orgs, schools = _check_orgs(frames["orgs"], district_id)
    educators, students, users = _check_users(frames["users"], orgs)
    if students.height == 0:
        raise RosterError(
            "users.csv has no student to import: check the export (an empty roster would "
            "mark rostering complete and resume the district's syncs)"
        )
    classes = _check_classes(frames["classes"], orgs)
    enrollments, teachers = _check_enrollments(frames["enrollments"], orgs, users, classes)
    loaded = classes.filter(pl.col("in")).join(
        teachers, on="sourcedId", how="left", maintain_order="left"
    )
    classrooms = loaded.select(
        "line",
        pl.col("sourcedId").alias("classroom_id"),
        pl.col("schoolSourcedId").alias("school_id"),
        pl.col("userSourcedId").alias("educator_id"),
        "product",
        pl.col("title").alias("name"),
    )
    grades = {
        "students_with_several_grades": int(students["several_grades"].sum()),
        "students_without_grade_level": int(students["grade_level"].is_null().sum()),
    }
    students = students.drop("several_grades")
    tables = {
        "schools": schools,
        "educators": educators,
        "students": students,
        "classrooms": classrooms,
        "classroom_enrollments": enrollments,
    }
    not_loaded = {
        "orgs": frames["orgs"].height - schools.height,
        "users": frames["users"].height - educators.height - students.height,
        "classes": frames["classes"].height - classrooms.height,
        "enrollments": frames["enrollments"].height - enrollments.height,
    }
    return Roster(
        district_id=district_id,
        tables={name: frame.to_arrow() for name, frame in tables.items()},
        not_loaded=not_loaded,
        grades=grades,
    )


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
    """The reset of the previous school year must come first (SPEC §6), and no later one."""
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
        import typer

        render_import(console, doc)
        answer = typer.prompt(
            f"Type {doc['district_id']} to import", default="", show_default=False
        )
        return bool(answer.strip() == doc["district_id"])

    return ask


# ---------------------------------------------------------------------------------------
# a sample export, for the demo and for trying the import
# ---------------------------------------------------------------------------------------
SAMPLE_HEADERS = {name: spec.required + spec.optional for name, spec in SPECS.items()}


def write_sample_export(
    wh: Warehouse, district_id: str, school_year: int, folder: Path, per_class: int = 20
) -> Path:
    """A OneRoster 1.1 bulk export of a district's new school year, as its SIS would send it:
    the district's schools and educators as the warehouse keeps them, one class per teacher
    with a school, and `per_class` new students in each. Names come from the synthetic word
    lists; ids carry the district and the year, so they are new and the district's own."""
    from jobs.synthetic.names import FIRST_NAMES, LAST_NAMES

    schools = wh.query(
        "select school_id, name from app.schools where district_id = %s order by school_id",
        [district_id],
    )
    staff = wh.query(
        "select educator_id, school_id, email, first_name, last_name, role from app.educators "
        "where district_id = %s order by educator_id",
        [district_id],
    )
    if not schools:
        raise RosterError(f"district {district_id!r} has no schools to roster")
    orgs = [{"sourcedId": district_id, "name": district_id, "type": "district"}]
    orgs += [
        {"sourcedId": s, "name": name or s, "type": "school", "parentSourcedId": district_id}
        for s, name in schools
    ]
    users: list[dict[str, str]] = []
    classes: list[dict[str, str]] = []
    enrollments: list[dict[str, str]] = []
    for educator, school, email, first, last, role in staff:
        users.append(
            {
                "sourcedId": educator,
                "orgSourcedIds": school or district_id,
                "role": role if role in EDUCATOR_ROLES else "teacher",
                "givenName": first or "",
                "familyName": last or "",
                "email": email or "",
            }
        )
        if school is None or role == "administrator":
            continue
        n = len(classes)
        grade = 1 + n % 8
        cls = f"{district_id}-y{school_year}-c{n}"
        classes.append(
            {
                "sourcedId": cls,
                "title": f"Math {grade}" + (" facts" if n % 3 == 2 else ""),
                "schoolSourcedId": school,
            }
        )
        enrollments.append(
            {
                "sourcedId": f"{cls}-t",
                "classSourcedId": cls,
                "userSourcedId": educator,
                "role": "teacher",
                "primary": "true",
            }
        )
        for k in range(per_class):
            student = f"{district_id}-y{school_year}-st{n}-{k}"
            i = n * per_class + k
            users.append(
                {
                    "sourcedId": student,
                    "orgSourcedIds": school,
                    "role": "student",
                    "username": f"{district_id}.y{school_year}.{i}",
                    "givenName": FIRST_NAMES[i % len(FIRST_NAMES)],
                    "familyName": LAST_NAMES[(i * 7) % len(LAST_NAMES)],
                    "grades": f"{grade:02d}",
                }
            )
            enrollments.append(
                {
                    "sourcedId": f"{cls}-s{k}",
                    "classSourcedId": cls,
                    "userSourcedId": student,
                    "role": "student",
                }
            )
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (
        ("orgs", orgs),
        ("users", users),
        ("classes", classes),
        ("enrollments", enrollments),
    ):
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, SAMPLE_HEADERS[name], restval="")
            writer.writeheader()
            writer.writerows(rows)
    return folder
