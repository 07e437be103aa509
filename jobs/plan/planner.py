"""`eoy-reset plan`: who is due as of a day, what their reset touches, and what blocks others.

The plan is built by dbt (marts reset_schedule, due_districts, reset_scope,
inactive_educators) and read back here. `plan --out` writes it with a hash, so the runner
can tell an approved plan from an edited one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.plan.dbt import build_reset_models
from jobs.scope import Scope, load_scope
from jobs.scope.built import built_parts, built_relation
from jobs.scope.sql import unowned_sql
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.ledger import restored_runs
from jobs.warehouse.rostering import closed_reason

HASH_KEY = "plan_sha256"
# A planned district runs only if its rows moved by at most this share since the plan; a
# plan may say less or more (up to MAX_TOLERANCE), and is approved with what it says.
DEFAULT_TOLERANCE = 0.10
MAX_TOLERANCE = 0.5
REQUEST_ISSUES = ("request_too_early", "request_not_before_rostering", "request_during_session")


class PlanError(EoyError):
    """A plan file that cannot be used: missing, unreadable, or edited after it was written."""


def _issues(text: str | None) -> list[str]:
    return [name for name in (text or "").split(",") if name]


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def make_plan(
    settings: Settings,
    as_of: date,
    school_year: int | None,
    districts: list[str] | None = None,
    tolerance: float | None = None,
) -> dict[str, Any]:
    """Build the reset models for `as_of` and return the plan as a JSON-able dict.

    With `districts`, the plan covers only those; a restored one among them is due again,
    and a named district that is not due is listed under "not_due" with the reason.
    `tolerance`: how far a district's rows may move before the run (default
    DEFAULT_TOLERANCE), written into the plan so that it is approved with it.
    """
    with connect(settings) as wh:  # a scope the reset cannot follow is refused first
        declared = load_scope(settings, wh)
    year = build_reset_models(
        settings, as_of, school_year, named_districts=districts, models=declared.rows_models
    )
    with connect(settings) as wh:
        plan = _read_plan(wh, as_of, year, districts, declared)
    if settings.target == "duckdb":  # the file by its full path: runs elsewhere compare it
        settings = replace(settings, duckdb_path=Path(settings.duckdb_path).resolve())
    plan["warehouse"] = settings.describe()
    if tolerance is not None:
        plan["tolerance"] = check_tolerance(tolerance)
    return plan


def check_tolerance(value: float) -> float:
    """How far a district's rows may move between the plan and the run, as a fraction."""
    if not 0 <= value <= MAX_TOLERANCE:
        raise PlanError(
            f"--tolerance {value} must be a fraction from 0 to {MAX_TOLERANCE} "
            f"(0.1 lets a district's rows move 10 % between the plan and the run)"
        )
    return float(value)


def unowned_rows(wh: Warehouse, scope: Scope) -> dict[str, int]:
    """Rows of each deleted table that no district owns (a null on the way to one): never
    deleted, and said in the plan. One statement for every table."""
    parts = [
        f"select '{label}', ({unowned_sql(scope, scope.tables[label])})" for label in scope.deleted
    ]
    if not parts:
        return {}
    found = {str(t): int(n) for t, n in wh.query(" union all ".join(parts))}
    return {label: found.get(label, 0) for label in scope.deleted}


def _read_plan(
    wh: Warehouse, as_of: date, year: int, districts: list[str] | None, declared: Scope
) -> dict[str, Any]:
    named = set(districts) if districts else None

    def wanted(district_id: str) -> bool:
        return named is None or district_id in named

    schedule = [
        row
        for row in wh.query_dicts(
            "select district_id, effective_reset_date, date_source, status, issues "
            f"from {built_relation('reset_schedule')} where school_year = %s order by district_id",
            [year],
        )
        if wanted(row["district_id"])
    ]
    due_rows = [
        row
        for row in wh.query_dicts(
            "select district_id, effective_reset_date, date_source, issues "
            f"from {built_relation('due_districts')} where school_year = %s order by district_id",
            [year],
        )
        if wanted(row["district_id"])
    ]
    scope: dict[str, dict[str, int]] = {}
    for district_id, table, n in wh.query(
        f"select district_id, table_name, row_count from {built_relation('reset_scope')} "
        "where school_year = %s and action = 'delete'",
        [year],
    ):
        scope.setdefault(district_id, {})[table] = int(n)
    idle = {  # the demo's educators: a vendor's project has no such model
        district_id: int(n)
        for district_id, n in (
            wh.query(
                f"select district_id, count(*) from {built_relation('inactive_educators')} "
                "where school_year = %s group by district_id",
                [year],
            )
            if wh.relation_exists(*built_parts("inactive_educators"))
            else []
        )
    }

    due = []
    for row in due_rows:
        counts = scope.get(row["district_id"], {})
        rows = {table: counts.get(table, 0) for table in declared.deleted}
        due.append(
            {
                "district_id": row["district_id"],
                "effective_reset_date": _iso(row["effective_reset_date"]),
                "date_source": row["date_source"],
                "issues": _issues(row["issues"]),
                "rows": rows,
                "rows_total": sum(rows.values()),
            }
        )
    blocked = [
        {
            "district_id": row["district_id"],
            "effective_reset_date": _iso(row["effective_reset_date"]),
            "issues": _issues(row["issues"]),
        }
        for row in schedule
        if row["status"] == "blocked"
    ]
    request_issues = [
        {
            "district_id": row["district_id"],
            "effective_reset_date": _iso(row["effective_reset_date"]),
            "date_source": row["date_source"],
            "issues": _issues(row["issues"]),
        }
        for row in schedule
        if any(name in REQUEST_ISSUES for name in _issues(row["issues"]))
    ]
    due_ids = {d["district_id"] for d in due}
    closed = [c for c in closed_districts(wh, year, as_of) if wanted(c["district_id"])]
    table_totals = {table: sum(d["rows"][table] for d in due) for table in declared.deleted}
    return {
        "as_of": as_of.isoformat(),
        "school_year": year,
        "warehouse": None,
        "due": due,
        "blocked": blocked,
        "closed": closed,
        "request_issues": request_issues,
        "inactive_educators": {d: n for d, n in sorted(idle.items()) if d in due_ids},
        "not_due": _not_due(
            wh, year, as_of, districts or [], due_ids | {c["district_id"] for c in closed}, schedule
        ),
        # restored districts wait for an operator to name them (named ones are due above)
        "restored": [] if named else _restored(wh, year),
        # rows of each deleted table no district owns: kept by every reset
        "unowned": unowned_rows(wh, declared),
        # where syncs, requests and rostering are kept: a declared table, or eoy-reset's own
        "roles": declared.roles_said(),
        "totals": {  # the shape of every command's totals (jobs/output.py)
            "districts": len(due),
            "rows": sum(table_totals.values()),
            "rows_by_table": table_totals,
            "blocked": len(blocked),
            "closed": len(closed),
        },
    }


def closed_districts(wh: Warehouse, year: int, as_of: date) -> list[dict[str, Any]]:
    """Districts that would be due as of the day but whose school year the new year's
    rostering closed (mart closed_school_years), with the reason; those already reset for
    the year are not listed (nothing is left to do for them)."""
    rows = wh.query_dicts(
        "select c.district_id, s.effective_reset_date, c.rostering_completed_at "
        f"from {built_relation('closed_school_years')} c join {built_relation('reset_schedule')} s "
        "on s.district_id = c.district_id and s.school_year = c.school_year "
        "where c.school_year = %s and s.status = 'scheduled' and s.effective_reset_date <= %s "
        "and not exists (select 1 from eoy_runner.reset_runs r where r.district_id = "
        "c.district_id and r.school_year = c.school_year and r.status = 'completed') "
        "order by c.district_id",
        [year, as_of],
    )
    return [
        {
            "district_id": row["district_id"],
            "effective_reset_date": _iso(row["effective_reset_date"]),
            "rostering_completed_at": _iso(row["rostering_completed_at"]),
            "reason": closed_reason(year, row["rostering_completed_at"]),
        }
        for row in rows
    ]


def _restored(wh: Warehouse, year: int) -> list[dict[str, Any]]:
    return [
        {"district_id": r["district_id"], "advice": r["advice"]} for r in restored_runs(wh, year)
    ]


def _not_due(
    wh: Warehouse,
    year: int,
    as_of: date,
    named: list[str],
    due_ids: set[str],
    schedule: list[dict[str, Any]],
) -> list[dict[str, str]]:
    """Why each named district that is not due is not due."""
    if not named:
        return []
    by_id = {row["district_id"]: row for row in schedule}
    runs = {
        row[0]: row[1]
        for row in wh.query(
            "select district_id, status from eoy_runner.reset_runs where school_year = %s",
            [year],
        )
    }
    out = []
    for district_id in sorted(set(named) - due_ids):
        row = by_id.get(district_id)
        if row is None:
            reason = "no such district"
        elif row["status"] == "blocked":
            reason = "blocked: " + (row["issues"] or "conflicts_with_rostering")
        elif runs.get(district_id) == "completed":
            reason = f"already reset for school year {year}"
        elif row["effective_reset_date"] > as_of:
            reason = f"not due until {_iso(row['effective_reset_date'])}"
        else:
            reason = "not due"
        out.append({"district_id": district_id, "reason": reason})
    return out


# ---------------------------------------------------------------------------------------
# the approved plan file
# ---------------------------------------------------------------------------------------
def plan_hash(plan: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of the plan, without its own hash."""
    body = {k: v for k, v in plan.items() if k != HASH_KEY}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def write_plan(plan: dict[str, Any], path: Path | str) -> Path:
    """Write the plan JSON with its hash; returns the path."""
    path = Path(path)
    doc = {k: v for k, v in plan.items() if k != HASH_KEY}
    doc[HASH_KEY] = plan_hash(doc)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def load_plan(path: Path | str) -> dict[str, Any]:
    """Read a plan written by write_plan and check it was not edited since."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(
            f"plan file {path} does not exist: write one with `eoy-reset plan --out`"
        ) from None
    except OSError as exc:
        raise PlanError(f"cannot read plan file {path}: {exc.strerror or exc}") from None
    try:
        plan = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(
            f"plan file {path} is not valid JSON (line {exc.lineno}): "
            "write a new one with `eoy-reset plan --out`"
        ) from None
    if not isinstance(plan, dict) or HASH_KEY not in plan:
        raise PlanError(f"plan file {path} has no {HASH_KEY}: write it with `eoy-reset plan --out`")
    if plan[HASH_KEY] != plan_hash(plan):
        raise PlanError(
            f"plan file {path} was changed after it was written (hash mismatch): "
            "make and approve a new plan with `eoy-reset plan --out`"
        )
    return plan
