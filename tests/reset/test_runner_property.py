"""Random calendars and as-of dates over several runs, checked against an independent oracle.

After every run: the districts reset so far (by the reset-date rules, written again in
tests/support/runner_helpers.py) have no student row left and a snapshot holding exactly their rows;
every other row is as it was, import_syncs and rostering_runs included (only the active syncs
of the districts reset have been paused); the ledger says completed for exactly those districts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rich.console import Console

from jobs.config import Settings
from jobs.reset.runner import run_reset
from jobs.snapshot.layout import district_dir
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import (
    APP_TABLES,
    DELETED_TABLES,
    PROVIDERS,
    RETAINED_TABLES,
    SYNC_STATUSES,
)
from jobs.warehouse.ledger import utcnow
from jobs.warehouse.schema import init_warehouse
from tests.conftest import make_settings
from tests.support.runner_helpers import (
    assert_syncs_paused,
    dump_app,
    expected_due,
    insert,
    of_district,
    parquet_rows,
    small_district,
    without,
    without_sync_state,
)

YEAR = 2023
QUIET = Console(file=open(os.devnull, "w"), width=120)  # noqa: SIM115
DISTRICTS = 6

days = st.integers(0, 120).map(lambda n: date(2023, 5, 20) + timedelta(days=n))
maybe_day = st.one_of(st.none(), days)
calendar = st.one_of(st.none(), st.tuples(maybe_day, maybe_day, maybe_day, maybe_day))
as_of_dates = st.lists(
    st.integers(0, 110).map(lambda n: date(2023, 6, 10) + timedelta(days=n)),
    min_size=2,
    max_size=3,
    unique=True,
).map(sorted)
moment = st.integers(0, 500).map(lambda n: datetime(2022, 5, 1, 6, 0, 0, 250) + timedelta(days=n))
maybe_moment = st.one_of(st.none(), moment)
# (provider, status, paused_at, resumed_at, last_run_at): syncs beside small_district's one
syncs = st.lists(
    st.tuples(
        st.sampled_from(PROVIDERS),
        st.sampled_from(SYNC_STATUSES),
        maybe_moment,
        maybe_moment,
        maybe_moment,
    ),
    max_size=2,
)
# school years whose rostering completed, some of them the next one
rostered = st.lists(st.sampled_from([2022, 2023, 2024]), unique=True, max_size=2)
district = st.tuples(calendar, syncs, rostered)


@pytest.fixture(scope="module")
def warehouse(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Warehouse]]:
    gen = make_settings(str(request.param), tmp_path_factory.mktemp("runner-property"), request)
    s = next(gen)
    wh = connect(s, create=True, require_init=False)
    try:
        init_warehouse(wh)
        yield s, wh
    finally:
        wh.close()
        gen.close()


def fresh(s: Settings, wh: Warehouse, districts: list) -> None:
    for table in reversed(APP_TABLES):
        wh.execute(f"delete from app.{table.name}")
    wh.execute("delete from eoy_runner.reset_events")
    wh.execute("delete from eoy_runner.reset_runs")
    shutil.rmtree(s.snapshot_root, ignore_errors=True)
    for i, (cal, more_syncs, years) in enumerate(districts):
        d = f"p{i}"
        small_district(wh, d, students=1 + i % 2)
        if cal is not None:
            insert(wh, "district_reset_requests", [(d, YEAR, *cal)])
        insert(wh, "import_syncs", [(f"{d}-sync{j}", d, *x) for j, x in enumerate(more_syncs)])
        insert(wh, "rostering_runs", [(d, y, datetime(y - 1, 8, 20, 6, 0, 0, 7)) for y in years])
    small_district(wh, HOSTILE)  # no request: reset on the default date


HOSTILE = "x'; drop table app.students; --/../é"


def check(s: Settings, wh: Warehouse, districts: list, as_ofs: list[date]) -> None:
    fresh(s, wh, districts)
    before = dump_app(wh)
    reset: set[str] = set()
    started = utcnow()
    for as_of in as_ofs:
        result = run_reset(s, as_of, YEAR, yes=True, show_progress=False, console=QUIET)
        assert result.failed == []
        reset |= expected_due(wh, YEAR, as_of)
        passed = {d.district_id for d in result.districts if d.status != "skipped"}
        assert passed <= reset
        # a skipped district is one whose year the next year's rostering closed
        for d in result.districts:
            assert d.status != "skipped" or "rostering for 2024" in d.error, d
        now = dump_app(wh)
        for table in DELETED_TABLES:
            assert now[table] == without(before[table], table, reset), (table, as_of)
        for table in RETAINED_TABLES:
            if table != "import_syncs":
                assert now[table] == before[table], (table, as_of)
        assert without_sync_state(now["import_syncs"]) == without_sync_state(before["import_syncs"])
        assert_syncs_paused(before["import_syncs"], now["import_syncs"], reset, started)
        for district in reset:
            folder = district_dir(s.snapshot_root, YEAR, district)
            assert folder.parent.parent == s.snapshot_root.resolve()
            for table in DELETED_TABLES:
                assert parquet_rows(folder / f"{table}.parquet") == of_district(
                    before[table], table, district
                )
        runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
        assert runs == dict.fromkeys(reset, "completed")


@pytest.mark.parametrize("warehouse", ["duckdb"], indirect=True)
@hsettings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(districts=st.lists(district, min_size=DISTRICTS, max_size=DISTRICTS), as_ofs=as_of_dates)
def test_runs_match_the_oracle(warehouse, districts, as_ofs) -> None:
    check(*warehouse, districts, as_ofs)


@pytest.mark.parametrize(
    "warehouse", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_runs_match_the_oracle_on_postgres(warehouse) -> None:
    d, t = date, datetime
    paused_by_hand = ("classlink", "paused", t(2023, 3, 1, 9), None, t(2023, 2, 28, 2))
    resumed_last_year = ("oneroster_sftp", "active", t(2022, 7, 29), t(2022, 8, 20), None)
    districts = [
        (None, [paused_by_hand], [2024]),  # default 2023-07-28
        # requested 06-26
        ((d(2023, 6, 26), d(2023, 6, 9), None, d(2023, 8, 20)), [resumed_last_year], [2023]),
        ((None, d(2023, 6, 2), d(2023, 8, 4), d(2023, 8, 28)), [], []),  # after session: 08-05
        ((None, d(2023, 6, 2), d(2023, 8, 4), d(2023, 8, 5)), [paused_by_hand], [2024]),  # blocked
    ]
    check(*warehouse, districts, [d(2023, 7, 1), d(2023, 8, 10)])
