"""Property: reset_schedule agrees with an independent Python reading of the reset-date rules on
random calendars. Each example is a batch of districts loaded at once and built with one dbt run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.config import Settings
from jobs.plan.dbt import build_reset_models, run_dbt
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.schema import init_warehouse
from tests.conftest import make_settings
from tests.support.reset_data import insert_rows

# (default D, earliest E) per school year, as in seeds/reset_policy.csv
POLICY = {
    2023: (date(2023, 7, 28), date(2023, 6, 19)),
    2024: (date(2024, 7, 26), date(2024, 6, 17)),
    2025: (date(2025, 7, 25), date(2025, 6, 16)),
    2026: (date(2026, 7, 31), date(2026, 6, 22)),
    2027: (date(2027, 7, 30), date(2027, 6, 21)),
}
REQUEST_YEARS = (2023, 2024)
DAY = timedelta(days=1)
AS_OF = date(2023, 7, 28)
# what build_reset_models passes: the same vars let dbt skip parsing the project again
BUILD_VARS = {"as_of_date": AS_OF.isoformat(), "school_year": AS_OF.year, "named_districts": []}


@dataclass(frozen=True)
class Calendar:
    school_year: int
    has_row: bool
    requested: date | None = None
    school_year_end: date | None = None
    summer_end: date | None = None
    rostering_start: date | None = None


def oracle(default: date, earliest: date, cal: Calendar | None) -> tuple[date, str, str, str]:
    """the reset-date rules 1-4: (effective_reset_date, date_source, status, issues)."""
    issues: list[str] = []
    r = cal.requested if cal is not None else None
    s = cal.rostering_start if cal is not None else None
    valid = False
    if r is None:
        candidate, source = default, "default"
    elif r < earliest:
        candidate, source = default, "default"
        issues.append("request_too_early")
    elif s is not None and r >= s:
        candidate, source = default, "default"
        issues.append("request_not_before_rostering")
    else:
        candidate, source, valid = r, "requested", True
    ends = [d for d in (cal.school_year_end, cal.summer_end) if d is not None] if cal else []
    effective = candidate
    if ends and candidate <= max(ends):
        effective, source = max(ends) + DAY, "after_session_end"
        if valid:
            issues.append("request_during_session")
    status = "scheduled"
    if s is not None and effective >= s:
        status = "blocked"
        issues.append("conflicts_with_rostering")
    return effective, source, status, ",".join(issues)


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    """Dates near the policy's D and E and near each other, so edges come up often."""
    year = draw(st.sampled_from(REQUEST_YEARS))
    default, earliest = POLICY[year]
    if not draw(st.integers(0, 9)):
        return Calendar(year, has_row=False)
    near = st.sampled_from([-1, 0, 1]).map(lambda n: n * DAY)
    anchors = [earliest - DAY, earliest, earliest + DAY, default - DAY, default, default + DAY]
    any_day = st.one_of(
        st.sampled_from(anchors),
        st.integers(-30, 75).map(lambda n: earliest + n * DAY),
    )
    requested = draw(st.one_of(st.none(), any_day))
    candidate = requested or default  # a guess: edges of L around it come up often
    around_candidate = near.map(lambda d: candidate + d)
    maybe = st.one_of(st.none(), any_day, around_candidate)
    rostering = draw(
        st.one_of(
            st.none(),
            near.map(lambda d: (requested or default) + d),
            st.integers(-3, 40).map(lambda n: default + n * DAY),
        )
    )
    return Calendar(year, True, requested, draw(maybe), draw(maybe), rostering)


@pytest.fixture(scope="module")
def warehouse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Warehouse]]:
    """An initialised warehouse of the target the test names (indirect parametrize)."""
    gen = make_settings(str(request.param), tmp_path_factory.mktemp("property"), request)
    s = next(gen)
    wh = connect(s, create=True, require_init=False)
    try:
        init_warehouse(wh)
        # seed and staging views once; each example then rebuilds reset_schedule only
        build_reset_models(s, AS_OF, AS_OF.year)
        yield s, wh
    finally:
        wh.close()
        gen.close()


def check_batch(s: Settings, wh: Warehouse, batch: list[Calendar]) -> None:
    ids = [f"p{n:04d}" for n in range(len(batch))]
    wh.execute("delete from app.district_reset_requests")
    wh.execute("delete from app.districts")
    insert_rows(wh, "districts", [{"district_id": d, "name": d, "state": "TX"} for d in ids])
    insert_rows(
        wh,
        "district_reset_requests",
        [
            {
                "district_id": d,
                "school_year": c.school_year,
                "requested_reset_date": c.requested,
                "school_year_end_date": c.school_year_end,
                "summer_session_end_date": c.summer_end,
                "rostering_start_date": c.rostering_start,
            }
            for d, c in zip(ids, batch, strict=True)
            if c.has_row
        ],
    )
    run_dbt(s, ["run", "--select", "reset_schedule"], vars=BUILD_VARS)
    got = {
        (r[0], r[1]): tuple(r[2:])
        for r in wh.query(
            "select district_id, school_year, effective_reset_date, date_source, status, issues "
            "from eoy.reset_schedule"
        )
    }
    assert len(got) == len(ids) * len(POLICY)
    for d, cal in zip(ids, batch, strict=True):
        for year, (default, earliest) in POLICY.items():
            row = cal if cal.has_row and cal.school_year == year else None
            assert got[(d, year)] == oracle(default, earliest, row), (d, year, cal)


BATCHES = st.lists(calendars(), min_size=50, max_size=200)


@pytest.mark.parametrize("warehouse", ["duckdb"], indirect=True)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=BATCHES)
def test_reset_schedule_matches_the_oracle(
    warehouse: tuple[Settings, Warehouse], batch: list[Calendar]
) -> None:
    check_batch(*warehouse, batch)


@pytest.mark.postgres
@pytest.mark.parametrize("warehouse", ["postgres"], indirect=True)
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=BATCHES)
def test_reset_schedule_matches_the_oracle_on_postgres(
    warehouse: tuple[Settings, Warehouse], batch: list[Calendar]
) -> None:
    check_batch(*warehouse, batch)


def test_oracle_agrees_with_the_worked_examples() -> None:
    """The oracle itself, against the worked examples of the reset-date rules."""
    from tests.support.reset_data import read_examples

    default, earliest = POLICY[2023]
    for ex in read_examples():
        d = {
            k: date.fromisoformat(v) if v else None
            for k, v in ex.items()
            if k.endswith("_date") and k != "effective_reset_date"
        }
        cal = None
        if ex["has_request_row"] == "true":
            cal = Calendar(
                2023,
                True,
                d["requested_reset_date"],
                d["school_year_end_date"],
                d["summer_session_end_date"],
                d["rostering_start_date"],
            )
        assert oracle(default, earliest, cal) == (
            date.fromisoformat(ex["effective_reset_date"]),
            ex["date_source"],
            ex["status"],
            ex["issues"],
        ), ex["case"]
