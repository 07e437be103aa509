"""The scope of this process's command: set by `load_scope`, read where rows are taken,
deleted, fingerprinted, verified and restored, so that those functions keep their
signatures. Before a command loaded one (a function called on its own, as tests and the
workers' first call do), it is the demo's, as `init` creates it and the project declares it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobs.scope.model import Scope

_lock = threading.Lock()
_current: Scope | None = None
_demo: Scope | None = None


def use_scope(scope: Scope) -> Scope:
    """Make `scope` the one the rest of the command reads; returns it."""
    global _current
    with _lock:
        _current = scope
    return scope


def loaded() -> Scope | None:
    """The scope a command loaded, if any."""
    return _current


def current_scope() -> Scope:
    """The scope the command loaded, or the demo's."""
    return _current if _current is not None else demo_scope()


def demo_scope() -> Scope:
    """The demo schema's scope, from the DDL `init` runs (the same as the project's sources
    declare: a test compares them)."""
    global _demo
    with _lock:
        if _demo is None:
            _demo = _build_demo()
        return _demo


def _build_demo() -> Scope:
    from jobs.scope.build import build_scope
    from jobs.scope.catalog import Catalog, CatalogTable, ForeignKey
    from jobs.scope.declared import Declaration, DeclaredTable
    from jobs.warehouse.contract import APP_TABLES, DESCRIPTIONS, SQL_TYPES

    types = SQL_TYPES["postgres"]
    roles = {
        "districts": "districts",
        "import_syncs": "syncs",
        "district_reset_requests": "requests",
        "rostering_runs": "rostering",
    }
    tables: dict[str, CatalogTable] = {}
    fks: list[ForeignKey] = []
    declared: list[DeclaredTable] = []
    for t in APP_TABLES:
        q = f"app.{t.name}"
        cols = tuple((c, types[kind]) for c, kind in t.columns)
        tables[q] = CatalogTable("app", t.name, cols, t.primary_key)
        for own, ref, theirs in t.foreign_keys:
            fks.append(ForeignKey(f"{t.name}_{'_'.join(own)}_fkey", q, own, f"app.{ref}", theirs))
        role = roles.get(t.name)
        declared.append(
            DeclaredTable(
                schema="app",
                name=t.name,
                action="delete" if t.deleted else "retain",
                role=role,
                key=("district_id",) if role == "districts" else t.primary_key,
                district="district_id" if t.deleted else None,
                source="app",
                description=DESCRIPTIONS.get(t.name, ""),
            )
        )
    return build_scope(Declaration(tuple(declared), ("app",)), Catalog(tables, tuple(fks)))


def forget_scope() -> None:
    """Back to the demo's scope (a test that loaded another one, at its end)."""
    global _current
    from jobs.scope.built import forget_built

    forget_built()
    with _lock:
        _current = None
