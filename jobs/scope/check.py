"""The refusals: a declared scope the reset cannot follow stops `plan` and `run` before
anything changes, one line per problem naming the table, column or foreign key."""

from __future__ import annotations

from jobs.scope.catalog import Catalog
from jobs.scope.declared import Declaration, DeclaredTable, Step


def _missing_columns(catalog: Catalog, table: str, columns: list[str]) -> list[str]:
    have = catalog.tables[table].column_names if table in catalog.tables else []
    return [c for c in columns if c not in have]


def _check_step(
    decl: DeclaredTable, catalog: Catalog, here: str, step: Step, what: str
) -> list[str]:
    where = f"table {decl.qualified} {what}"
    if step.table not in catalog.tables:
        return [f"{where} joins table {step.table}, which does not exist in the warehouse"]
    problems = [
        f"{where}: column {here}.{c} does not exist"
        for c in _missing_columns(catalog, here, [a for a, _ in step.on])
    ]
    problems += [
        f"{where}: column {step.table}.{c} does not exist"
        for c in _missing_columns(catalog, step.table, [b for _, b in step.on])
    ]
    return problems


def _check_table(decl: DeclaredTable, declaration: Declaration, catalog: Catalog) -> list[str]:
    q = decl.qualified
    if q not in catalog.tables:
        return [f"table {q} is declared in the scope but does not exist in the warehouse"]
    problems = [
        f"table {q}: key column {q}.{c} does not exist"
        for c in _missing_columns(catalog, q, list(decl.key))
    ]
    if decl.deleted and not decl.key and not catalog.tables[q].primary_key:
        problems.append(
            f"table {q} has no primary key in the warehouse: declare its row key (key: [COL, …])"
        )
    if decl.role == "districts" and not decl.key:
        problems.append(f"table {q}: the districts table declares its district id (key: COL)")
    if decl.district:
        problems += [
            f"table {q}: district column {q}.{c} does not exist"
            for c in _missing_columns(catalog, q, [decl.district])
        ]
    here = q
    for step in decl.via:
        found = _check_step(decl, catalog, here, step, "district.via")
        problems += found
        if found:
            return problems
        here = step.table
    if decl.via and decl.column:
        problems += [
            f"table {q}: district column {here}.{c} does not exist"
            for c in _missing_columns(catalog, here, [decl.column])
        ]
    if decl.of is not None:
        parent = declaration.table(decl.of.table)
        if decl.of.table == q:
            problems.append(f"table {q}: of: names the table itself")
        elif parent is None or not parent.deleted:
            problems.append(
                f"table {q}: of: names table {decl.of.table}, which is not declared delete"
            )
        problems += _check_step(decl, catalog, q, decl.of, "of")
    if decl.rows and decl.rows_relation is None:
        problems.append(
            f"table {q}: rows: names model {decl.rows}, which the project does not have"
        )
    return problems


def _cycle(declaration: Declaration, catalog: Catalog) -> list[str]:
    """A cycle among deleted tables, by foreign keys and `of:` (a table's key to itself,
    a tree in one table, deletes in one statement and is no cycle)."""
    deleted = {t.qualified for t in declaration.tables if t.deleted}
    parents: dict[str, set[str]] = {q: set() for q in deleted}
    for fk in catalog.foreign_keys:
        if fk.table in deleted and fk.parent in deleted and fk.table != fk.parent:
            parents[fk.table].add(fk.parent)
    for t in declaration.tables:
        if t.deleted and t.of is not None and t.of.table in deleted and t.of.table != t.qualified:
            parents[t.qualified].add(t.of.table)
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for parent in sorted(parents[node]):
            if state.get(parent) == 1:
                return [*path[path.index(parent) :], parent]
            if parent not in state and (found := visit(parent)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(deleted):
        if node not in state and (found := visit(node)):
            return [f"a cycle of deletes: {' → '.join(found)} (each must go before the next)"]
    return []


def problems_of(declaration: Declaration, catalog: Catalog) -> list[str]:
    """Every reason the declared scope cannot be followed on this warehouse, in a stable order."""
    problems = list(declaration.problems)
    if not declaration.schemas:
        return [
            "no source of the dbt project is in the reset's scope: give the schema's source "
            "meta: {eoy_reset: {scope: true}} and declare each of its tables"
        ]
    declared = {t.qualified for t in declaration.tables}
    for schema in declaration.schemas:
        for q in sorted(catalog.tables):
            if q.split(".", 1)[0] == schema and q not in declared:
                problems.append(
                    f"table {q} is in schema {schema}, which is in the reset's scope, but has "
                    "no declaration: declare it in the sources (meta.eoy_reset: action delete "
                    "or retain)"
                )
    districts = [t.qualified for t in declaration.tables if t.role == "districts"]
    if len(districts) > 1:
        problems.append(
            f"two districts tables: {' and '.join(districts)} both declare role: districts "
            "(the project has one)"
        )
    elif not districts:
        problems.append("no table declares role: districts (the one row per district)")
    for role in ("syncs", "requests", "rostering"):
        holders = [t.qualified for t in declaration.tables if t.role == role]
        if len(holders) > 1:
            problems.append(f"two tables declare role: {role}: {' and '.join(holders)}")
    for decl in declaration.tables:
        problems += _check_table(decl, declaration, catalog)
    deleted = {t.qualified for t in declaration.tables if t.deleted}
    for fk in catalog.foreign_keys:
        if fk.parent in deleted and fk.table not in deleted:
            problems.append(
                f"{fk.describe()}: {fk.table} is not declared delete, and deleting "
                f"{fk.parent}'s rows would break it (declare {fk.table} delete, or drop the key)"
            )
    problems += _cycle(declaration, catalog)
    return problems
