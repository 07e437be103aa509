"""The dbt models that decide who is due, on both targets.

One warehouse per target is loaded with hand-made districts and built once; the tests
read the marts it produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.plan.dbt import DbtError, PolicyError, build_reset_models, run_dbt
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import DELETED_TABLES
from jobs.warehouse.schema import init_warehouse
from tests.conftest import TARGETS, make_settings
from tests.support import reset_data


@pytest.fixture(scope="module", params=TARGETS)
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Warehouse]]:
    """A warehouse with the hand-made districts, reset models built as of 2023-07-28."""
    gen = make_settings(str(request.param), tmp_path_factory.mktemp("schedule"), request)
    settings = next(gen)
    wh = connect(settings, create=True, require_init=False)
    try:
        init_warehouse(wh)
        reset_data.load_all(wh)
        assert build_reset_models(settings, reset_data.AS_OF, None) == reset_data.YEAR
        yield settings, wh
    finally:
        wh.close()
        gen.close()


def test_reset_schedule_matches_the_worked_examples(built: tuple[Settings, Warehouse]) -> None:
    _, wh = built
    got = {
        row["district_id"]: row
        for row in wh.query_dicts("select * from eoy.reset_schedule where school_year = 2023")
    }
    examples = reset_data.read_examples()
    assert len(examples) == 8
    for example in examples:
        row = got[example["district_id"]]
        assert (row["effective_reset_date"], row["date_source"], row["status"], row["issues"]) == (
            date.fromisoformat(example["effective_reset_date"]),
            example["date_source"],
            example["status"],
            example["issues"],
        ), example["case"]


def test_reset_schedule_has_one_row_per_district_and_policy_year(
    built: tuple[Settings, Warehouse],
) -> None:
    _, wh = built
    cols = [
        r[0]
        for r in wh.query(
            "select column_name from information_schema.columns where table_schema = 'eoy' "
            "and table_name = 'reset_schedule' order by ordinal_position"
        )
    ]
    assert cols == [
        "district_id",
        "school_year",
        "effective_reset_date",
        "date_source",
        "status",
        "issues",
    ]
    n_districts = wh.scalar("select count(*) from app.districts")
    rows = wh.query("select district_id, school_year from eoy.reset_schedule")
    assert len(rows) == len(set(rows)) == n_districts * len(reset_data.POLICY_YEARS)
    assert {r[1] for r in rows} == set(reset_data.POLICY_YEARS)
    # later years have no request rows: the policy's default date, scheduled
    assert wh.query(
        "select distinct effective_reset_date, date_source, status, issues "
        "from eoy.reset_schedule where school_year = 2024"
    ) == [(date(2024, 7, 26), "default", "scheduled", "")]


def test_due_districts_follow_as_of_status_and_ledger(built: tuple[Settings, Warehouse]) -> None:
    _, wh = built
    rows = wh.query_dicts("select * from eoy.due_districts")
    got = {r["district_id"]: (r["effective_reset_date"], r["date_source"]) for r in rows}
    assert got == reset_data.EXPECTED_DUE
    assert {r["school_year"] for r in rows} == {2023}
    assert {r["as_of_date"] for r in rows} == {reset_data.AS_OF}
    # blocked, completed, restored at the same date, and later than as_of: not due
    assert not reset_data.EXPECTED_BLOCKED & set(got)
    assert not {"done", "restored_same", "later", "ex4"} & set(got)


def test_reset_scope_counts_every_table_of_due_districts(
    built: tuple[Settings, Warehouse],
) -> None:
    _, wh = built
    rows = wh.query_dicts("select * from eoy.reset_scope")
    assert {r["district_id"] for r in rows} == set(reset_data.EXPECTED_DUE)
    assert len(rows) == len(reset_data.EXPECTED_DUE) * len(reset_data.EX1_ROWS)
    ex1 = {
        r["table_name"]: (r["action"], r["row_count"]) for r in rows if r["district_id"] == "ex1"
    }
    assert ex1 == {
        t: ("delete" if t in DELETED_TABLES else "retain", n)
        for t, n in reset_data.EX1_ROWS.items()
    }
    # a due district without student data counts zeros, except its own district row
    ex2 = {r["table_name"]: r["row_count"] for r in rows if r["district_id"] == "ex2"}
    assert ex2["students"] == 0 and ex2["districts"] == 1 and ex2["district_reset_requests"] == 1


def test_inactive_educators_are_listed_without_names(built: tuple[Settings, Warehouse]) -> None:
    _, wh = built
    cols = {
        r[0]
        for r in wh.query(
            "select column_name from information_schema.columns where table_schema = 'eoy' "
            "and table_name = 'inactive_educators'"
        )
    }
    assert not {"email", "first_name", "last_name"} & cols
    rows = wh.query_dicts(
        "select educator_id, reason, days_inactive from eoy.inactive_educators "
        "where school_year = 2023 and district_id = 'ex1'"
    )
    assert {r["educator_id"]: r["reason"] for r in rows} == reset_data.EX1_INACTIVE
    assert {r["educator_id"]: r["days_inactive"] for r in rows} == {
        "ex1_e_idle": 366,
        "ex1_e_never": None,
    }
    # one row per educator and school year
    pairs = wh.query("select educator_id, school_year from eoy.inactive_educators")
    assert len(pairs) == len(set(pairs))


def test_student_rows_never_materialize(built: tuple[Settings, Warehouse]) -> None:
    _, wh = built
    tables = {
        r[0]
        for r in wh.query(
            "select table_name from information_schema.tables where table_schema = 'eoy' "
            "and table_type in ('BASE TABLE', 'LOCAL TEMPORARY')"
        )
    }
    assert tables == {
        "reset_policy",
        "reset_schedule",
        "due_districts",
        "reset_scope",
        "inactive_educators",
        "closed_school_years",  # districts and years only
    }


def test_dbt_build_passes_with_data(built: tuple[Settings, Warehouse]) -> None:
    """`dbt build`: every model, source test, data test and unit test, on a loaded warehouse."""
    settings, wh = built
    # the same vars as the fixture's build, so dbt does not parse the project again
    run_dbt(
        settings,
        ["build", "--exclude", "path:models/marts/audit"],
        vars={"as_of_date": "2023-07-28", "school_year": 2023, "named_districts": []},
    )
    assert wh.scalar("select count(*) from eoy.due_districts") == len(reset_data.EXPECTED_DUE)


# Last: other vars than the build above, so dbt re-parses once.
def test_missing_policy_year_is_named(built: tuple[Settings, Warehouse]) -> None:
    settings, _ = built
    with pytest.raises(PolicyError, match="school year 2031"):
        build_reset_models(settings, date(2031, 7, 1), None)
    # the model itself refuses too, when dbt is run directly
    with pytest.raises(DbtError) as err:
        run_dbt(settings, ["run", "--select", "due_districts"], vars={"as_of_date": "2031-07-01"})
    message = str(err.value)
    assert "no reset policy for school year 2031" in message
    assert "\n" not in message
    assert isinstance(err.value, EoyError)
