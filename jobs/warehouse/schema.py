"""`eoy-reset init`: create schemas `app` and `eoy_runner`, and the web
console's accounts in `eoy_console`, idempotently."""

from __future__ import annotations

from jobs.warehouse.connection import Warehouse
from jobs.warehouse.contract import APP_TABLES, CONSOLE_DDL, LEDGER_DDL, SQL_TYPES, Table


def indexed(table: Table, target: str) -> bool:
    """Whether the table carries a primary key and indexes on this target.

    DuckDB keeps a primary key and every index as an ART index, which a delete pays for at
    commit (about 30 µs a row: 36-44 s for 1.18 M rows, against 0.03 s without). The seven
    student-data tables, which a reset deletes from in bulk, have none there: their rows
    are loaded in district order so zonemaps find a district, and the loaders and dbt's
    `unique` tests keep their keys unique."""
    return not (target == "duckdb" and table.deleted)


# The demo tables whose columns eoy-reset's own tables of the optional roles share.
ROLE_TABLES = ("import_syncs", "district_reset_requests", "rostering_runs")


def table_ddl(
    table: Table,
    target: str,
    name: str | None = None,
    schema: str = "app",
    with_keys: bool = True,
) -> str:
    types = SQL_TYPES[target]
    cols = []
    for column, logical in table.columns:
        null = " not null" if column in table.primary_key or column in table.not_null else ""
        cols.append(f"{column} {types[logical]}{null}")
    if indexed(table, target):
        cols.append(f"primary key ({', '.join(table.primary_key)})")
    # DuckDB checks foreign keys eagerly and cannot delete a referenced parent in the same
    # transaction, so the foreign keys live on PostgreSQL only.
    if target == "postgres" and with_keys:
        for own, ref, theirs in table.foreign_keys:
            cols.append(
                f"foreign key ({', '.join(own)}) references app.{ref} ({', '.join(theirs)})"
            )
    body = ",\n    ".join(cols)
    return f"create table if not exists {schema}.{name or table.name} (\n    {body}\n)"


def index_ddl(table: Table, target: str) -> list[str]:
    """district_id of every table that has one, and every foreign-key column.

    An unindexed foreign key makes each deleted parent row scan the child table.
    """
    if not indexed(table, target):
        return []
    wanted: list[tuple[str, ...]] = []
    if "district_id" in table.column_names and table.primary_key[0] != "district_id":
        wanted.append(("district_id",))
    for own, _, _ in table.foreign_keys:
        if own not in wanted and own != table.primary_key[: len(own)]:
            wanted.append(own)
    return [
        f"create index if not exists ix_{table.name}__{'_'.join(cols)} "
        f"on app.{table.name} ({', '.join(cols)})"
        for cols in wanted
    ]


def init_warehouse(wh: Warehouse) -> list[str]:
    """Create what is missing; return the statements run (for --json and tests). In a
    vendor's project (`--project-dir`), only eoy-reset's own schema eoy_runner, with its own
    tables for the optional roles (syncs, requests, rostering) a project may not declare."""
    vendor = wh.settings.is_vendor_project
    statements = ["create schema if not exists eoy_runner"]
    if not vendor:
        statements.insert(0, "create schema if not exists app")
        for table in APP_TABLES:
            statements.append(table_ddl(table, wh.target))
            statements.extend(index_ddl(table, wh.target))
    for table in APP_TABLES:
        if table.name in ROLE_TABLES:
            statements.append(table_ddl(table, wh.target, schema="eoy_runner", with_keys=False))
    statements.extend(LEDGER_DDL[wh.target])
    statements.extend(CONSOLE_DDL[wh.target])
    statements.append(
        "create index if not exists ix_reset_events__district "
        "on eoy_runner.reset_events (district_id, school_year)"
    )
    with wh.transaction():
        for sql in statements:
            wh.execute(sql)
        if wh.target == "duckdb":
            statements.extend(_drop_student_table_indexes(wh))
    return statements


def _drop_student_table_indexes(wh: Warehouse) -> list[str]:
    """A DuckDB warehouse made by an earlier version keeps primary keys and indexes on the
    student-data tables: rebuild each such table without them, its rows in district order."""
    done: list[str] = []
    for table in APP_TABLES:
        if indexed(table, "duckdb"):
            continue
        found = wh.scalar(
            "select count(*) from duckdb_constraints() where schema_name = 'app' "
            "and table_name = %s and constraint_type in ('PRIMARY KEY', 'UNIQUE')",
            [table.name],
        ) or wh.scalar(
            "select count(*) from duckdb_indexes() where schema_name = 'app' and table_name = %s",
            [table.name],
        )
        if not found:
            continue
        fresh = f"{table.name}__rebuilt"
        cols = ", ".join(table.column_names)
        statements = [
            f"drop table if exists app.{fresh}",
            table_ddl(table, "duckdb", fresh),
            f"insert into app.{fresh} ({cols}) select {cols} from app.{table.name} "
            "order by district_id",
            f"drop table app.{table.name}",
            f"alter table app.{fresh} rename to {table.name}",
        ]
        for sql in statements:
            wh.execute(sql)
        done.extend(statements)
    return done
