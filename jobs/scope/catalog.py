"""What the warehouse says of the in-scope schemas: tables, columns and their types, primary
keys and foreign keys (PostgreSQL `pg_catalog`, DuckDB `duckdb_columns()` and
`duckdb_constraints()`), read in a few statements, once per command."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.warehouse.connection import Warehouse, quote_ident

# Logical kinds of the snapshot's Parquet columns, by the warehouse's type name. An exact
# number (numeric, decimal) is kept as its text, digit for digit: a double would round any
# value of more than 15 significant digits, and the restore would put back another number.
_KINDS = (
    ("timestamp", "timestamp"),
    ("date", "date"),
    ("bigint", "bigint"),
    ("hugeint", "bigint"),
    ("int", "int"),
    ("double", "float"),
    ("real", "float"),
    ("float", "float"),
    ("numeric", "text"),
    ("decimal", "text"),
    ("bool", "bool"),
)


def kind_of(sql_type: str) -> str:
    """The logical kind of a warehouse type: text, int, bigint, float, date, timestamp, bool."""
    lowered = sql_type.lower()
    if lowered.startswith("interval"):
        return "text"
    return next((kind for prefix, kind in _KINDS if prefix in lowered), "text")


@dataclass(frozen=True)
class ForeignKey:
    name: str
    table: str  # schema.table holding the key
    columns: tuple[str, ...]
    parent: str  # schema.table referenced
    parent_columns: tuple[str, ...]
    cascade: bool = False  # ON DELETE CASCADE

    def describe(self) -> str:
        return (
            f"foreign key {self.name} {self.table} ({', '.join(self.columns)}) → "
            f"{self.parent} ({', '.join(self.parent_columns)})"
        )


@dataclass(frozen=True)
class CatalogTable:
    schema: str
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, warehouse type), in the table's order
    primary_key: tuple[str, ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]


@dataclass(frozen=True)
class Catalog:
    tables: dict[str, CatalogTable]  # by schema.table
    foreign_keys: tuple[ForeignKey, ...] = field(default=())

    def fks_to(self, qualified: str) -> list[ForeignKey]:
        return [fk for fk in self.foreign_keys if fk.parent == qualified]

    def fks_from(self, qualified: str) -> list[ForeignKey]:
        return [fk for fk in self.foreign_keys if fk.table == qualified]


def read_catalog(wh: Warehouse, schemas: Sequence[str]) -> Catalog:
    """Tables, columns, keys of `schemas`, and every foreign key into or out of them."""
    if not schemas:
        return Catalog({})
    if wh.target == "postgres":
        return _postgres(wh, list(schemas))
    return _duckdb(wh, list(schemas))


def _assemble(
    columns: list[tuple[Any, ...]], pks: dict[str, tuple[str, ...]], fks: list[ForeignKey]
) -> Catalog:
    by_table: dict[str, list[tuple[str, str]]] = {}
    for schema, table, column, sql_type in columns:
        by_table.setdefault(f"{schema}.{table}", []).append((str(column), str(sql_type)))
    tables = {
        q: CatalogTable(q.split(".", 1)[0], q.split(".", 1)[1], tuple(cols), pks.get(q, ()))
        for q, cols in by_table.items()
    }
    return Catalog(tables, tuple(sorted(fks, key=lambda fk: (fk.table, fk.name))))


def _postgres(wh: Warehouse, schemas: list[str]) -> Catalog:
    columns = wh.query(
        "select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod) "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped "
        "where n.nspname = any(%s) and c.relkind in ('r', 'p') "
        "order by n.nspname, c.relname, a.attnum",
        [schemas],
    )
    names = (
        "array(select a.attname::text from unnest({keys}) with ordinality k(n, i) "
        "join pg_attribute a on a.attrelid = {rel} and a.attnum = k.n order by k.i)"
    )
    constraints = wh.query(
        "select c.contype::text, c.conname::text, n.nspname::text, t.relname::text, "
        f"{names.format(keys='c.conkey', rel='c.conrelid')}, "
        "fn.nspname::text, ft.relname::text, "
        f"{names.format(keys='c.confkey', rel='c.confrelid')}, c.confdeltype::text "
        "from pg_constraint c join pg_class t on t.oid = c.conrelid "
        "join pg_namespace n on n.oid = t.relnamespace "
        "left join pg_class ft on ft.oid = c.confrelid "
        "left join pg_namespace fn on fn.oid = ft.relnamespace "
        "where (c.contype = 'p' and n.nspname = any(%s)) "
        "or (c.contype = 'f' and (n.nspname = any(%s) or fn.nspname = any(%s)))",
        [schemas, schemas, schemas],
    )
    pks: dict[str, tuple[str, ...]] = {}
    fks: list[ForeignKey] = []
    for kind, name, schema, table, cols, fschema, ftable, fcols, on_delete in constraints:
        if kind == "p":
            pks[f"{schema}.{table}"] = tuple(cols)
        else:
            fks.append(
                ForeignKey(
                    name,
                    f"{schema}.{table}",
                    tuple(cols),
                    f"{fschema}.{ftable}",
                    tuple(fcols),
                    on_delete == "c",
                )
            )
    return _assemble(columns, pks, fks)


def _duckdb(wh: Warehouse, schemas: list[str]) -> Catalog:
    marks = ", ".join(["%s"] * len(schemas))
    columns = wh.query(
        "select schema_name, table_name, column_name, data_type from duckdb_columns() "
        f"where database_name = current_database() and schema_name in ({marks}) "
        "and table_name in (select t.table_name from duckdb_tables() t "
        "where t.database_name = current_database() "
        "and t.schema_name = duckdb_columns.schema_name) "
        "order by schema_name, table_name, column_index",
        schemas,
    )
    constraints = wh.query(
        "select constraint_type, schema_name, table_name, constraint_column_names, "
        "referenced_table, referenced_column_names, constraint_text "
        "from duckdb_constraints() where database_name = current_database() "
        "and constraint_type in ('PRIMARY KEY', 'FOREIGN KEY')",
    )
    pks: dict[str, tuple[str, ...]] = {}
    fks: list[ForeignKey] = []
    for kind, schema, table, cols, ref, ref_cols, text in constraints:
        if kind == "PRIMARY KEY":
            if schema in schemas:
                pks[f"{schema}.{table}"] = tuple(cols)
            continue
        # DuckDB references a table of the same schema (it has no cross-schema keys)
        parent = f"{schema}.{ref}"
        if schema not in schemas:
            continue
        name = f"{table}_{'_'.join(cols)}_fkey"
        cascade = "on delete cascade" in str(text).lower()
        fks.append(
            ForeignKey(name, f"{schema}.{table}", tuple(cols), parent, tuple(ref_cols), cascade)
        )
    return _assemble(columns, pks, fks)


def relation(qualified: str) -> str:
    """schema.table for SQL: the table quoted, the schema too unless it is a plain name."""
    schema, name = qualified.split(".", 1)
    plain = schema.isidentifier() and schema.isascii() and schema == schema.lower()
    return f"{schema if plain else quote_ident(schema)}.{quote_ident(name)}"
