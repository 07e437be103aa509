"""The reset's scope, loaded once per command: the declaration (dbt's manifest) joined with
the warehouse's catalog, checked, ordered. Everything that deletes, snapshots, restores or
counts student rows asks it which tables, keys, columns and owners there are."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.scope.catalog import Catalog, CatalogTable, kind_of, read_catalog
from jobs.scope.check import problems_of
from jobs.scope.current import current_scope, use_scope
from jobs.scope.declared import Declaration, DeclaredTable, ScopeError, declaration_from_manifest
from jobs.scope.order import delete_order
from jobs.scope.sql import relation
from jobs.warehouse.connection import Warehouse

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


def build_scope(declaration: Declaration, catalog: Catalog) -> Scope:
    """The scope, or ScopeError naming the first problem (all of them in `.problems`)."""
    problems = problems_of(declaration, catalog)
    if problems:
        raise ScopeError(problems)
    names = [t.name for t in declaration.tables]
    tables: dict[str, ScopedTable] = {}
    for decl in declaration.tables:
        label = decl.name if names.count(decl.name) == 1 else decl.qualified
        info = catalog.tables[decl.qualified]
        tables[label] = ScopedTable(label, decl, info, decl.key or info.primary_key)
    by_q = {t.qualified: label for label, t in tables.items()}
    districts = next(t for t in tables.values() if t.decl.role == "districts")
    return Scope(
        tables=tables,
        deleted=tuple(label for label, t in tables.items() if t.decl.deleted),
        retained=tuple(label for label, t in tables.items() if not t.decl.deleted),
        delete_order=tuple(by_q[q] for q in delete_order(declaration, catalog)),
        insert_order=tuple(by_q[q] for q in reversed(delete_order(declaration, catalog))),
        districts=districts,
        schemas=declaration.schemas,
        catalog=catalog,
    )


def scope_from_manifest(wh: Warehouse, manifest: Mapping[str, Any]) -> Scope:
    declaration = declaration_from_manifest(manifest)
    steps = {s.table.split(".", 1)[0] for t in declaration.tables for s in (*t.via, t.of) if s}
    schemas = [*declaration.schemas, *sorted(steps - set(declaration.schemas))]
    return build_scope(declaration, read_catalog(wh, schemas))


def _manifest_digest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What the scope needs of a manifest: the root's name, sources, models' relations."""
    return {
        "metadata": {"project_name": (manifest.get("metadata") or {}).get("project_name")},
        "sources": {
            k: {
                f: v.get(f)
                for f in (
                    "package_name",
                    "schema",
                    "name",
                    "identifier",
                    "source_name",
                    "meta",
                    "source_meta",
                    "config",
                    "description",
                )
            }
            for k, v in (manifest.get("sources") or {}).items()
        },
        "nodes": {
            k: {f: v.get(f) for f in ("resource_type", "name", "package_name", "relation_name")}
            for k, v in (manifest.get("nodes") or {}).items()
            if v.get("resource_type") == "model"
        },
    }


def project_manifest(settings: Settings) -> dict[str, Any]:
    """The root project's manifest (what of it the scope reads): `dbt parse` once per change
    of the project's files, kept beside dbt's target folder under the project's digest."""
    from jobs.plan.dbt import dbt_work_dir, project_key, run_dbt

    work = dbt_work_dir(settings)
    kept = work / "scope" / f"{project_key(settings, 'scope')}.json"
    if kept.is_file():
        return dict(json.loads(kept.read_text(encoding="utf-8")))
    run_dbt(settings, ["parse"])
    written = Path(work / "target" / "manifest.json")
    digest = _manifest_digest(json.loads(written.read_text(encoding="utf-8")))
    kept.parent.mkdir(parents=True, exist_ok=True)
    partial = kept.with_suffix(".partial")
    partial.write_text(json.dumps(digest), encoding="utf-8")
    partial.replace(kept)
    return digest


def load_scope(settings: Settings, wh: Warehouse) -> Scope:
    """The declared scope of the root project on this warehouse, checked: ScopeError (one
    line naming the table, column or foreign key) when the reset cannot follow it."""
    return use_scope(scope_from_manifest(wh, project_manifest(settings)))


def ensure_scope(settings: Settings, wh: Warehouse) -> Scope:
    """The scope for a command that reads snapshots or rows but plans nothing (restore,
    export, share, status, verify): a vendor's project is loaded and checked once per
    process; this repo's own is the demo's (a test holds the two equal), without a parse."""
    from jobs.scope.current import loaded

    found = loaded()
    if found is not None or not settings.is_vendor_project:
        return current_scope()
    return load_scope(settings, wh)
