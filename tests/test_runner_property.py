"""Random calendars and as-of dates over several runs, checked against an independent oracle.

After every run: the districts reset so far (by the plain rules of SPEC §4, written again in
tests/runner_helpers.py) have no student row left and a snapshot holding exactly their rows;
every other row is as it was; the ledger says completed for exactly those districts.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rich.console import Console

from jobs.config import Settings
from jobs.contract import APP_TABLES, DELETED_TABLES
from jobs.runner import run_reset
from jobs.schema import init_warehouse
from jobs.snapshots import district_dir
from jobs.warehouse import Warehouse, connect
from tests.conftest import make_settings
from tests.runner_helpers import (
    dump_app,
    expected_due,
    insert,
    of_district,
    parquet_rows,
    small_district,
    without,
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


def fresh(s: Settings, wh: Warehouse, calendars: list) -> None:
    for table in reversed(APP_TABLES):
        wh.execute(f"delete from app.{table.name}")
    wh.execute("delete from eoy_runner.reset_events")
    wh.execute("delete from eoy_runner.reset_runs")
    shutil.rmtree(s.snapshot_root, ignore_errors=True)
    for i, cal in enumerate(calendars):
        district = f"p{i}"
        small_district(wh, district, students=1 + i % 2)
        if cal is not None:
            insert(wh, "district_reset_requests", [(district, YEAR, *cal)])
    small_district(wh, HOSTILE)  # no request: reset on the default date


HOSTILE = "x'; drop table app.students; --/../é"


def check(s: Settings, wh: Warehouse, cals: list, as_ofs: list[date]) -> None:
    fresh(s, wh, cals)
    before = dump_app(wh)
    reset: set[str] = set()
    for as_of in as_ofs:
        result = run_reset(s, as_of, YEAR, yes=True, show_progress=False, console=QUIET)
        assert result["failed"] == []
        reset |= expected_due(wh, YEAR, as_of)
        assert {d["district_id"] for d in result["districts"]} <= reset
        now = dump_app(wh, ignore_sync_state=True)
        for table in DELETED_TABLES:
            assert now[table] == without(before[table], table, reset), (table, as_of)
        for table in ("districts", "schools", "educators", "district_reset_requests"):
            assert now[table] == before[table]
        for district in reset:
            folder = district_dir(s.snapshot_root, YEAR, district)
            assert folder.parent.parent == s.snapshot_root.resolve()
            for table in DELETED_TABLES:
                assert parquet_rows(folder / f"{table}.parquet") == of_district(
                    before[table], table, district
                )
        runs = dict(wh.query("select district_id, status from eoy_runner.reset_runs"))
        assert runs == dict.fromkeys(reset, "completed")
        paused = {
            r[0]
            for r in wh.query("select district_id from app.import_syncs where status = 'paused'")
        }
        assert paused == reset


@pytest.mark.parametrize("warehouse", ["duckdb"], indirect=True)
@hsettings(
    max_examples=2,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cals=st.lists(calendar, min_size=DISTRICTS, max_size=DISTRICTS), as_ofs=as_of_dates)
def test_runs_match_the_oracle(warehouse, cals, as_ofs) -> None:
    check(*warehouse, cals, as_ofs)


@pytest.mark.parametrize(
    "warehouse", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_runs_match_the_oracle_on_postgres(warehouse) -> None:
    d = date
    cals = [
        None,  # default 2023-07-28
        (d(2023, 6, 26), d(2023, 6, 9), None, d(2023, 8, 20)),  # requested 06-26
        (None, d(2023, 6, 2), d(2023, 8, 4), d(2023, 8, 28)),  # after session: 08-05
        (None, d(2023, 6, 2), d(2023, 8, 4), d(2023, 8, 5)),  # blocked
    ]
    check(*warehouse, cals, [d(2023, 7, 1), d(2023, 8, 10)])
