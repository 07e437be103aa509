"""`eoy-reset query NAME`: run one of the ready questions of `analyses/` on the warehouse.

dbt builds the audit views (schema eoy_audit) for the vars given, compiles the analysis with
the same vars, and the compiled SQL runs on the warehouse. The day and the school year reach
dbt as parameters (`as_parameters`), so a new day costs no new parse of the project. The
analyses read eoy_audit only, so on PostgreSQL the eoy_analyst role can run their compiled SQL
too.

The build runs every time (the views are rebuilt for the vars asked). The compile does not:
one `dbt compile` compiles every analysis, and their SQL is kept beside the warehouse's dbt
`target/` under a digest of the project's files, the vars, the parameters, the warehouse and
the day (an analysis without `as_of_date` reads today). The next query with the same digest
runs the kept SQL; anything else compiles again.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from jobs.config import PROJECT_DIR, Settings
from jobs.errors import EoyError
from jobs.plan.dbt import (
    PARAMETERS,
    as_parameters,
    build_models,
    dbt_work_dir,
    project_key,
    run_dbt,
)

ANALYSES = PROJECT_DIR / "analyses"
PROJECT_NAME = "eoy_reset"
# Every analysis's SQL of the last compile, with the digest it was compiled under.
ANALYSES_KEPT = "analyses-compiled.json"
_VAR = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")


class QueryError(EoyError):
    """The analysis cannot be run as asked; the message says what to give instead."""


def analyses() -> dict[str, str]:
    """Every analysis by name, with its header comment."""
    found = {}
    for path in sorted(ANALYSES.glob("*.sql")):
        header = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("--"):
                break
            header.append(line.removeprefix("--").strip())
        found[path.stem] = " ".join(header)
    return found


def parse_vars(pairs: list[str]) -> dict[str, str]:
    """`--var k=v` options as dbt vars."""
    out = {}
    for pair in pairs:
        match = _VAR.match(pair.strip())
        if not match:
            raise QueryError(
                f"--var {pair!r}: use NAME=VALUE, like --var as_of_date=2023-07-28 "
                "or --var school_year=2023"
            )
        out[match.group(1)] = match.group(2).strip()
    return out


_REF = re.compile(r"""\bref\(\s*['"](\w+)['"]\s*\)""")
_VAR_USED = re.compile(r"""\bvar\(\s*['"](\w+)['"]""")
_CALL = re.compile(r"\b(\w+)\s*\(")
_MACRO = re.compile(r"\{%-?\s*macro\s+(\w+)\s*\(")


def analysis_vars(name: str) -> set[str]:
    """The dbt vars an analysis reads: in its own SQL, the models it reads (the audit views
    are built with the vars given) and the macros any of them call, followed through."""
    models = {p.stem: p for p in (PROJECT_DIR / "models").rglob("*.sql")}
    macros = {
        macro: path
        for path in (PROJECT_DIR / "macros").rglob("*.sql")
        for macro in _MACRO.findall(path.read_text(encoding="utf-8"))
    }
    found: set[str] = set()
    seen: set[Path] = set()
    todo = [ANALYSES / f"{name}.sql"]
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        text = path.read_text(encoding="utf-8")
        found.update(_VAR_USED.findall(text))
        todo += [models[m] for m in _REF.findall(text) if m in models]
        todo += [macros[c] for c in _CALL.findall(text) if c in macros]
    return found


def check_vars(name: str, variables: dict[str, str]) -> None:
    """A var the analysis does not read is refused: a misspelt name would be ignored."""
    used = analysis_vars(name)
    for var in variables:
        if var not in used:
            reads = f"it reads {', '.join(sorted(used))}" if used else "it reads no var"
            raise QueryError(f"--var {var}: analysis {name} does not use it ({reads})")


def compiled_path(settings: Settings, name: str) -> Path:
    return (
        dbt_work_dir(settings) / "target" / "compiled" / PROJECT_NAME / "analyses" / f"{name}.sql"
    )


def compile_analysis(settings: Settings, name: str, variables: dict[str, str]) -> str:
    """Build the audit views for the vars (unless this role may not: query_vars); the
    analysis's SQL compiled with them (kept from an earlier compile of the same digest, or
    compiled now)."""
    from jobs.output import phase
    from jobs.report.built import builds_here
    from jobs.report.html import AUDIT_SELECTION

    parameters, rest = as_parameters(variables)
    # before the build: a file changed meanwhile is seen by the next query
    key = analyses_key(settings, parameters, rest)
    if builds_here(settings):
        with phase("building the audit models…"):
            build_models(settings, AUDIT_SELECTION, vars=rest, parameters=parameters)
    kept = kept_analyses(settings, key)
    if name not in kept:
        known = analyses()
        with phase("compiling the analyses…"):
            run_dbt(settings, ["compile", "--select", *known], vars=rest, parameters=parameters)
        paths = {n: compiled_path(settings, n) for n in known}
        kept = {n: p.read_text(encoding="utf-8") for n, p in paths.items() if p.is_file()}
        if name not in kept:
            raise QueryError(f"dbt compiled {name} but wrote no SQL at {paths[name]}: run it again")
        _keep_analyses(settings, key, kept)
    return kept[name]


def query_vars(settings: Settings, name: str, variables: dict[str, str]) -> dict[str, str]:
    """The vars the analysis runs with: those given, each one it reads (check_vars); for a role
    that may not build the audit views (eoy_analyst), the day and school year an operator's
    build left them for (another one asked is refused)."""
    from jobs.report.built import as_built, builds_here
    from jobs.warehouse.connection import connect

    known = analyses()
    if name not in known:
        raise QueryError(f"no analysis named {name!r} in analyses/: use one of {', '.join(known)}")
    check_vars(name, variables)
    connect(settings).close()  # "run eoy-reset init" before dbt's own error
    if builds_here(settings):
        return variables
    asked: dict[str, Any] = {}
    for var, parse, form in (
        ("as_of_date", date.fromisoformat, "YYYY-MM-DD"),
        ("school_year", int, "a year, like 2023"),
    ):
        if var in variables:
            try:
                asked[var] = parse(variables[var])
            except ValueError:
                raise QueryError(f"--var {var}={variables[var]}: use {form}") from None
    built = as_built(settings, asked.get("as_of_date"), asked.get("school_year"))
    used = analysis_vars(name)
    shown = {"as_of_date": built.as_of.isoformat(), "school_year": str(built.school_year)}
    return {**variables, **{k: v for k, v in shown.items() if k in used}}


def analyses_key(settings: Settings, parameters: dict[str, str], rest: dict[str, Any]) -> str:
    """The digest a compile of the analyses is kept under (see the module's docstring)."""
    given = {p: parameters.get(p, "") for p in PARAMETERS}
    where = {k: v for k, v in settings.dbt_env().items() if k != "EOY_PG_PASSWORD"}
    return project_key(settings, rest, given, where, date.today().isoformat())


def _kept_path(settings: Settings) -> Path:
    return dbt_work_dir(settings) / ANALYSES_KEPT


def kept_analyses(settings: Settings, key: str) -> dict[str, str]:
    """The analyses' SQL kept under `key`; none when another digest (or nothing) is kept."""
    try:
        doc = json.loads(_kept_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or doc.get("key") != key or not isinstance(doc.get("sql"), dict):
        return {}
    return {str(n): str(sql) for n, sql in doc["sql"].items() if str(sql).strip()}


def _keep_analyses(settings: Settings, key: str, sql: dict[str, str]) -> None:
    path = _kept_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({"key": key, "sql": sql}), encoding="utf-8")
    os.replace(temporary, path)  # another query on this warehouse reads it whole or not


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def run_query(settings: Settings, name: str, variables: dict[str, str]) -> dict[str, Any]:
    """The analysis's rows (as dicts, in its column order) and what it was run with."""
    from jobs.warehouse.connection import connect

    variables = query_vars(settings, name, variables)
    sql = compile_analysis(settings, name, variables)
    with connect(settings) as wh:
        columns, values = _fetch(wh, sql)
    rows = [dict(zip(columns, row, strict=True)) for row in values]
    return {
        "query": name,
        "description": analyses()[name],
        "vars": variables,
        "warehouse": settings.describe(),
        "columns": columns,
        "rows": [{k: _plain(v) for k, v in row.items()} for row in rows],
        "totals": {"rows": len(rows)},
    }


def _fetch(wh: Any, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names (even of no row) and rows of the compiled SQL, run as it is (no
    placeholders: a % in it is a %)."""
    con = wh.con
    if wh.target == "postgres":
        with con.cursor() as cur:
            cur.execute(sql.encode("utf-8"))
            return [d.name for d in cur.description or []], list(cur.fetchall())
    cur = con.execute(sql)
    return [d[0] for d in cur.description or []], list(cur.fetchall())


def cell(value: Any, column: str = "") -> str:
    """A value as the table shows it: as the report shows it, counts with a thousands
    separator except years, and fractions to two places."""
    from jobs.report.html import fmt

    if isinstance(value, float):
        return f"{value:,.2f}"
    return fmt(value, "" if column.endswith("year") else "num")
