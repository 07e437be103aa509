"""`eoy-reset init` builds the demo schema and the runner's ledger on both targets, idempotently."""

from __future__ import annotations

import pytest

from jobs.config import Settings
from jobs.warehouse.connection import Warehouse, WarehouseError, connect
from jobs.warehouse.contract import APP_TABLES, DELETED_TABLES
from jobs.warehouse.schema import init_warehouse


def columns_of(wh: Warehouse, schema: str, table: str) -> list[str]:
    rows = wh.query(
        "select column_name from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        [schema, table],
    )
    return [r[0] for r in rows]


def test_app_tables_follow_the_contract(wh: Warehouse) -> None:
    for table in APP_TABLES:
        assert columns_of(wh, "app", table.name) == table.column_names


def test_ledger_tables_exist(wh: Warehouse) -> None:
    assert columns_of(wh, "eoy_runner", "reset_runs") == [
        "district_id",
        "school_year",
        "status",
        "effective_reset_date",
        "started_at",
        "finished_at",
        "snapshot_path",
        "manifest_sha256",
        "rows_deleted",
        "error",
    ]
    assert {"district_id", "school_year", "step", "status", "at", "detail"} <= set(
        columns_of(wh, "eoy_runner", "reset_events")
    )


def test_plan_approvals_table_is_added_to_an_existing_warehouse(wh: Warehouse) -> None:
    """The ledger's plan_approvals: a warehouse initialised before it existed gains it on init."""
    assert columns_of(wh, "eoy_runner", "plan_approvals") == [
        "plan_sha256",
        "approved_by",
        "approved_at",
    ]
    wh.execute("drop table eoy_runner.plan_approvals")
    wh.execute("insert into app.districts values ('d1', 'North', 'TX')")
    init_warehouse(wh)
    init_warehouse(wh)
    assert columns_of(wh, "eoy_runner", "plan_approvals") == [
        "plan_sha256",
        "approved_by",
        "approved_at",
    ]
    assert wh.scalar("select count(*) from app.districts") == 1


def test_init_is_idempotent(wh: Warehouse) -> None:
    wh.execute("insert into app.districts values ('d1', 'North', 'TX')")
    init_warehouse(wh)
    init_warehouse(wh)
    assert wh.scalar("select count(*) from app.districts") == 1


def test_primary_keys_hold(wh: Warehouse) -> None:
    wh.execute("insert into app.districts values ('d1', 'North', 'TX')")
    with pytest.raises(Exception, match=r"(?i)duplicate|constraint"):
        wh.execute("insert into app.districts values ('d1', 'Again', 'TX')")


def test_student_tables_have_a_district_index(wh: Warehouse) -> None:
    """PostgreSQL finds a district's rows by index; DuckDB by zonemaps over rows loaded in
    district order, with no index at all (`test_onepass`: an ART index makes deletes slow)."""
    if wh.target == "postgres":
        rows = wh.query("select tablename, indexdef from pg_indexes where schemaname = 'app'")
        for table in DELETED_TABLES:
            assert any(t == table and "district_id" in d for t, d in rows), table
    else:
        rows = wh.query("select table_name from duckdb_indexes() where schema_name = 'app'")
        assert not {r[0] for r in rows} & set(DELETED_TABLES)


@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"])
def test_postgres_foreign_keys_hold(wh: Warehouse) -> None:
    with pytest.raises(Exception, match="foreign key"):
        wh.execute("insert into app.schools values ('s1', 'no-such-district', 'x')")


def test_uninitialised_warehouse_is_refused(settings: Settings) -> None:
    if settings.target == "duckdb":
        with pytest.raises(WarehouseError, match="never initialised"):
            connect(settings)
    else:
        with pytest.raises(WarehouseError, match=r"never initialised.*eoy-reset init"):
            connect(settings)


def test_unreachable_server_is_one_clear_line(tmp_path) -> None:
    settings = Settings(target="postgres", pg_dsn="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(WarehouseError, match="cannot reach PostgreSQL") as err:
        connect(settings)
    assert "\n" not in str(err.value)
