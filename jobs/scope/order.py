"""Which deleted table goes first: children before parents (foreign keys and `of:`), so no
key ever points at a row already gone; restores take the reverse."""

from __future__ import annotations

from jobs.scope.catalog import Catalog
from jobs.scope.declared import Declaration


def delete_order(declaration: Declaration, catalog: Catalog) -> tuple[str, ...]:
    """Qualified names of the deleted tables, children first. Among tables free to go, the
    one declared last goes first (the demo's order: its facts, then classrooms, students).
    Assumes no cycle (`jobs.scope.check` refuses one)."""
    deleted = [t.qualified for t in declaration.tables if t.deleted]
    children: dict[str, set[str]] = {q: set() for q in deleted}
    for fk in catalog.foreign_keys:
        if fk.parent in children and fk.table in children and fk.table != fk.parent:
            children[fk.parent].add(fk.table)
    for t in declaration.tables:
        if t.deleted and t.of is not None and t.of.table in children and t.of.table != t.qualified:
            children[t.of.table].add(t.qualified)
    order: list[str] = []
    left = list(reversed(deleted))
    while left:
        ready = next((q for q in left if not (children[q] - set(order))), left[0])
        order.append(ready)
        left.remove(ready)
    return tuple(order)
