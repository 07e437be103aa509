"""`eoy-reset generate`: deterministic, shaped like a customer base, every calendar
case present, foreign keys consistent, loaded the same on both targets."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from jobs.cli.app import app
from jobs.config import Settings
from jobs.synthetic.generate import GenerateError, generate_districts, reset_policy
from jobs.synthetic.rows import (
    CHUNK_STUDENTS,
    MIN_STUDENTS,
    calendar_cases,
    chunk_bounds,
    district_sizes,
)
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import APP_TABLES, GRADE_LEVELS, PRODUCTS, PROVIDERS, TABLES
from jobs.warehouse.schema import init_warehouse

SMALL = {"districts": 12, "seed": 7, "students_per_district": 5, "show_progress": False}
POLICY = reset_policy(2023)


def duckdb_warehouse(path: Path) -> Warehouse:
    wh = connect(
        Settings(target="duckdb", duckdb_path=path, snapshot_root=path.parent / "snapshots"),
        create=True,
        require_init=False,
    )
    init_warehouse(wh)
    return wh


def contents(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    """Every app table, rows ordered by primary key."""
    out = {}
    for table in APP_TABLES:
        cols = ", ".join(table.column_names)
        order = ", ".join(table.primary_key)
        out[table.name] = wh.query(f"select {cols} from app.{table.name} order by {order}")
    return out


# -- the reset-date rules, written again independently of the generator and of dbt --------
def schedule(row: dict[str, Any] | None) -> tuple[date, str, str, tuple[str, ...]]:
    d, e = POLICY.default_reset_date, POLICY.earliest_reset_date
    r = row and row["requested_reset_date"]
    s = row and row["rostering_start_date"]
    issues: list[str] = []
    candidate, source = d, "default"
    if r is not None and r:
        if r >= e and (s is None or r < s):
            candidate, source = r, "requested"
        else:
            issues.append("request_too_early" if r < e else "request_not_before_rostering")
    ends = [row[k] for k in ("school_year_end_date", "summer_session_end_date")] if row else []
    last = max((x for x in ends if x is not None), default=None)
    effective = candidate
    if last is not None and candidate <= last:
        effective = last + timedelta(days=1)
        if source == "requested":
            issues.append("request_during_session")
        source = "after_session_end"
    status = "scheduled"
    if s and effective >= s:
        status = "blocked"
        issues.append("conflicts_with_rostering")
    return effective, source, status, tuple(issues)


# the worked examples of the reset-date rules: R, school end, summer end, S, has row, expected
EXAMPLES = [
    (None, None, None, None, False, "2023-07-28", "default", "scheduled", ()),
    (
        "2023-06-26",
        "2023-06-09",
        None,
        "2023-08-20",
        True,
        "2023-06-26",
        "requested",
        "scheduled",
        (),
    ),
    (
        "2023-06-18",
        None,
        None,
        None,
        True,
        "2023-07-28",
        "default",
        "scheduled",
        ("request_too_early",),
    ),
    (
        None,
        "2023-06-02",
        "2023-08-04",
        "2023-08-28",
        True,
        "2023-08-05",
        "after_session_end",
        "scheduled",
        (),
    ),
    (
        "2023-06-30",
        "2023-06-30",
        None,
        None,
        True,
        "2023-07-01",
        "after_session_end",
        "scheduled",
        ("request_during_session",),
    ),
    (
        None,
        None,
        "2023-08-15",
        "2023-08-16",
        True,
        "2023-08-16",
        "after_session_end",
        "blocked",
        ("conflicts_with_rostering",),
    ),
    (
        "2023-08-21",
        None,
        None,
        "2023-08-21",
        True,
        "2023-07-28",
        "default",
        "scheduled",
        ("request_not_before_rostering",),
    ),
    (
        None,
        None,
        None,
        "2023-07-28",
        True,
        "2023-07-28",
        "default",
        "blocked",
        ("conflicts_with_rostering",),
    ),
]


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_oracle_agrees_with_the_worked_examples(example: tuple[Any, ...]) -> None:
    r, end, summer, s, has_row, effective, source, status, issues = example
    day = lambda v: date.fromisoformat(v) if v else None  # noqa: E731
    row = {
        "requested_reset_date": day(r),
        "school_year_end_date": day(end),
        "summer_session_end_date": day(summer),
        "rostering_start_date": day(s),
    }
    assert schedule(row if has_row else None) == (day(effective), source, status, issues)


def test_every_calendar_case_is_present(wh: Warehouse) -> None:
    generate_districts(wh, **SMALL)
    requests = wh.query_dicts("select * from app.district_reset_requests")
    rows = {r["district_id"]: r for r in requests}
    districts = [r[0] for r in wh.query("select district_id from app.districts")]
    outcomes = {}
    for d in districts:
        row = rows.get(d)
        effective, source, status, issues = schedule(row)
        kind = "no row" if row is None else ("R" if row["requested_reset_date"] else "no R")
        outcomes[(kind, source, status, issues)] = (row, effective)
    assert set(outcomes) >= {
        ("no row", "default", "scheduled", ()),
        ("R", "requested", "scheduled", ()),
        ("R", "default", "scheduled", ("request_too_early",)),
        ("R", "default", "scheduled", ("request_not_before_rostering",)),
        ("no R", "after_session_end", "scheduled", ()),
        ("R", "after_session_end", "scheduled", ("request_during_session",)),
        ("no R", "after_session_end", "blocked", ("conflicts_with_rostering",)),
        ("no R", "default", "blocked", ("conflicts_with_rostering",)),
    }
    e = POLICY.earliest_reset_date
    # the edges: R = E, R = S, session end = the candidate date, S = the default date
    assert any(r["requested_reset_date"] == e for r in requests)
    assert any(
        r["requested_reset_date"] and r["requested_reset_date"] == r["rostering_start_date"]
        for r in requests
    )
    assert any(r["summer_session_end_date"] == POLICY.default_reset_date for r in requests)
    assert any(r["rostering_start_date"] == POLICY.default_reset_date for r in requests)
    assert {r["school_year"] for r in requests} == {2023}
    assert not wh.scalar("select count(*) from app.rostering_runs")


def test_about_forty_percent_do_not_respond() -> None:
    cases = calendar_cases(2000, seed=3)
    assert 0.35 < cases.count("no_response") / len(cases) < 0.45
    assert calendar_cases(9, seed=3) == calendar_cases(9, seed=4)  # fixed cases first


def test_district_sizes_are_long_tailed() -> None:
    sizes = np.sort(district_sizes(1000, seed=11))[::-1]
    assert sizes.min() >= MIN_STUDENTS
    assert sizes[:100].sum() > 0.35 * sizes.sum()  # the largest 10% hold over a third
    assert sizes.max() > 20 * np.median(sizes)
    assert np.median(sizes) < sizes.mean()
    assert (district_sizes(1000, seed=11) == district_sizes(1000, seed=11)).all()
    assert set(district_sizes(40, seed=11, students_per_district=9)) == {9}


def test_chunks_cover_every_district_once_and_stay_bounded() -> None:
    sizes = district_sizes(3000, seed=5)
    bounds = chunk_bounds(sizes)
    assert [b[0] for b in bounds[1:]] == [b[1] for b in bounds[:-1]]
    assert bounds[0][0] == 0 and bounds[-1][1] == 3000
    for start, end in bounds:
        assert end - start == 1 or sizes[start:end].sum() <= CHUNK_STUDENTS
    assert chunk_bounds(np.array([30_000, 5, 5])) == [(0, 1), (1, 3)]


def test_same_seed_same_rows_on_both_targets(wh: Warehouse, tmp_path: Path) -> None:
    counts = generate_districts(wh, **SMALL)
    other = duckdb_warehouse(tmp_path / "other.duckdb")
    different = duckdb_warehouse(tmp_path / "different.duckdb")
    try:
        assert generate_districts(other, **SMALL) == counts
        generate_districts(different, **{**SMALL, "seed": 8})
        mine, theirs = contents(wh), contents(other)
        for table in TABLES:
            assert mine[table] == theirs[table], table
        changed = contents(different)
        assert changed["students"] != mine["students"]
        assert changed["progress"] != mine["progress"]
    finally:
        other.close()
        different.close()


def test_counts_are_the_rows_loaded(wh: Warehouse) -> None:
    counts = generate_districts(wh, **SMALL)
    assert list(counts) == [t.name for t in APP_TABLES]
    for table, rows in counts.items():
        assert wh.scalar(f"select count(*) from app.{table}") == rows, table
    assert counts["districts"] == 12 and counts["students"] == 60
    academic = sum(counts[t] for t in ("assessments", "progress", "pathways", "usage_sessions"))
    assert 20 * 60 < academic < 80 * 60  # a few assessments, tens of progress rows and sessions


def test_every_reference_resolves(wh: Warehouse) -> None:
    generate_districts(wh, **{**SMALL, "students_per_district": None, "districts": 4})
    for table in APP_TABLES:
        for own, parent, theirs in table.foreign_keys:
            dangling = wh.scalar(
                f"select count(*) from app.{table.name} c where c.{own[0]} is not null "
                f"and not exists (select 1 from app.{parent} p where p.{theirs[0]} = c.{own[0]})"
            )
            assert dangling == 0, (table.name, own)
    mismatched = wh.scalar(  # a row's district is its student's district
        "select count(*) from app.progress p join app.students s using (student_id) "
        "where p.district_id <> s.district_id"
    )
    assert mismatched == 0
    if wh.target == "postgres":  # the keys dropped for the bulk load are back
        keys = wh.scalar(
            "select count(*) from pg_constraint k join pg_namespace n on n.oid = k.connamespace "
            "where k.contype = 'f' and n.nspname = 'app'"
        )
        assert keys == sum(len(t.foreign_keys) for t in APP_TABLES)


def test_shaped_like_a_customer_base(wh: Warehouse) -> None:
    generate_districts(wh, **{**SMALL, "students_per_district": 40})
    one = lambda sql: {r[0] for r in wh.query(sql)}  # noqa: E731
    for table in ("classrooms", "assessments", "progress", "pathways", "usage_sessions"):
        assert one(f"select distinct product from app.{table}") == set(PRODUCTS), table
    assert one("select distinct grade_band from app.pathways") == {"prek_2", "3_plus"}
    assert one("select distinct grade_level from app.students") <= set(GRADE_LEVELS)
    assert one("select distinct role from app.educators") == {"teacher", "administrator"}
    assert wh.scalar("select count(*) from app.educators where school_id is null") >= 12
    reset = datetime(2023, 6, 19)  # the earliest reset date: inactive whatever the date
    inactive = wh.scalar(
        "select count(*) from app.educators where last_login_at is null or last_login_at < %s",
        [reset - timedelta(days=365)],
    )
    assert inactive > 0
    assert one("select distinct provider from app.import_syncs") <= set(PROVIDERS)
    assert one("select distinct status from app.import_syncs") == {"active"}
    names = one("select first_name from app.students") | one("select last_name from app.students")
    assert any(not n.isascii() for n in names) and any("'" in n for n in names)
    assert all(u.isascii() for u in one("select username from app.students"))
    for table, col in (
        ("assessments", "taken_at"),
        ("progress", "completed_at"),
        ("pathways", "assigned_at"),
        ("usage_sessions", "started_at"),
    ):
        lo, hi = wh.query(f"select min({col}), max({col}) from app.{table}")[0]
        assert datetime(2022, 8, 1) <= lo and hi < datetime(2023, 7, 1), table


def test_generating_again_is_refused_in_one_line(wh: Warehouse) -> None:
    counts = generate_districts(wh, **SMALL)
    with pytest.raises(GenerateError) as err:
        generate_districts(wh, **{**SMALL, "seed": 99})
    message = str(err.value)
    assert "d00001" in message and "\n" not in message
    assert wh.scalar("select count(*) from app.students") == counts["students"]


def test_a_school_year_without_policy_is_refused(wh: Warehouse) -> None:
    with pytest.raises(GenerateError, match="1999"):
        generate_districts(wh, **SMALL, school_year=1999)


def test_the_generate_command(settings: Settings) -> None:
    where = (
        ["--target", "duckdb", "--duckdb-path", str(settings.duckdb_path)]
        if settings.target == "duckdb"
        else ["--target", "postgres", "--pg-dsn", str(settings.pg_dsn)]
    )
    runner = CliRunner()
    assert runner.invoke(app, [*where, "init"]).exit_code == 0
    result = runner.invoke(app, [*where, "generate", "--districts", "3", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "districts" in result.output and "total" in result.output
    again = runner.invoke(app, [*where, "generate", "--districts", "3", "--seed", "1"])
    assert again.exit_code != 0
    assert isinstance(again.exception, GenerateError)
