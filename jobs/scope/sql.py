"""The declared ownership compiled to set-based SQL, one statement per table per batch.

`owned_sql` is every row of a deleted table with each district owning it (column
`eoy_district`, the id's text form): the row's own column, a path of many-to-one joins, the
parent's owners (`of:`), or a dbt model's rows (`rows:`). A row with a null on its path has
no owner: it is never selected, never deleted. A row may have several owners only through a
`rows:` model; it is then deleted once no owner outside the batch is still to be reset.
"""

from __future__ import annotations

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


def literals(districts: list[str], kind: str = "text") -> str:
    """District ids as SQL literals, typed like the column they are compared with."""
    if any("\x00" in d for d in districts):
        raise ValueError("a district id with a NUL character")
    if kind == "int":
        if not all(d.lstrip("-").isdigit() for d in districts):
            return "null"  # no integer id matches a text one
        return ", ".join(str(int(d)) for d in districts) or "null"
    return ", ".join("'" + d.replace("'", "''") + "'" for d in districts) or "null"


def _on(left: str, right: str, pairs: tuple[tuple[str, str], ...]) -> str:
    return " and ".join(f"{left}.{quote_ident(a)} = {right}.{quote_ident(b)}" for a, b in pairs)


def owned_sql(scope: Scope, table: ScopedTable) -> str:
    """Every owned row of the table: its columns and `eoy_district` (one row per owner)."""
    decl = table.decl
    cols = ", ".join(f"t0.{quote_ident(c)}" for c in table.column_names)
    source = f"{relation(decl.qualified)} as t0"
    if decl.district:
        owner = f"t0.{quote_ident(decl.district)}"
        return (
            f"select {cols}, cast({owner} as text) as {OWNER} from {source} "
            f"where {owner} is not null"
        )
    if decl.via:
        joins, left = [], "t0"
        for i, step in enumerate(decl.via, start=1):
            joins.append(f"join {relation(step.table)} as t{i} on {_on(left, f't{i}', step.on)}")
            left = f"t{i}"
        owner = f"{left}.{quote_ident(decl.column or '')}"
        return (
            f"select {cols}, cast({owner} as text) as {OWNER} from {source} "
            f"{' '.join(joins)} where {owner} is not null"
        )
    if decl.of is not None:
        parent = scope.by_qualified(decl.of.table)
        return (
            f"select {cols}, p.{OWNER} from {source} join ({owned_sql(scope, parent)}) as p "
            f"on {_on('t0', 'p', decl.of.on)}"
        )
    keys = tuple((k, k) for k in table.key)
    return (
        f"select {cols}, cast(m.district_id as text) as {OWNER} from {source} "
        f"join {(_FIXED.get() or {}).get(decl.qualified, decl.rows_relation)} as m "
        f"on {_on('t0', 'm', keys)} where m.district_id is not null"
    )


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
    return (
        f"select {columns}, o.{OWNER} from ({owned_sql(scope, table)}) as o "
        f"where o.{OWNER} in ({literals(districts)})"
    )


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
    keys = tuple((k, k) for k in table.key)
    batch = literals(districts)
    guard = ""
    if shared(scope, table):
        guard = (
            f" and not exists (select 1 from ({owned_sql(scope, table)}) as o2 "
            f"where {_on('o2', 'o', keys)} and o2.{OWNER} not in ({batch}) "
            f"and o2.{OWNER} not in ({_completed(school_year)}))"
        )
    return (
        f"delete from {target} where exists (select 1 from ({owned_sql(scope, table)}) as o "
        f"where o.{OWNER} in ({batch}) and {_on('o', target, keys)}{guard}){tail}"
    )


def delete_owned_sql(scope: Scope, table: ScopedTable, districts: list[str], columns: str) -> str:
    """PostgreSQL: one statement deleting the batch's rows of a table whose rows reach their
    district through keys and have one owner each, handing them back: `columns` (over alias
    d) and `eoy_district`. The rows come out of the statement that deletes them, as from a
    table with its own district column."""
    if shared(scope, table):
        raise ValueError(f"{table.qualified}: a row may have several owners")
    keys = tuple((k, k) for k in table.key)
    return (
        f"delete from {relation(table.qualified)} as d using ({owned_sql(scope, table)}) as o "
        f"where o.{OWNER} in ({literals(districts)}) and {_on('o', 'd', keys)} "
        f"returning {columns}, o.{OWNER}"
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
    keys = tuple((k, k) for k in table.key)
    return (
        f"select count(*) from {target} where not exists "
        f"(select 1 from ({owned_sql(scope, table)}) as o where {_on('o', target, keys)})"
    )


def counts_sql(scope: Scope, table: ScopedTable, districts: list[str] | None = None) -> str:
    """(district, rows) of the table's owned rows, of `districts` or of every district."""
    where = f" where o.{OWNER} in ({literals(districts)})" if districts is not None else ""
    return (
        f"select o.{OWNER}, count(*) from ({owned_sql(scope, table)}) as o{where} "
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
