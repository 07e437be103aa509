"""The scope from a declaration and a catalog: checked (refused in one line), ordered."""

from __future__ import annotations

from jobs.scope.catalog import Catalog
from jobs.scope.check import problems_of
from jobs.scope.declared import Declaration, ScopeError
from jobs.scope.model import Scope, ScopedTable
from jobs.scope.order import delete_order


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
