"""The declared ownership compiled to set-based SQL, one statement per table per batch.

`owned_sql` is every row of a deleted table with each district owning it (column
`eoy_district`, the id's text form): the row's own column, a path of many-to-one joins, the
parent's owners (`of:`), or a dbt model's rows (`rows:`). A row with a null on its path has
no owner: it is never selected, never deleted. A row may have several owners only through a
`rows:` model; it is then deleted once no owner outside the batch is still to be reset.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from jobs.scope.catalog import kind_of, relation
from jobs.warehouse.connection import quote_ident

if TYPE_CHECKING:
    from jobs.scope.model import Scope, ScopedTable

OWNER = "eoy_district"
LEDGER_RUNS = "eoy_runner.reset_runs"

# During a pass: where each `rows:` table's owners are read (qualified name -> relation), a
# copy of its model's rows taken before the pass's first delete. A model that is a view
# reads tables the same pass deletes from (children first), and would lose the owners of
# the tables deleted after them.
_FIXED: ContextVar[Mapping[str, str] | None] = ContextVar("fixed_owners", default=None)
# ... and the districts that had completed the school year when the pass began: each of its
# statements decides on a shared row with the same ones. Read afresh by each statement, a
# batch beside it committing between the delete of a child and of its parent would have the
# child kept and the parent deleted.
COMPLETED = "eoy_fixed_completed"


def fixed_owners_sql(
    scope: Scope, districts: list[str], target: str, school_year: int
) -> list[str]:
    """Statements copying, for every `rows:` table, its model's rows of every row a district
    of the batch owns (each with all its owners) into a temporary table, one statement per
    table, then the districts completed for the school year; their names are
    `fixed_owners_names`. No statement at all when no table has a `rows:` model (no row is
    shared)."""
    batch = literals(districts)
    out = []

    def create(name: str) -> str:
        if target == "postgres":
            return f"create temporary table {name} on commit drop"
        return f"create or replace temporary table {name}"

    for (qualified, relation_), name in zip(_rows_models(scope), _owner_copies(scope), strict=True):
        keys = tuple((k, k) for k in scope.by_qualified(qualified).key)
        out.append(
            f"{create(name)} as select m.* from {relation_} as m where exists (select 1 from "
            f"{relation_} as b where cast(b.district_id as text) in ({batch}) and "
            f"{_on('b', 'm', keys)})"
        )
    if out:
        out.append(
            f"{create(COMPLETED)} as select cast(r.district_id as text) as district_id "
            f"from {LEDGER_RUNS} r where r.school_year = {int(school_year)} "
            "and r.status = 'completed'"
        )
    return out


def _completed(school_year: int) -> str:
    """The districts completed for the school year: as the pass began, within one."""
    if _FIXED.get() is not None:
        return f"select district_id from {COMPLETED}"
    return (
        f"select cast(r.district_id as text) from {LEDGER_RUNS} r "
        f"where r.school_year = {int(school_year)} and r.status = 'completed'"
    )


def _rows_models(scope: Scope) -> list[tuple[str, str]]:
    return [
        (t.qualified, t.decl.rows_relation or "")
        for t in scope.tables.values()
        if t.decl.deleted and t.decl.rows
    ]


def _owner_copies(scope: Scope) -> list[str]:
    """The temporary tables holding each `rows:` table's owners during a pass."""
    return [f"eoy_fixed_owners_{i}" for i, _ in enumerate(_rows_models(scope))]


def fixed_owners_names(scope: Scope) -> list[str]:
    """Every temporary table `fixed_owners_sql` makes (the owners' copies, then the
    completed districts), for a target that does not drop them at the commit."""
    names = _owner_copies(scope)
    return [*names, COMPLETED] if names else []


@contextmanager
def owners_fixed(scope: Scope) -> Iterator[None]:
    """Read the `rows:` tables' owners from the copies `fixed_owners_sql` made."""
    names = dict(zip((q for q, _ in _rows_models(scope)), _owner_copies(scope), strict=True))
    token = _FIXED.set(names)
    try:
        yield
    finally:
        _FIXED.reset(token)


_INTEGER = re.compile(r"0|-?[1-9][0-9]*")
INTEGER_KINDS = ("int", "bigint")


def literals(districts: list[str], kind: str = "text") -> str:
    """District ids as SQL literals, typed like the column they are compared with."""
    if any("\x00" in d for d in districts):
        raise ValueError("a district id with a NUL character")
    if kind in INTEGER_KINDS:
        # only an integer's own text form names a row of an integer column ('007' names none)
        return ", ".join(d for d in districts if _INTEGER.fullmatch(d)) or "null"
    return ", ".join("'" + d.replace("'", "''") + "'" for d in districts) or "null"


def _on(left: str, right: str, pairs: tuple[tuple[str, str], ...]) -> str:
    return " and ".join(f"{left}.{quote_ident(a)} = {right}.{quote_ident(b)}" for a, b in pairs)


def _owner_in(owner: str, kind: str, districts: list[str] | None) -> str:
    """` and <owner> in (<the districts>)`, typed like the column (so that the warehouse can
    use its index and its statistics on it), or nothing without districts."""
    if districts is None:
        return ""
    if kind in INTEGER_KINDS:
        return f" and {owner} in ({literals(districts, kind)})"
    return f" and cast({owner} as text) in ({literals(districts)})"


def _kind_in(scope: Scope, qualified: str, column: str) -> str:
    """The logical kind of a column of any table of the catalog (text when not found)."""
    found = scope.catalog.tables.get(qualified)
    types = dict(found.columns) if found is not None else {}
    return kind_of(types[column]) if column in types else "text"


def _owner_path(
    scope: Scope, table: ScopedTable, districts: list[str] | None, alias: str
) -> tuple[list[str], list[str], str]:
    """How a row of the table (as `alias`) reaches its owner: the relations to join (each
    with its alias), the conditions (the joins' keys, no null on the path, and with
    `districts`, only theirs), and the owner's text expression."""
    decl = table.decl
    if decl.district:
        owner = f"{alias}.{quote_ident(decl.district)}"
        only = _owner_in(owner, table.kind(decl.district), districts)
        return [], [f"{owner} is not null{only}"], f"cast({owner} as text)"
    if decl.via:
        relations, conditions, left = [], [], alias
        for i, step in enumerate(decl.via, start=1):
            relations.append(f"{relation(step.table)} as t{i}")
            conditions.append(_on(left, f"t{i}", step.on))
            left = f"t{i}"
        column = decl.column or ""
        owner = f"{left}.{quote_ident(column)}"
        only = _owner_in(owner, _kind_in(scope, decl.via[-1].table, column), districts)
        return relations, [*conditions, f"{owner} is not null{only}"], f"cast({owner} as text)"
    if decl.of is not None:
        parent = owned_sql(scope, scope.by_qualified(decl.of.table), districts)
        return [f"({parent}) as p"], [_on(alias, "p", decl.of.on)], f"p.{OWNER}"
    keys = tuple((k, k) for k in table.key)
    model = (_FIXED.get() or {}).get(decl.qualified, decl.rows_relation)
    only = _owner_in("m.district_id", "text", districts)
    return (
        [f"{model} as m"],
        [_on(alias, "m", keys), f"m.district_id is not null{only}"],
        "cast(m.district_id as text)",
    )


def owned_sql(scope: Scope, table: ScopedTable, districts: list[str] | None = None) -> str:
    """Every owned row of the table: its columns and `eoy_district` (one row per owner);
    with `districts`, only those districts' rows, the filter put where the district is read
    (at the end of a path, on the parent, on the model), not on the whole join's result."""
    cols = ", ".join(f"t0.{quote_ident(c)}" for c in table.column_names)
    relations, conditions, owner = _owner_path(scope, table, districts, "t0")
    sources = ", ".join([f"{relation(table.qualified)} as t0", *relations])
    return f"select {cols}, {owner} as {OWNER} from {sources} where {' and '.join(conditions)}"


def shared(scope: Scope, table: ScopedTable) -> bool:
    """Whether a row of the table may have several owners (only a `rows:` model says so)."""
    if table.decl.rows:
        return True
    if table.decl.of is not None:
        return shared(scope, scope.by_qualified(table.decl.of.table))
    return False


def _own_column(table: ScopedTable) -> tuple[str, str] | None:
    """(column, kind) when the row's own column holds its district."""
    if table.decl.district:
        return table.decl.district, kind_of(table.column_type(table.decl.district))
    return None


def select_sql(scope: Scope, table: ScopedTable, districts: list[str], columns: str) -> str:
    """The batch's owned rows: `columns` (over alias o) and `eoy_district`."""
    own = _own_column(table)
    if own is not None:
        column, kind = own
        return (
            f"select {columns.replace('o.', '')}, cast({quote_ident(column)} as text) as {OWNER} "
            f"from {relation(table.qualified)} where {quote_ident(column)} in "
            f"({literals(districts, kind)})"
        )
    return f"select {columns}, o.{OWNER} from ({owned_sql(scope, table, districts)}) as o"


def delete_sql(
    scope: Scope, table: ScopedTable, districts: list[str], school_year: int, returning: str = ""
) -> str:
    """One statement deleting the batch's rows of the table: those owned by its districts,
    and, of a row several districts own, only once every other owner completed the year."""
    own = _own_column(table)
    tail = f" returning {returning}" if returning else ""
    target = relation(table.qualified)
    if own is not None:
        column, kind = own
        where = f"{quote_ident(column)} in ({literals(districts, kind)})"
        return f"delete from {target} where {where}{tail}"
    guard = ""
    if shared(scope, table):
        relations, conditions, owner = _owner_path(scope, table, None, target)
        guard = (
            f" and not exists (select 1 from {', '.join(relations)} where "
            f"{' and '.join(conditions)} and {owner} not in ({literals(districts)}) "
            f"and {owner} not in ({_completed(school_year)}))"
        )
    return f"delete from {target} where {_reached(scope, table, districts, target)}{guard}{tail}"


def _reached(scope: Scope, table: ScopedTable, districts: list[str] | None, alias: str) -> str:
    """A condition on a row of a table reached through keys (as `alias`): a district owns it
    (of `districts`, when given). The row is joined to its path, not to a second reading of
    its own table by its key."""
    relations, conditions, _ = _owner_path(scope, table, districts, alias)
    return f"exists (select 1 from {', '.join(relations)} where {' and '.join(conditions)})"


def delete_owned_sql(scope: Scope, table: ScopedTable, districts: list[str], columns: str) -> str:
    """PostgreSQL: one statement deleting the batch's rows of a table whose rows reach their
    district through keys and have one owner each, handing them back: `columns` (over alias
    d) and `eoy_district`. The rows come out of the statement that deletes them, as from a
    table with its own district column; the table is read once, as the statement's target,
    joined to its path (not to a second reading of itself by its key)."""
    if shared(scope, table):
        raise ValueError(f"{table.qualified}: a row may have several owners")
    relations, conditions, owner = _owner_path(scope, table, districts, "d")
    using = f" using {', '.join(relations)}" if relations else ""
    return (
        f"delete from {relation(table.qualified)} as d{using} "
        f"where {' and '.join(conditions)} returning {columns}, {owner} as {OWNER}"
    )


def kept_for_others_sql(
    scope: Scope,
    table: ScopedTable,
    districts: list[str],
    school_year: int | None,
    alias: str = "o",
) -> str:
    """A condition on an owned row (alias `alias`, from `owned_sql`): another owner, outside
    `districts` and not yet completed for the school year, still holds it, so it stays.
    Without a school year: any owner outside `districts` (a batch in flight beside this one
    may complete after this pass's delete kept the row for it; the run's sweep takes it).
    Always false for a table whose rows have one owner."""
    if not shared(scope, table):
        return "false"
    keys = tuple((k, k) for k in table.key)
    completed = (
        f"and o2.{OWNER} not in ({_completed(school_year)})" if school_year is not None else ""
    )
    return (
        f"exists (select 1 from ({owned_sql(scope, table)}) as o2 "
        f"where {_on('o2', alias, keys)} and o2.{OWNER} not in ({literals(districts)}) "
        f"{completed})"
    )


def unowned_sql(scope: Scope, table: ScopedTable) -> str:
    """How many of the table's rows no district owns (a null on the path)."""
    own = _own_column(table)
    target = relation(table.qualified)
    if own is not None:
        return f"select count(*) from {target} where {quote_ident(own[0])} is null"
    return f"select count(*) from {target} where not {_reached(scope, table, None, target)}"


def counts_sql(scope: Scope, table: ScopedTable, districts: list[str] | None = None) -> str:
    """(district, rows) of the table's owned rows, of `districts` or of every district."""
    return (
        f"select o.{OWNER}, count(*) from ({owned_sql(scope, table, districts)}) as o "
        f"group by o.{OWNER}"
    )


def district_count_sql(scope: Scope, table: ScopedTable, district_id: str) -> str:
    """How many rows of the table the district owns (a retained table: by its own column)."""
    column = table.district_column
    if column is not None:
        literal = literals([district_id], kind_of(table.column_type(column)))
        return f"select count(*) from {table.relation} where {quote_ident(column)} = {literal}"
    return (
        f"select count(*) from ({owned_sql(scope, table)}) as o "
        f"where o.{OWNER} = {literals([district_id])}"
    )


def district_known_sql(scope: Scope) -> str:
    """Whether a district exists: a count, of the districts table, taking its id (%s)."""
    table = scope.districts
    column = quote_ident(table.key[0])
    if kind_of(table.column_type(table.key[0])) != "text":
        column = f"cast({column} as text)"
    return f"select count(*) from {table.relation} where {column} = %s"


def district_name_sql(scope: Scope) -> str:
    """The district's name (null when the districts table has no `name`), taking its id."""
    table = scope.districts
    column = quote_ident(table.key[0])
    if kind_of(table.column_type(table.key[0])) != "text":
        column = f"cast({column} as text)"
    name = "name" if "name" in table.column_names else "cast(null as text)"
    return f"select {name} from {table.relation} where {column} = %s"


def sweep_sql(scope: Scope, table: ScopedTable, school_year: int) -> str:
    """The rows of a table several districts may own whose owners have all completed the
    school year: two batches in flight each left a row its other owner's batch still held;
    the end of the run takes them (each is in every owner's verified snapshot already)."""
    keys = tuple((k, k) for k in table.key)
    owned = owned_sql(scope, table)
    return (
        f"delete from {table.relation} as d where exists (select 1 from ({owned}) as o "
        f"where {_on('o', 'd', keys)}) and not exists (select 1 from ({owned}) as o "
        f"where {_on('o', 'd', keys)} and o.{OWNER} not in (select cast(r.district_id as text) "
        f"from {LEDGER_RUNS} r where r.school_year = {int(school_year)} "
        "and r.status = 'completed'))"
    )


def districts_select(scope: Scope) -> str:
    """The districts table as (district_id text, name, state): null where it has neither."""
    table = scope.districts
    key = quote_ident(table.key[0])
    if kind_of(table.column_type(table.key[0])) != "text":
        key = f"cast({key} as text)"

    def column(name: str) -> str:
        return quote_ident(name) if name in table.column_names else "cast(null as text)"

    return (
        f"select {key} as district_id, {column('name')} as name, {column('state')} as state "
        f"from {table.relation}"
    )
