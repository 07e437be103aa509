"""The database roles' grants (jobs/warehouse/roles.py) made from a declared scope: its
schemas, every declared table, the deleted ones, and where syncs and requests are kept."""

from __future__ import annotations

from jobs.scope.catalog import relation
from jobs.scope.current import current_scope
from jobs.scope.model import Scope
from jobs.warehouse.roles import Grants


def grants_of(scope: Scope | None = None) -> Grants:
    """The grants of `scope` (the command's, else the demo's)."""
    scope = scope or current_scope()
    syncs = scope.role("syncs")
    return Grants(
        schemas=tuple(relation(f"{s}.x").rsplit(".", 1)[0] for s in scope.schemas),
        tables=tuple(t.relation for t in scope.tables.values()),
        deleted=tuple(scope.tables[t].relation for t in scope.deleted),
        syncs=syncs.relation if syncs is not None else None,
        requests=relation(scope.role_relation("requests")),
    )
