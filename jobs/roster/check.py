"""Checking a OneRoster export whole before anything is loaded: values, orgs, users, classes and
enrollments, each problem with its file and line; no warehouse."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from jobs.roster.read import (
    SPECS,
    CsvSpec,
    Roster,
    RosterError,
    fail,
    first_bad_line,
    read_csv,
    read_export_manifest,
)
from jobs.warehouse.contract import GRADE_LEVELS

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


def _check_common(df: pl.DataFrame, spec: CsvSpec) -> pl.DataFrame:
    """Values present, sourcedId unique, status known; status lower-cased."""
    for name in spec.not_empty:
        line = first_bad_line(df, pl.col(name).is_null())
        if line is not None:
            raise fail(spec, line, name, "is empty")
    line = first_bad_line(df, ~pl.col("sourcedId").is_first_distinct())
    if line is not None:
        dup = df.filter(pl.col("line") == line)["sourcedId"][0]
        first = int(df.filter(pl.col("sourcedId") == dup)["line"][0])
        shown = "this sourcedId" if spec.private else f"sourcedId {dup}"
        raise fail(spec, line, "sourcedId", f"{shown} is already on line {first}")
    df = df.with_columns(pl.col("status").str.to_lowercase())
    line = first_bad_line(df, ~pl.col("status").is_in(STATUSES))
    if line is not None:
        raise fail(spec, line, "status", "must be active, tobedeleted or empty")
    return df


def _check_values(df: pl.DataFrame, spec: CsvSpec, column: str, allowed: tuple[str, ...]) -> None:
    line = first_bad_line(df, ~pl.col(column).is_in(allowed))
    if line is not None:
        value = df.filter(pl.col("line") == line)[column][0]
        shown = "this value" if spec.private else repr(value)
        raise fail(spec, line, column, f"{shown} is not one of {', '.join(allowed)}")


@dataclass
class _Orgs:
    known: set[str]  # every org id a row may refer to
    schools: set[str]  # active schools
    skipped_schools: set[str]


def _check_orgs(df: pl.DataFrame, district_id: str) -> tuple[_Orgs, pl.DataFrame]:
    spec = SPECS["orgs"]
    df = _check_common(df, spec).with_columns(pl.col("type").str.to_lowercase())
    _check_values(df, spec, "type", ORG_TYPES)
    line = first_bad_line(df, (pl.col("type") == "district") & (pl.col("sourcedId") != district_id))
    if line is not None:
        raise fail(
            spec,
            line,
            "sourcedId",
            f"the district org is not --district {district_id}: "
            "this export belongs to another district",
        )
    known = set(df["sourcedId"].to_list()) | {district_id}
    line = first_bad_line(df, ~pl.col("parentSourcedId").is_in(list(known)))
    if line is not None:
        raise fail(spec, line, "parentSourcedId", "no org in orgs.csv has this sourcedId")
    schools = df.filter(pl.col("type") == "school")
    active = schools.filter(pl.col("status").ne_missing("tobedeleted"))
    line = first_bad_line(active, pl.col("name").is_null())
    if line is not None:
        raise fail(spec, line, "name", "a school needs a name")
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
    line = first_bad_line(long, ~pl.col("orgSourcedIds").is_in(list(orgs.known)))
    if line is not None:
        raise fail(spec, line, "orgSourcedIds", "refers to an org that is not in orgs.csv")
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
    line = first_bad_line(df, pl.col("orgSourcedIds").is_null())
    if line is not None:
        raise fail(spec, line, "orgSourcedIds", "every user needs an org")
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
    line = first_bad_line(df, pl.col("school_id").is_null())
    if line is not None:
        raise fail(spec, line, "orgSourcedIds", "a student needs a school from orgs.csv")
    # grades is a list (a student of a combined-grade program has several): keep the lowest
    # grade of PK..12; none there, or no grade at all, leaves grade_level null
    listed = (
        df.select("line", pl.col("grades").str.split(","))
        .explode("grades")
        .with_columns(pl.col("grades").str.strip_chars().str.to_uppercase())
        .filter(pl.col("grades").is_not_null() & (pl.col("grades") != ""))
    )
    line = first_bad_line(listed, ~pl.col("grades").is_in([*GRADES, *OTHER_GRADES]))
    if line is not None:
        raise fail(
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
    line = first_bad_line(df, ~pl.col("schoolSourcedId").is_in(list(orgs.known)))
    if line is not None:
        value = df.filter(pl.col("line") == line)["schoolSourcedId"][0]
        raise fail(spec, line, "schoolSourcedId", f"org {value} is not in orgs.csv")
    line = first_bad_line(df, ~pl.col("schoolSourcedId").is_in(list(schools)))
    if line is not None:
        value = df.filter(pl.col("line") == line)["schoolSourcedId"][0]
        raise fail(spec, line, "schoolSourcedId", f"org {value} is not a school")
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
    line = first_bad_line(df, ~pl.col("primary").is_in(["true", "false"]))
    if line is not None:
        raise fail(spec, line, "primary", "must be true, false or empty")
    line = first_bad_line(df, ~pl.col("schoolSourcedId").is_in(list(orgs.known)))
    if line is not None:
        raise fail(spec, line, "schoolSourcedId", "refers to an org that is not in orgs.csv")
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
    line = first_bad_line(df, pl.col("class_in").is_null())
    if line is not None:
        value = df.filter(pl.col("line") == line)["classSourcedId"][0]
        raise fail(spec, line, "classSourcedId", f"class {value} is not in classes.csv")
    line = first_bad_line(df, pl.col("user_in").is_null())
    if line is not None:
        raise fail(spec, line, "userSourcedId", "refers to a user that is not in users.csv")
    line = first_bad_line(df, (pl.col("role") == "student") & (pl.col("user_role") != "student"))
    if line is not None:
        raise fail(spec, line, "userSourcedId", "a student enrollment of a user who is not one")
    # an aide or proctor may hold a teacher enrollment (1.1 has no aide enrollment role):
    # like the user, it is not loaded; a student never teaches a class
    line = first_bad_line(df, (pl.col("role") == "teacher") & (pl.col("user_role") == "student"))
    if line is not None:
        raise fail(spec, line, "userSourcedId", "a teacher enrollment of a user who is a student")
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
    read_export_manifest(directory)
    frames: dict[str, pl.DataFrame] = {}
    for name, spec in SPECS.items():
        path = directory / f"{name}.csv"
        if not path.is_file():
            raise RosterError(
                f"{directory} has no {name}.csv: a OneRoster bulk export holds "
                "orgs.csv, users.csv, classes.csv and enrollments.csv"
            )
        frames[name] = read_csv(path, spec)
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
