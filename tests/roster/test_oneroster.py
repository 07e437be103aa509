"""`import-oneroster`: a district's OneRoster 1.1 bulk export becomes its roster of
the new school year, only once last year's student data is gone, never over another
district's ids, all or nothing; then `resume-syncs` turns its syncs back on.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from jobs.cli import main
from jobs.config import Settings
from jobs.reset.runner import resume_syncs, run_reset
from jobs.roster.load import import_oneroster
from jobs.roster.read import RosterError
from jobs.roster.sample import write_sample_export
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import APP_TABLES, TABLES
from tests.support.crash_helpers import run_cli
from tests.support.runner_helpers import dump_app, dump_ledger, insert, small_district, without

YEAR = 2024  # the new school year the roster is for
D = "dA"  # the district rostered
OTHER = "dB"  # another tenant, whose rows never change
T0 = datetime(2022, 8, 1, 7, 0)
LOGIN = datetime(2023, 5, 2, 14, 30, 5, 123456)
QUIET = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115

# ---------------------------------------------------------------------------------------
# the export: full OneRoster 1.1 headers, a few rows of every kind
# ---------------------------------------------------------------------------------------
COLUMNS = {
    name: text.split()
    for name, text in {
        "orgs": "sourcedId status dateLastModified name type identifier parentSourcedId",
        "users": "sourcedId status dateLastModified enabledUser orgSourcedIds role username "
        "userIds givenName familyName middleName identifier email sms phone agentSourcedIds "
        "grades password",
        "classes": "sourcedId status dateLastModified title grades courseSourcedId classCode "
        "classType location schoolSourcedId termSourcedIds subjects subjectCodes periods",
        "enrollments": "sourcedId status dateLastModified classSourcedId schoolSourcedId "
        "userSourcedId role primary beginDate endDate",
    }.items()
}
Export = dict[str, list[dict[str, str]]]


def org(sid: str, name: str, kind: str, parent: str = "", status: str = "") -> dict[str, str]:
    return {
        "sourcedId": sid,
        "status": status,
        "name": name,
        "type": kind,
        "parentSourcedId": parent,
    }


def user(sid: str, orgs: str, role: str, given: str, family: str, **more: str) -> dict[str, str]:
    row = {
        "sourcedId": sid,
        "enabledUser": "true",
        "orgSourcedIds": orgs,
        "role": role,
        "givenName": given,
        "familyName": family,
    }
    return row | more


def klass(sid: str, title: str, school: str, **more: str) -> dict[str, str]:
    return {"sourcedId": sid, "title": title, "schoolSourcedId": school} | more


def enrol(sid: str, cls: str, who: str, role: str, **more: str) -> dict[str, str]:
    return {"sourcedId": sid, "classSourcedId": cls, "userSourcedId": who, "role": role} | more


def sample_export() -> Export:
    """Line numbers (header = 1) are what the error tests point at."""
    return {
        "orgs": [
            org(D, "District A", "district"),  # 2
            org("dA-s1", "North Elementary", "school", D),  # 3
            org("dA-s2", "South Middle", "school", D, status="active"),  # 4
            org("dA-s3", "Closed School", "school", D, status="tobedeleted"),  # 5
            org("dA-math", "Math Department", "department", "dA-s1"),  # 6
        ],
        "users": [
            user("t1", "dA-math,dA-s1", "teacher", "Tina", "Teach", email="tina@a.example"),  # 2
            user("t2", D, "administrator", "Adam", "Admin", email="adam@a.example"),  # 3
            user(
                "u1", "dA-s1", "student", "Anouk", "Quillfeather", username="anouk.q", grades="KG"
            ),
            user("u2", "dA-s1", "student", "Beatrix", "Marchbanks", username="bea.m", grades="05"),
            user("u3", "dA-s3,dA-s2", "student", "Casimir", "Oddington", grades="PK"),  # 6
            user("u4", "dA-s2", "student", "Dorothea", "Wimbourne", username="dot.w", grades="12"),
            user(
                "u5", "dA-s2", "student", "Evander", "Pottersby", status="tobedeleted", grades="07"
            ),  # 8
            user("g1", "dA-s1", "guardian", "Gideon", "Hollowell"),  # 9
        ],
        "classes": [
            klass("c1", "Math Facts 3", "dA-s1", classCode="MF3", subjects="math"),  # 2
            klass("c2", "Grade 5 Math", "dA-s1", classCode="M5", subjects="math"),  # 3
            klass("c3", "Fluency block", "dA-s2", subjects="Math,Math Facts"),  # 4
            klass("c4", "Old class", "dA-s3"),  # 5
            klass("c5", "Artifacts of numbers", "dA-s2"),  # 6
        ],
        "enrollments": [
            enrol("e1", "c1", "t2", "teacher", primary="false"),  # 2
            enrol("e2", "c1", "t1", "teacher", primary="true"),  # 3
            enrol("e3", "c1", "u1", "student"),  # 4
            enrol("e4", "c1", "u2", "student"),  # 5
            enrol("e5", "c2", "t2", "teacher", primary="false"),  # 6
            enrol("e6", "c2", "u2", "student"),  # 7
            enrol("e7", "c1", "u1", "student"),  # 8: the same class and student again
            enrol("e8", "c3", "u4", "student"),  # 9
            enrol("e9", "c3", "u5", "student"),  # 10: a skipped student
            enrol("e10", "c4", "u3", "student"),  # 11: a class of a skipped school
            enrol("e11", "c3", "t1", "proctor"),  # 12
        ],
    }


STUDENT_PII = [
    *("Anouk", "Quillfeather", "anouk.q", "Beatrix", "Marchbanks", "bea.m", "Casimir"),
    *("Oddington", "Dorothea", "Wimbourne", "dot.w", "Evander", "Pottersby"),
]

# What lands for district dA (timestamps compared separately).
EXPECTED = {
    "schools": [("dA-s1", D, "North Elementary"), ("dA-s2", D, "South Middle")],
    "educators": [
        ("t1", D, "dA-s1", "tina@a.example", "Tina", "Teach", "teacher"),
        ("t2", D, None, "adam@a.example", "Adam", "Admin", "administrator"),
    ],
    "students": [
        ("u1", D, "dA-s1", "anouk.q", "Anouk", "Quillfeather", "K"),
        ("u2", D, "dA-s1", "bea.m", "Beatrix", "Marchbanks", "5"),
        ("u3", D, "dA-s2", None, "Casimir", "Oddington", "PK"),
        ("u4", D, "dA-s2", "dot.w", "Dorothea", "Wimbourne", "12"),
    ],
    "classrooms": [
        ("c1", D, "dA-s1", "t1", "imagine_math_facts", "Math Facts 3"),
        ("c2", D, "dA-s1", "t2", "imagine_math", "Grade 5 Math"),
        ("c3", D, "dA-s2", None, "imagine_math_facts", "Fluency block"),
        ("c5", D, "dA-s2", None, "imagine_math", "Artifacts of numbers"),
    ],
    "classroom_enrollments": [("c1", "u1", D), ("c1", "u2", D), ("c2", "u2", D), ("c3", "u4", D)],
}
NOT_LOADED = {"orgs": 3, "users": 2, "classes": 1, "enrollments": 7}


def write_export(folder: Path, export: Export) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in export.items():
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, COLUMNS[name], restval="", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return folder


# ---------------------------------------------------------------------------------------
# warehouse state
# ---------------------------------------------------------------------------------------
def ledger_run(wh: Warehouse, district: str, year: int, status: str) -> None:
    wh.execute(
        "insert into eoy_runner.reset_runs (district_id, school_year, status, "
        "effective_reset_date, started_at, finished_at, rows_deleted) "
        "values (%s, %s, %s, %s, %s, %s, 0)",
        [district, year, status, date(year, 7, 28), T0, T0],
    )


def after_reset(wh: Warehouse, reset: str | None = "completed") -> None:
    """dA as a reset leaves it: organizations, an educator, a paused sync, no student data;
    and dB, another district holding a full year of data."""
    insert(wh, "districts", [(D, "District A", "CA")])
    insert(wh, "schools", [("dA-s1", D, "Old name of North")])
    insert(wh, "educators", [("t1", D, None, "old@a.example", "Tina", "Old", "teacher", LOGIN, T0)])
    insert(wh, "import_syncs", [("dA-sync", D, "oneroster_sftp", "paused", T0, None, T0)])
    if reset:
        ledger_run(wh, D, YEAR - 1, reset)
    small_district(wh, OTHER)


def roster_rows(wh: Warehouse, table: str) -> list[tuple[Any, ...]]:
    """dA's rows without the timestamps the import sets."""
    columns = [c for c in TABLES[table].column_names if c not in ("created_at", "last_login_at")]
    rows = wh.query(f"select {', '.join(columns)} from app.{table} where district_id = %s", [D])
    return ordered(rows)


def ordered(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(rows, key=lambda r: tuple("" if v is None else str(v) for v in r))


def others_of(state: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    return {
        t.name: without(state[t.name], t.name, {D}) if "district_id" in t.column_names else []
        for t in APP_TABLES
    }


def snapshot(wh: Warehouse) -> tuple[Any, ...]:
    return dump_app(wh), dump_ledger(wh)


# ---------------------------------------------------------------------------------------
# the command line, in this process
# ---------------------------------------------------------------------------------------
def global_args(settings: Settings) -> list[str]:
    if settings.target == "duckdb":
        return ["--target", "duckdb", "--duckdb-path", str(settings.duckdb_path)]
    return ["--target", "postgres", "--pg-dsn", settings.pg_dsn or ""]


CliRun = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRun]:
    """eoy-reset's entry point with these arguments: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["eoy-reset", *global_args(settings), *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out = capsys.readouterr()
        return int(exit_info.value.code or 0), out.out, out.err

    yield run


def importing(folder: Path, *more: str) -> list[str]:
    return ["import-oneroster", str(folder), "--district", D, "--school-year", str(YEAR), *more]


def one_line_error(code: int, err: str, *needles: str) -> str:
    assert code != 0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("eoy-reset: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------
# the import
# ---------------------------------------------------------------------------------------
def test_the_roster_lands_and_resume_syncs_follows(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path
) -> None:
    after_reset(wh)
    before = dump_app(wh)
    folder = write_export(tmp_path / "export", sample_export())

    code, out, err = cli(*importing(folder, "--yes"))
    assert code == 0, err
    assert "Imported" in out and "app.classroom_enrollments" in out
    for pii in STUDENT_PII:
        assert pii not in out + err

    for table, rows in EXPECTED.items():
        assert roster_rows(wh, table) == ordered(rows), table
    # the retained educator keeps when it was created and last signed in; a new one has never
    stamps = dict(
        (r[0], r[1:])
        for r in wh.query("select educator_id, last_login_at, created_at from app.educators")
    )
    assert stamps["t1"] == (LOGIN, T0)
    assert stamps["t2"][0] is None and stamps["t2"][1] > T0
    assert wh.query("select school_year from app.rostering_runs where district_id = %s", [D]) == [
        (YEAR,)
    ]
    # no other district changed, and dA's retained rows were only updated
    assert others_of(dump_app(wh)) == others_of(before)
    assert roster_rows(wh, "import_syncs") == [
        ("dA-sync", D, "oneroster_sftp", "paused", T0, None, T0)
    ]

    code, out, err = cli("resume-syncs")
    assert code == 0, err
    assert "Resumed import syncs of 1 district" in out
    assert wh.query("select status from app.import_syncs where district_id = %s", [D]) == [
        ("active",)
    ]


def test_json_counts(settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path) -> None:
    after_reset(wh)
    folder = write_export(tmp_path / "export", sample_export())
    code, out, err = cli(*importing(folder, "--yes", "--json"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["rows"] == {t: len(rows) for t, rows in EXPECTED.items()}
    # dA-s1 and t1 were kept through the reset: updated, not new
    assert doc["new"] == {**doc["rows"], "schools": 1, "educators": 1}
    assert doc["not_loaded"] == NOT_LOADED
    assert doc["district_id"] == D and doc["school_year"] == YEAR
    assert doc["rostering_completed_at"]


def test_the_same_files_twice_leave_the_same_state(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    after_reset(wh)
    folder = write_export(tmp_path / "export", sample_export())
    first = import_oneroster(settings, folder, D, YEAR, yes=True)
    state = snapshot(wh)
    again = import_oneroster(settings, folder, D, YEAR, yes=True)
    assert snapshot(wh) == state
    assert again["new"] == {t: 0 for t in EXPECTED}
    assert again["rostering_completed_at"] == first["rostering_completed_at"]


def test_a_corrected_export_updates_and_adds(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    after_reset(wh)
    import_oneroster(settings, write_export(tmp_path / "one", sample_export()), D, YEAR, yes=True)
    export = sample_export()
    export["users"][3]["grades"] = "06"  # u2 moves up a grade
    export["users"].append(user("u6", "dA-s2", "student", "Fenna", "Jolliffe", grades="03"))
    export["enrollments"].append(enrol("e12", "c2", "u6", "student"))
    export["enrollments"].append(enrol("e13", "c2", "t1", "teacher", primary="true"))
    import_oneroster(settings, write_export(tmp_path / "two", export), D, YEAR, yes=True)
    students = {r[0]: r for r in roster_rows(wh, "students")}
    assert students["u2"][-1] == "6" and students["u6"][-1] == "3" and len(students) == 5
    assert ("c2", D, "dA-s1", "t1", "imagine_math", "Grade 5 Math") in roster_rows(wh, "classrooms")
    assert ("c2", "u6", D) in roster_rows(wh, "classroom_enrollments")


# ---------------------------------------------------------------------------------------
# refusals that depend on the warehouse
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("reset", [None, "running", "failed", "restored"])
def test_refused_while_last_years_student_data_is_there(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path, reset: str | None
) -> None:
    small_district(wh, D)  # dA still holds the data of 2022-23
    small_district(wh, OTHER)
    if reset:
        ledger_run(wh, D, YEAR - 1, reset)
    before = snapshot(wh)
    code, _, err = cli(*importing(write_export(tmp_path / "x", sample_export()), "--yes"))
    one_line_error(
        code,
        err,
        "still holds student data",
        f"school year {YEAR - 1} is {reset or 'not recorded'}",
    )
    assert snapshot(wh) == before


def test_refused_when_a_later_reset_is_recorded(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path
) -> None:
    after_reset(wh)
    ledger_run(wh, D, YEAR, "running")  # 2023-24 is being reset already
    before = snapshot(wh)
    code, _, err = cli(*importing(write_export(tmp_path / "x", sample_export()), "--yes"))
    one_line_error(code, err, f"already has a reset of school year {YEAR}", str(YEAR + 1))
    assert snapshot(wh) == before


def test_a_district_new_this_year(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path
) -> None:
    """No student data and no reset: rostered; then a re-import of the same year is allowed."""
    insert(wh, "districts", [(D, "District A", "CA")])
    folder = write_export(tmp_path / "x", sample_export())
    assert cli(*importing(folder, "--yes"))[0] == 0
    state = snapshot(wh)
    assert cli(*importing(folder, "--yes"))[0] == 0
    assert snapshot(wh) == state
    # the next year still needs this year's reset first
    code, _, err = cli(
        "import-oneroster", str(folder), "--district", D, "--school-year", "2025", "--yes"
    )
    one_line_error(code, err, "reset of school year 2024 is not recorded")
    assert snapshot(wh) == state


def test_an_unknown_district_is_refused(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path
) -> None:
    small_district(wh, OTHER)
    before = snapshot(wh)
    code, _, err = cli(*importing(write_export(tmp_path / "x", sample_export()), "--yes"))
    one_line_error(code, err, "district dA is not in app.districts")
    assert snapshot(wh) == before


FOREIGN = {
    # table: (row of dB using an id of the roster, file and line the error names, shown id)
    "schools": (("dA-s2", OTHER, "Theirs"), "orgs.csv line 4", "school dA-s2"),
    "educators": (
        ("t2", OTHER, None, "x@b.example", "X", "Y", "teacher", None, T0),
        "users.csv line 3",
        "this educator's sourcedId",
    ),
    "students": (
        ("u3", OTHER, f"{OTHER}-sch", "theirs", "X", "Y", "4", T0),
        "users.csv line 6",
        "this student's sourcedId",
    ),
    "classrooms": (
        ("c3", OTHER, f"{OTHER}-sch", f"{OTHER}-ed", "imagine_math", "Theirs", T0),
        "classes.csv line 4",
        "class c3",
    ),
}


@pytest.mark.parametrize("table", FOREIGN)
def test_ids_of_another_district_are_refused(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path, table: str
) -> None:
    after_reset(wh)
    row, where, shown = FOREIGN[table]
    insert(wh, table, [row])
    before = snapshot(wh)
    code, _, err = cli(*importing(write_export(tmp_path / "x", sample_export()), "--yes"))
    line = one_line_error(code, err, where, shown, f"already belongs to district {OTHER}")
    if table in ("educators", "students"):
        assert str(row[0]) not in line.split("line")[1]
    assert snapshot(wh) == before


def test_confirmation(settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path) -> None:
    after_reset(wh)
    folder = write_export(tmp_path / "x", sample_export())
    before = snapshot(wh)
    # not a terminal (pytest's stdin) and no --yes: refused before anything is read
    code, _, err = cli(*importing(folder))
    one_line_error(code, err, "without --yes or a confirmation at a terminal")
    shown: list[dict[str, Any]] = []

    def decline(doc: dict[str, Any]) -> bool:
        shown.append(doc)
        return False

    with pytest.raises(RosterError, match="nothing was imported"):
        import_oneroster(settings, folder, D, YEAR, confirm=decline)
    assert shown[0]["new"]["students"] == 4 and shown[0]["rows"]["classrooms"] == 4
    assert snapshot(wh) == before
    doc = import_oneroster(settings, folder, D, YEAR, confirm=lambda doc: True, show_progress=True)
    assert doc["rows"]["students"] == 4
    assert roster_rows(wh, "students") == ordered(EXPECTED["students"])


def test_killed_mid_import_leaves_nothing_and_a_rerun_completes(
    settings: Settings, tmp_path: Path
) -> None:
    """One transaction: SIGKILL after students were written, before the rest, loses it all."""
    with connect(settings, create=True, require_init=False) as wh:
        from jobs.warehouse.schema import init_warehouse

        init_warehouse(wh)
        after_reset(wh)
        before = snapshot(wh)
    folder = write_export(tmp_path / "x", sample_export())
    killed = run_cli(settings, importing(folder, "--yes"), EOY_FAULT="import:students")
    assert killed.returncode == -9, killed.stderr
    with connect(settings) as wh:
        assert snapshot(wh) == before
    done = run_cli(settings, importing(folder, "--yes"))
    assert done.returncode == 0, done.stderr
    with connect(settings) as wh:
        assert roster_rows(wh, "classroom_enrollments") == EXPECTED["classroom_enrollments"]


# ---------------------------------------------------------------------------------------
# malformed exports: one line naming file, line and column; nothing changes
# ---------------------------------------------------------------------------------------
Edit = Callable[[Export], None]
RawEdit = Callable[[Path], None]


def value(file: str, line: int, **values: str) -> Edit:
    def edit(export: Export) -> None:
        export[file][line - 2].update(values)

    return edit


def extra(file: str, row: dict[str, str]) -> Edit:
    return lambda export: export[file].append(row)


def replace_bytes(file: str, old: bytes, new: bytes) -> RawEdit:
    def edit(folder: Path) -> None:
        path = folder / f"{file}.csv"
        data = path.read_bytes()
        assert old in data
        path.write_bytes(data.replace(old, new, 1))

    return edit


def append_bytes(file: str, text: bytes) -> RawEdit:
    def edit(folder: Path) -> None:
        with (folder / f"{file}.csv").open("ab") as fh:
            fh.write(text)

    return edit


def manifest(version: str, users: str) -> RawEdit:
    def edit(folder: Path) -> None:
        lines = ["propertyName,value", "manifest.version,1.0", f"oneroster.version,{version}"]
        lines += [f"file.{name},{users if name == 'users' else 'bulk'}" for name in COLUMNS]
        (folder / "manifest.csv").write_text("\n".join(lines) + "\n")

    return edit


def no_students(export: Export) -> None:
    for row in export["users"]:
        if row["role"] == "student":
            row["status"] = "tobedeleted"


MALFORMED: dict[str, tuple[Edit | None, RawEdit | None, list[str], list[str]]] = {
    # case: (edit of the rows, edit of the files, the error says, the error never says)
    "no folder": (None, lambda f: shutil.rmtree(f), ["is not a folder"], []),
    "no users file": (None, lambda f: (f / "users.csv").unlink(), ["has no users.csv"], []),
    "empty file": (None, lambda f: (f / "orgs.csv").write_text(""), ["orgs.csv is empty"], []),
    "missing column": (
        None,
        replace_bytes("users", b",role,", b",roles,"),
        ["users.csv line 1", "no column role"],
        [],
    ),
    "column twice": (
        None,
        replace_bytes("classes", b",classCode,", b",title,"),
        ["classes.csv line 1, column title: this column appears twice"],
        [],
    ),
    "more fields than the header": (
        None,
        append_bytes("enrollments", b"e30,,,c1,dA-s1,u1,student,,,,extra\n"),
        ["enrollments.csv is not well-formed CSV", "more fields than the header"],
        [],
    ),
    "not utf-8": (
        None,
        replace_bytes("users", b"Quillfeather", b"Quillf\xffather"),
        ["users.csv is not well-formed CSV", "not UTF-8"],
        [],
    ),
    "quote not closed": (
        None,
        append_bytes("users", b'z1,,,true,dA-s1,student,"Zacharias,\n'),
        ["users.csv is not well-formed CSV"],
        ["Zacharias"],
    ),
    "repeated class": (
        extra("classes", klass("c1", "Again", "dA-s1")),
        None,
        ["classes.csv line 7, column sourcedId: sourcedId c1 is already on line 2"],
        [],
    ),
    "repeated user": (
        extra("users", user("u2", "dA-s1", "student", "Yolanda", "Ashgrove", grades="01")),
        None,
        ["users.csv line 10, column sourcedId: this sourcedId is already on line 5"],
        ["u2", "Yolanda"],
    ),
    "unknown role": (
        value("users", 4, role="wizard"),
        None,
        ["users.csv line 4, column role: this value is not one of"],
        ["wizard"],
    ),
    "unknown grade": (
        value("users", 5, grades="5th"),
        None,
        ["users.csv line 5, column grades: unknown grade"],
        ["5th"],
    ),
    "an unknown grade among several": (
        value("users", 7, grades="04,G5"),
        None,
        ["users.csv line 7, column grades: unknown grade"],
        ["G5"],
    ),
    "unknown status": (
        value("classes", 3, status="inactive"),
        None,
        ["classes.csv line 3, column status: must be active, tobedeleted or empty"],
        [],
    ),
    "unknown org type": (
        value("orgs", 6, type="county"),
        None,
        ["orgs.csv line 6, column type: 'county' is not one of"],
        [],
    ),
    "another district's export": (
        value("orgs", 2, sourcedId="dZ"),
        None,
        ["orgs.csv line 2, column sourcedId: the district org is not --district dA"],
        [],
    ),
    "unknown parent org": (
        value("orgs", 3, parentSourcedId="nowhere"),
        None,
        ["orgs.csv line 3, column parentSourcedId"],
        [],
    ),
    "school without a name": (
        value("orgs", 4, name=""),
        None,
        ["orgs.csv line 4, column name: a school needs a name"],
        [],
    ),
    "user of an unknown org": (
        value("users", 6, orgSourcedIds="dA-s2,dA-s9"),
        None,
        ["users.csv line 6, column orgSourcedIds: refers to an org that is not in orgs.csv"],
        ["dA-s9"],
    ),
    "student without a school": (
        value("users", 7, orgSourcedIds=D),
        None,
        ["users.csv line 7, column orgSourcedIds: a student needs a school"],
        [],
    ),
    "class of an unknown school": (
        value("classes", 3, schoolSourcedId="dA-s9"),
        None,
        ["classes.csv line 3, column schoolSourcedId: org dA-s9 is not in orgs.csv"],
        [],
    ),
    "class of a department": (
        value("classes", 3, schoolSourcedId="dA-math"),
        None,
        ["classes.csv line 3, column schoolSourcedId: org dA-math is not a school"],
        [],
    ),
    "enrollment in an unknown class": (
        extra("enrollments", enrol("e20", "c9", "u1", "student")),
        None,
        ["enrollments.csv line 13, column classSourcedId: class c9 is not in classes.csv"],
        [],
    ),
    "enrollment of an unknown user": (
        extra("enrollments", enrol("e20", "c1", "u9", "student")),
        None,
        ["enrollments.csv line 13, column userSourcedId: refers to a user that is not in"],
        ["u9"],
    ),
    "unknown enrollment role": (
        value("enrollments", 4, role="observer"),
        None,
        ["enrollments.csv line 4, column role: 'observer' is not one of"],
        [],
    ),
    "a teacher enrolled as a student": (
        value("enrollments", 4, userSourcedId="t2"),
        None,
        ["enrollments.csv line 4, column userSourcedId: a student enrollment of a user"],
        [],
    ),
    "a student enrolled as a teacher": (
        value("enrollments", 3, userSourcedId="u1"),
        None,
        ["enrollments.csv line 3, column userSourcedId: a teacher enrollment of a user"],
        [],
    ),
    "primary not a boolean": (
        value("enrollments", 2, primary="yes"),
        None,
        ["enrollments.csv line 2, column primary: must be true, false or empty"],
        [],
    ),
    "empty reference": (
        value("enrollments", 5, classSourcedId=""),
        None,
        ["enrollments.csv line 5, column classSourcedId: is empty"],
        [],
    ),
    "no student at all": (no_students, None, ["users.csv has no student to import"], []),
    "OneRoster 1.2": (
        None,
        manifest("1.2", "bulk"),
        ["manifest.csv line 3, column value: oneroster.version is '1.2'"],
        [],
    ),
    "a delta file": (
        None,
        manifest("1.1", "delta"),
        ["manifest.csv line 5, column value: file.users is 'delta'", "bulk export"],
        [],
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_export_is_one_line_and_changes_nothing(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path, case: str
) -> None:
    edit, raw, says, never = MALFORMED[case]
    after_reset(wh)
    before = snapshot(wh)
    export = sample_export()
    if edit:
        edit(export)
    folder = write_export(tmp_path / "export", export)
    if raw:
        raw(folder)
    code, out, err = cli(*importing(folder, "--yes"))
    line = one_line_error(code, err, *says)
    for text in [*never, *STUDENT_PII]:
        assert text not in line + out, text
    assert snapshot(wh) == before


# ---------------------------------------------------------------------------------------
# what the OneRoster 1.1 CSV binding allows is never a reason to refuse a roster
# ---------------------------------------------------------------------------------------
def grades_of(wh: Warehouse) -> dict[str, str | None]:
    rows = wh.query("select student_id, grade_level from app.students where district_id = %s", [D])
    return {str(sid): grade for sid, grade in rows}


def test_a_student_in_several_grades_gets_the_lowest(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path
) -> None:
    """Combined-grade programs: `grades` lists several CEDS grade levels ("03,04")."""
    after_reset(wh)
    export = sample_export()
    export["users"][2]["grades"] = "KG,01"  # u1
    export["users"][3]["grades"] = "05,04"  # u2
    export["users"][5]["grades"] = "12, 11"  # u4
    export["users"] += [
        user("u6", "dA-s1", "student", "Fenna", "Jolliffe", grades="03,04"),
        user("u7", "dA-s1", "student", "Gus", "Harrow", grades="PK,KG"),
        user("u8", "dA-s1", "student", "Hal", "Ivers", grades="TK,KG"),
        user("u9", "dA-s1", "student", "Ida", "Jones", grades="07,07"),
    ]
    code, out, err = cli(*importing(write_export(tmp_path / "x", export), "--yes", "--json"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["students_with_several_grades"] == 6
    assert grades_of(wh) == {
        "u1": "K",
        "u2": "4",
        "u3": "PK",
        "u4": "11",
        "u6": "3",
        "u7": "PK",
        "u8": "K",
        "u9": "7",
    }
    code, out, err = cli(*importing(write_export(tmp_path / "x", export), "--yes"))
    assert code == 0, err
    assert "6 students list several grades" in out


def test_grades_outside_pk_to_12_or_none_are_stored_as_null(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path
) -> None:
    """The CEDS entry grade levels OneRoster 1.1 uses go beyond PK..12; grades is optional."""
    after_reset(wh)
    export = sample_export()
    outside = ["IT", "PR", "TK", "13", "PS", "UG", "Other", "", "13,PS", "other"]
    export["users"] += [
        user(f"x{i}", "dA-s2", "student", "New", "Kid", grades=grade)
        for i, grade in enumerate(outside)
    ]
    code, out, err = cli(*importing(write_export(tmp_path / "x", export), "--yes", "--json"))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["students_without_grade_level"] == len(outside)
    assert doc["rows"]["students"] == len(EXPECTED["students"]) + len(outside)
    got = grades_of(wh)
    assert {got[f"x{i}"] for i in range(len(outside))} == {None}
    assert got["u1"] == "K" and got["u4"] == "12"


def add_columns(file: str, values: dict[str, str]) -> RawEdit:
    """Columns the import does not read, appended to every row (extensions, metadata.*)."""

    def edit(folder: Path) -> None:
        path = folder / f"{file}.csv"
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        rows[0] += list(values)
        for row in rows[1:]:
            row += list(values.values())
        with path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows(rows)

    return edit


def every(*edits: RawEdit) -> RawEdit:
    def edit(folder: Path) -> None:
        for one in edits:
            one(folder)

    return edit


def windows_files(folder: Path) -> None:
    """CRLF line ends and a UTF-8 byte order mark, as spreadsheet tools write them."""
    for name in COLUMNS:
        path = folder / f"{name}.csv"
        text = path.read_text(encoding="utf-8").replace("\r\n", "\n").replace("\n", "\r\n")
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))


def full_manifest(folder: Path) -> None:
    """The manifest of a 1.1 bulk export with more files than the import reads."""
    files = {
        "academicSessions": "bulk",
        "categories": "absent",
        "classes": "bulk",
        "classResources": "absent",
        "courses": "bulk",
        "courseResources": "absent",
        "demographics": "absent",
        "enrollments": "bulk",
        "lineItems": "absent",
        "orgs": "bulk",
        "resources": "absent",
        "results": "absent",
        "users": "bulk",
    }
    lines = ["propertyName,value", "manifest.version,1.0", "oneroster.version,1.1"]
    lines += [f"file.{name},{kind}" for name, kind in files.items()]
    lines += ["source.systemName,Example SIS", "source.systemCode,example-sis"]
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    (folder / "academicSessions.csv").write_text(
        "sourcedId,status,dateLastModified,title,type,startDate,endDate,parentSourcedId,"
        "schoolYear\ny24,,,2023-24,schoolYear,2023-08-15,2024-06-14,,2024\n"
    )
    (folder / "courses.csv").write_text(
        "sourcedId,status,dateLastModified,schoolYearSourcedId,title,courseCode,grades,"
        'orgSourcedId,subjects,subjectCodes\nk1,,,y24,Math,M,"03,04",dA-s1,math,\n'
    )


def more_users(export: Export) -> None:
    """Every role users.csv allows; only students, teachers and administrators are loaded."""
    export["users"] += [
        user("a1", "dA-s1", "aide", "Ada", "Aide"),
        user("p1", "dA-s1", "parent", "Pat", "Parent", agentSourcedIds="u1,u2"),
        user("r1", "dA-s1", "relative", "Rae", "Relative", agentSourcedIds="u1"),
        user("x1", "dA-s2", "proctor", "Pru", "Proctor"),
        user("g2", "dA-s2", "guardian", "Gil", "Guardian", agentSourcedIds="u4"),
    ]
    u1 = export["users"][2]
    u1["agentSourcedIds"] = "p1,r1"
    export["enrollments"] += [
        enrol("e30", "c3", "x1", "proctor"),
        enrol("e31", "c2", "t2", "administrator"),
    ]


def more_orgs(export: Export) -> None:
    """Every org type: the district under a state under the nation, a local org, a department."""
    export["orgs"][0]["parentSourcedId"] = "CA"
    export["orgs"] += [
        org("CA", "California", "state", "US"),
        org("US", "United States", "national"),
        org("dA-local", "North cluster", "local", D),
        org("dA-sci", "Science", "department", "dA-s2"),
    ]
    export["users"][0]["orgSourcedIds"] = "dA-local,dA-math,dA-s1,dA-sci"


def class_fields(export: Export) -> None:
    for i, row in enumerate(export["classes"]):
        row |= {
            "classType": "homeroom" if i % 2 else "scheduled",
            "grades": "03,04",
            "courseSourcedId": "k1",
            "termSourcedIds": "y24-s1,y24-s2",
            "periods": "1,2",
            "location": "Room 4",
        }


def each_row(only_without_status: bool = False, **values: str) -> Edit:
    def edit(export: Export) -> None:
        for rows in export.values():
            for row in rows:
                if not (only_without_status and row.get("status")):
                    row.update(values)

    return edit


def edits(*changes: Edit) -> Edit:
    def edit(export: Export) -> None:
        for change in changes:
            change(export)

    return edit


def each_enrollment(**values: str) -> Edit:
    def edit(export: Export) -> None:
        for row in export["enrollments"]:
            row.update(values)

    return edit


ACCEPTED: dict[str, tuple[Edit | None, RawEdit | None]] = {
    # case: (edit of the rows, edit of the files); the roster lands as EXPECTED
    "status and dateLastModified set": (
        each_row(True, status="active", dateLastModified="2023-06-30T12:00:00.000Z"),
        None,
    ),
    "dateLastModified without status": (each_row(dateLastModified="2023-06-30"), None),
    "empty optional fields": (
        edits(
            value("orgs", 3, parentSourcedId=""),
            value("users", 2, enabledUser=""),
            value("enrollments", 2, primary=""),
            value("classes", 3, classCode="", subjects=""),
        ),
        None,
    ),
    "enabledUser false": (
        edits(value("users", 2, enabledUser="false"), value("users", 4, enabledUser="false")),
        None,
    ),
    "extra and metadata columns": (
        None,
        every(
            *(
                add_columns(name, {"metadata.sis.id": "x", "metadata.note": "a, b", "extra": ""})
                for name in COLUMNS
            )
        ),
    ),
    "every user role": (more_users, None),
    "every org type": (more_orgs, None),
    "class types and list fields": (class_fields, None),
    "enrollment dates": (each_enrollment(beginDate="2023-08-15", endDate="2024-06-14"), None),
    "userIds and other lists": (
        value("users", 4, userIds="{SIS:1001},{State:88}", sms="", phone=""),
        None,
    ),
    "an aide's teacher enrollment": (
        edits(
            extra("users", user("a2", "dA-s1", "aide", "Ada", "Aide")),
            extra("enrollments", enrol("e32", "c2", "a2", "teacher", primary="false")),
        ),
        None,
    ),
    "blank lines at the end": (None, every(*(append_bytes(name, b"\n,,\n") for name in COLUMNS))),
    "a full manifest and files not read": (None, full_manifest),
    "CRLF and a byte order mark": (None, windows_files),
}


@pytest.mark.parametrize("case", ACCEPTED)
def test_what_oneroster_allows_is_accepted(
    settings: Settings, wh: Warehouse, cli: CliRun, tmp_path: Path, case: str
) -> None:
    edit, raw = ACCEPTED[case]
    after_reset(wh)
    export = sample_export()
    if edit:
        edit(export)
    folder = write_export(tmp_path / "export", export)
    if raw:
        raw(folder)
    code, out, err = cli(*importing(folder, "--yes", "--json"))
    assert code == 0, err
    for table, rows in EXPECTED.items():
        assert roster_rows(wh, table) == ordered(rows), table
    assert json.loads(out)["rows"] == {t: len(rows) for t, rows in EXPECTED.items()}


# ---------------------------------------------------------------------------------------
# the year round: generate, reset 2023, roster 2024, resume syncs
# ---------------------------------------------------------------------------------------
def export_of(wh: Warehouse, district: str, students: int) -> Export:
    """The district's own organizations and educators as its SIS would export them, and
    `students` new students in one class of its first school."""
    schools = wh.query(
        "select school_id, name from app.schools where district_id = %s order by school_id",
        [district],
    )
    educators = wh.query(
        "select educator_id, school_id, email, first_name, last_name, role from app.educators "
        "where district_id = %s order by educator_id",
        [district],
    )
    teacher = next(e[0] for e in educators if e[5] == "teacher")
    first = schools[0][0]
    return {
        "orgs": [org(district, "District", "district")]
        + [org(sid, name, "school", district) for sid, name in schools],
        "users": [
            user(eid, school or district, role, given, family, email=email or "")
            for eid, school, email, given, family, role in educators
        ]
        + [
            user(f"{district}-new{i}", first, "student", "New", "Kid", grades=f"{i % 12 + 1:02d}")
            for i in range(students)
        ],
        "classes": [klass(f"{district}-facts", "Math Facts", first)],
        "enrollments": [enrol("t", f"{district}-facts", teacher, "teacher", primary="true")]
        + [
            enrol(f"s{i}", f"{district}-facts", f"{district}-new{i}", "student")
            for i in range(students)
        ],
    }


def test_generate_reset_roster_resume(settings: Settings, wh: Warehouse, tmp_path: Path) -> None:
    generate_districts(wh, 6, seed=7, students_per_district=3, show_progress=False)
    result = run_reset(
        settings,
        as_of=date(2023, 7, 28),
        school_year=2023,
        yes=True,
        show_progress=False,
        console=QUIET,
    )
    done = sorted(d.district_id for d in result.districts if d.status == "completed")
    districts = [r[0] for r in wh.query("select district_id from app.districts order by 1")]
    waiting = [d for d in districts if d not in done]
    assert len(done) >= 2 and waiting, "the calendar mix should reset some districts, not all"
    rostered = done[0]
    before = dump_app(wh)

    # a district whose reset has not happened keeps last year's data: its roster must wait
    folder = write_export(tmp_path / waiting[0], export_of(wh, waiting[0], 2))
    with pytest.raises(RosterError, match="reset of school year 2023 is not recorded"):
        import_oneroster(settings, folder, waiting[0], YEAR, yes=True)
    assert dump_app(wh) == before

    folder = write_export(tmp_path / rostered, export_of(wh, rostered, 5))
    doc = import_oneroster(settings, folder, rostered, YEAR, yes=True)
    assert doc["new"] == {
        "schools": 0,
        "educators": 0,
        "students": 5,
        "classrooms": 1,
        "classroom_enrollments": 5,
    }
    after = dump_app(wh)
    for table in APP_TABLES:
        if table.name in ("students", "classrooms", "classroom_enrollments", "rostering_runs"):
            assert without(after[table.name], table.name, {rostered}) == without(
                before[table.name], table.name, {rostered}
            )
        else:  # organizations and educators kept through the reset are the same, row for row
            assert after[table.name] == before[table.name], table.name
    kids = wh.query("select count(*) from app.students where district_id = %s", [rostered])
    assert kids == [(5,)]

    assert resume_syncs(settings)["resumed"] == [rostered]
    paused = dict(
        wh.query(
            "select district_id, sum(case when status = 'paused' then 1 else 0 end) "
            "from app.import_syncs group by district_id"
        )
    )
    assert paused[rostered] == 0
    assert all(paused[d] > 0 for d in done[1:]), "the others wait for their rostering"

    # the sample export (what the demo imports) is a valid roster of the district's own ids
    second = done[1]
    sample = write_sample_export(wh, second, YEAR, tmp_path / "sample", per_class=4)
    doc = import_oneroster(settings, sample, second, YEAR, yes=True)
    classes = doc["new"]["classrooms"]
    assert classes > 0 and doc["new"]["schools"] == doc["new"]["educators"] == 0
    assert doc["new"]["students"] == doc["new"]["classroom_enrollments"] == 4 * classes
    again = import_oneroster(settings, sample, second, YEAR, yes=True)
    assert set(again["new"].values()) == {0}
    assert resume_syncs(settings)["resumed"] == [second]


# ---------------------------------------------------------------------------------------
# a large district
# ---------------------------------------------------------------------------------------
def large_export(students: int, per_student: int) -> Export:
    schools, teachers, classes = 20, students // 25, students // 25
    return {
        "orgs": [org(D, "District A", "district")]
        + [org(f"s{n}", f"School {n}", "school", D) for n in range(schools)],
        "users": [
            user(f"t{n}", f"s{n % schools}", "teacher", "T", f"{n}", email=f"t{n}@a.example")
            for n in range(teachers)
        ]
        + [
            user(f"u{n}", f"s{n % schools}", "student", "S", f"{n}", grades=f"{n % 12 + 1:02d}")
            for n in range(students)
        ],
        "classes": [
            klass(f"c{n}", f"Math {n}", f"s{n % schools}", subjects="math") for n in range(classes)
        ],
        "enrollments": [enrol(f"te{n}", f"c{n}", f"t{n}", "teacher") for n in range(classes)]
        + [
            enrol(f"e{n}-{k}", f"c{(n + k * 7) % classes}", f"u{n}", "student")
            for n in range(students)
            for k in range(per_student)
        ],
    }


def test_a_district_of_25k_students_imports_whole(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    insert(wh, "districts", [(D, "District A", "CA")])
    folder = write_export(tmp_path / "large", large_export(25_000, 4))
    doc = import_oneroster(settings, folder, D, YEAR, yes=True)
    assert doc["new"] == {
        "schools": 20,
        "educators": 1_000,
        "students": 25_000,
        "classrooms": 1_000,
        "classroom_enrollments": 100_000,
    }
    assert wh.scalar("select count(*) from app.classroom_enrollments") == 100_000
