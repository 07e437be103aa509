"""`eoy-reset init`: create schemas `app` and `eoy_runner` (SPEC §3, §6), idempotently."""

from __future__ import annotations

from jobs.contract import APP_TABLES, LEDGER_DDL, SQL_TYPES, Table
from jobs.warehouse import Warehouse


def table_ddl(table: Table, target: str) -> str:
    types = SQL_TYPES[target]
    cols = []
    for name, logical in table.columns:
        null = " not null" if name in table.primary_key or name in table.not_null else ""
        cols.append(f"{name} {types[logical]}{null}")
    cols.append(f"primary key ({', '.join(table.primary_key)})")
    # DuckDB checks foreign keys eagerly and cannot delete a referenced parent in the same
    # transaction, so the foreign keys live on PostgreSQL only (SPEC: "the ones that hold").
    if target == "postgres":
        for own, ref, theirs in table.foreign_keys:
            cols.append(
                f"foreign key ({', '.join(own)}) references app.{ref} ({', '.join(theirs)})"
            )
    body = ",\n    ".join(cols)
    return f"create table if not exists app.{table.name} (\n    {body}\n)"


def index_ddl(table: Table) -> list[str]:
    """district_id of every table that has one, and every foreign-key column.

    An unindexed foreign key makes each deleted parent row scan the child table.
    """
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
    """Create what is missing; return the statements run (for --json and tests)."""
    statements = ["create schema if not exists app", "create schema if not exists eoy_runner"]
    for table in APP_TABLES:
        statements.append(table_ddl(table, wh.target))
        statements.extend(index_ddl(table))
    statements.extend(LEDGER_DDL[wh.target])
    statements.append(
        "create index if not exists ix_reset_events__district "
        "on eoy_runner.reset_events (district_id, school_year)"
    )
    with wh.transaction():
        for sql in statements:
            wh.execute(sql)
    return statements
