"""`eoy-reset query NAME`: run one of the ready questions of `analyses/` on the warehouse.

dbt builds the audit views (schema eoy_audit) for the vars given, compiles the analysis with
the same vars, and the compiled SQL runs on the warehouse. The day and the school year reach
dbt as parameters (`as_parameters`), so a new day costs no new parse of the project. The
analyses read eoy_audit only, so on PostgreSQL the eoy_analyst role can run their compiled SQL
too.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from jobs.config import PROJECT_DIR, Settings
from jobs.errors import EoyError
from jobs.plan.dbt import as_parameters, build_models, dbt_work_dir, run_dbt

ANALYSES = PROJECT_DIR / "analyses"
PROJECT_NAME = "eoy_reset"
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


def compiled_path(settings: Settings, name: str) -> Path:
    return (
        dbt_work_dir(settings) / "target" / "compiled" / PROJECT_NAME / "analyses" / f"{name}.sql"
    )


def compile_analysis(settings: Settings, name: str, variables: dict[str, str]) -> str:
    """Build the audit views and compile the analysis for the vars; the SQL to run."""
    from jobs.output import phase
    from jobs.report.html import AUDIT_SELECTION
    from jobs.warehouse.connection import connect

    known = analyses()
    if name not in known:
        raise QueryError(f"no analysis named {name!r} in analyses/: use one of {', '.join(known)}")
    connect(settings).close()  # "run eoy-reset init" before dbt's own error
    parameters, rest = as_parameters(variables)
    with phase("building the audit models…"):
        build_models(settings, AUDIT_SELECTION, vars=rest, parameters=parameters)
    with phase(f"compiling {name}…"):
        run_dbt(settings, ["compile", "--select", name], vars=rest, parameters=parameters)
    path = compiled_path(settings, name)
    if not path.is_file():
        raise QueryError(f"dbt compiled {name} but wrote no SQL at {path}: run it again")
    return path.read_text(encoding="utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def run_query(settings: Settings, name: str, variables: dict[str, str]) -> dict[str, Any]:
    """The analysis's rows (as dicts, in its column order) and what it was run with."""
    from jobs.warehouse.connection import connect

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
