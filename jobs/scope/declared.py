"""The reset's scope as the root dbt project declares it: `meta.eoy_reset` of its sources.

A source is in scope when its meta says `eoy_reset: {scope: true}`; each of its tables says
what the reset does to it (`role: districts`, `action: retain`, `action: delete` with how a
row reaches its district, an optional `role: syncs | requests | rostering`). This module
turns the sources of dbt's manifest into dataclasses; whether they hold in the warehouse is
`jobs.scope.check`'s business.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobs.errors import EoyError

META_KEY = "eoy_reset"
ROLES = ("districts", "syncs", "requests", "rostering")
ACTIONS = ("delete", "retain")


class ScopeError(EoyError):
    """The declared scope cannot be followed: the message is one line naming the table,
    column or foreign key; `problems` holds every one found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        more = len(self.problems) - 1
        line = self.problems[0] if self.problems else "the declared scope is not usable"
        if more > 0:
            line += f" (and {more} more problem{'s' if more > 1 else ''} in the scope)"
        super().__init__(line)


@dataclass(frozen=True)
class Step:
    """A many-to-one join from the previous table to `table`: own column → its column."""

    table: str  # schema.table
    on: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DeclaredTable:
    schema: str
    name: str
    action: str  # delete | retain (a districts table is retained)
    role: str | None = None  # districts | syncs | requests | rostering
    key: tuple[str, ...] = ()  # declared row key (default: the warehouse's primary key)
    district: str | None = None  # the row's own column holding the district id
    via: tuple[Step, ...] = ()  # a path to the table whose `column` holds it
    column: str | None = None
    of: Step | None = None  # the row belongs to its parent row's districts
    rows: str | None = None  # a dbt model: key columns and district_id
    rows_relation: str | None = None  # where dbt builds that model (None: not in manifest)
    source: str = ""  # the dbt source's name
    description: str = ""  # the table's description in the sources YAML

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def deleted(self) -> bool:
        return self.action == "delete"


@dataclass(frozen=True)
class Declaration:
    """Every declared table of the in-scope sources, in the order the YAML gives them."""

    tables: tuple[DeclaredTable, ...]
    schemas: tuple[str, ...]  # the in-scope schemas
    problems: tuple[str, ...] = ()  # what could not be read as a declaration

    def table(self, qualified: str) -> DeclaredTable | None:
        return next((t for t in self.tables if t.qualified == qualified), None)


def _meta(node: Mapping[str, Any], key: str = "meta") -> dict[str, Any]:
    """meta of a node (top-level or under config), as dbt versions place it."""
    meta = dict(node.get(key) or {})
    config = node.get("config") or {}
    if key == "meta":
        meta.update(config.get("meta") or {})
    return meta


def _columns(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _on(raw: Mapping[Any, Any]) -> Any:
    """A step's `on:` (YAML 1.1, which dbt reads, takes a bare `on` key for true)."""
    return raw.get("on", raw.get(True, raw.get("true")))


def _step(raw: Any, schema: str, where: str, problems: list[str]) -> Step | None:
    if not isinstance(raw, Mapping) or "table" not in raw or not isinstance(_on(raw), Mapping):
        problems.append(f"{where}: each step needs `table` and `on: {{COLUMN: ITS_COLUMN}}`")
        return None
    table = str(raw["table"])
    qualified = table if "." in table else f"{schema}.{table}"
    return Step(qualified, tuple((str(a), str(b)) for a, b in _on(raw).items()))


def _declared(
    schema: str,
    name: str,
    raw: Any,
    models: Mapping[str, str],
    source: str,
    description: str = "",
) -> tuple[DeclaredTable | None, list[str]]:
    where = f"table {schema}.{name}"
    if not isinstance(raw, Mapping):
        return None, [
            f"{where} has no meta.eoy_reset declaration: declare it (action: delete or retain)"
        ]
    problems: list[str] = []
    role = raw.get("role")
    action = raw.get("action")
    if role is not None and role not in ROLES:
        problems.append(f"{where}: unknown role {role!r} (one of {', '.join(ROLES)})")
    if role == "districts":
        if action not in (None, "retain"):
            problems.append(f"{where}: the districts table is retained, not {action!r}")
        action = "retain"
    elif action is None and role is not None:
        action = "retain"
    if action not in ACTIONS:
        problems.append(f"{where}: action must be delete or retain, not {action!r}")
        return None, problems
    district = raw.get("district")
    via: tuple[Step, ...] = ()
    column = None
    if isinstance(district, Mapping):
        steps = district.get("via") or []
        via = tuple(
            s
            for s in (_step(r, schema, f"{where} district.via", problems) for r in steps)
            if s is not None
        )
        column = district.get("column")
        if not steps or not column:
            problems.append(f"{where}: district: {{via: [...], column: COL}} needs both")
        district = None
    of = _step(raw["of"], schema, f"{where} of", problems) if "of" in raw else None
    rows = raw.get("rows")
    if action == "delete":
        ways = [k for k in ("district", "of", "rows") if raw.get(k)]
        if len(ways) != 1:
            problems.append(
                f"{where}: a deleted table says how a row reaches its district with exactly "
                f"one of district, of, rows (it has {', '.join(ways) or 'none'})"
            )
    table = DeclaredTable(
        schema=schema,
        name=name,
        action=action,
        role=role,
        key=_columns(raw.get("key")),
        district=str(district) if district else None,
        via=via,
        column=str(column) if column else None,
        of=of,
        rows=str(rows) if rows else None,
        rows_relation=models.get(str(rows)) if rows else None,
        source=source,
        description=description,
    )
    return table, problems


def declaration_from_manifest(manifest: Mapping[str, Any], root: str | None = None) -> Declaration:
    """The declaration in a manifest (the dict of manifest.json). `root`: the root project's
    name; only its sources count (a package's demo sources never do)."""
    root = root or (manifest.get("metadata") or {}).get("project_name")
    models = {
        str(node.get("name")): str(node.get("relation_name") or "")
        for node in (manifest.get("nodes") or {}).values()
        if node.get("resource_type") == "model"
        and (root is None or node.get("package_name") == root)
    }
    tables: list[DeclaredTable] = []
    schemas: list[str] = []
    problems: list[str] = []
    for node in (manifest.get("sources") or {}).values():
        if root is not None and node.get("package_name") != root:
            continue
        source_meta = _meta(node, "source_meta").get(META_KEY) or {}
        if not (isinstance(source_meta, Mapping) and source_meta.get("scope") is True):
            continue
        schema = str(node.get("schema"))
        if schema not in schemas:
            schemas.append(schema)
        name = str(node.get("identifier") or node.get("name"))
        table, found = _declared(
            schema,
            name,
            _meta(node).get(META_KEY),
            models,
            str(node.get("source_name")),
            str(node.get("description") or ""),
        )
        problems += found
        if table is not None:
            tables.append(table)
    return Declaration(tuple(tables), tuple(schemas), tuple(problems))
