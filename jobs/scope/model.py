"""The reset's scope as the stages below read it: each declared table as the warehouse has
it, the order of deletes and restores, the districts table and the optional roles."""

from __future__ import annotations

from dataclasses import dataclass

from jobs.scope.catalog import Catalog, CatalogTable, kind_of, relation
from jobs.scope.declared import DeclaredTable

# eoy-reset's own tables where a project declares no table of the role
OWN_TABLES = {
    "syncs": "eoy_runner.import_syncs",
    "requests": "eoy_runner.district_reset_requests",
    "rostering": "eoy_runner.rostering_runs",
}


@dataclass(frozen=True)
class ScopedTable:
    """A declared table as the warehouse has it."""

    label: str  # the name in plans, snapshots and the ledger: the table's, or schema.table
    decl: DeclaredTable
    info: CatalogTable
    key: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return self.decl.qualified

    @property
    def column_names(self) -> list[str]:
        return self.info.column_names

    @property
    def columns(self) -> tuple[tuple[str, str], ...]:
        """(name, logical kind) of each column, in the table's order."""
        return tuple((c, kind_of(t)) for c, t in self.info.columns)

    def column_type(self, column: str) -> str:
        return dict(self.info.columns)[column]

    def kind(self, column: str) -> str:
        """The column's logical kind (text, int, bigint, float, date, timestamp, bool)."""
        return kind_of(self.column_type(column))

    @property
    def primary_key(self) -> tuple[str, ...]:
        """The row key (declared, else the warehouse's primary key)."""
        return self.key

    @property
    def deleted(self) -> bool:
        return self.decl.deleted

    @property
    def relation(self) -> str:
        """schema.table, quoted for SQL."""
        return relation(self.qualified)

    @property
    def district_column(self) -> str | None:
        """The table's own column that holds its district, when it has one."""
        if self.decl.role == "districts":
            return self.key[0]
        return self.decl.district


@dataclass(frozen=True)
class Scope:
    tables: dict[str, ScopedTable]  # by label, in declaration order
    deleted: tuple[str, ...]  # labels, declaration order
    retained: tuple[str, ...]  # labels, declaration order (the districts table among them)
    delete_order: tuple[str, ...]  # children first
    insert_order: tuple[str, ...]  # parents first
    districts: ScopedTable
    schemas: tuple[str, ...]
    catalog: Catalog

    @property
    def rows_models(self) -> tuple[str, ...]:
        """The root project's models that `rows:` declarations name (built with the plan)."""
        return tuple(sorted({t.decl.rows for t in self.tables.values() if t.decl.rows}))

    def by_qualified(self, qualified: str) -> ScopedTable:
        return next(t for t in self.tables.values() if t.qualified == qualified)

    def role(self, role: str) -> ScopedTable | None:
        """The table declared with `role` (syncs, requests, rostering), if any."""
        return next((t for t in self.tables.values() if t.decl.role == role), None)

    def role_relation(self, role: str) -> str:
        """Where the role's rows live: the declared table, or eoy-reset's own."""
        found = self.role(role)
        return found.qualified if found is not None else OWN_TABLES[role]

    def roles_said(self) -> dict[str, str]:
        """Each optional role and where it is kept, as the plan says it."""
        out = {}
        for role, own in OWN_TABLES.items():
            found = self.role(role)
            out[role] = (
                f"declared: {found.qualified}"
                if found is not None
                else f"none declared; kept in {own}"
            )
        return out
