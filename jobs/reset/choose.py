"""Which districts a run takes: the due ones (or the named ones that can run, and why the
others cannot), their live rows per table, what an approved plan covers, and the operator's
typed confirmation."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from jobs.config import plan_tolerance_set
from jobs.errors import EoyError
from jobs.plan.planner import DEFAULT_TOLERANCE
from jobs.scope import current_scope
from jobs.scope.built import built_relation
from jobs.terminal import typed_confirmation
from jobs.warehouse.connection import Warehouse, quote_ident
from jobs.warehouse.ledger import get_run
from jobs.warehouse.rostering import closed_reason, rostered


class RunError(EoyError):
    """The run cannot start; nothing was changed."""


def plan_tolerance(plan: dict[str, Any]) -> float:
    """How far a planned district's rows may move: what the approved plan says (the plan's
    author set it, its approver approved it), never the runner's environment."""
    if plan_tolerance_set():
        raise RunError(
            "EOY_PLAN_TOLERANCE is set, but the person running a plan may not widen it: the "
            "tolerance is the plan's own (`eoy-reset plan --tolerance`, then approve); unset it"
        )
    value = plan.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise RunError(f"the plan's tolerance {value!r} is not a fraction from 0 to 1")
    return float(value)


def candidates(
    wh: Warehouse, school_year: int, as_of: date, named: list[str] | None
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Due districts (or the named ones that can run) and, for named ones, why not."""
    due = wh.query_dicts(
        "select district_id, effective_reset_date, date_source, issues "
        f"from {built_relation('due_districts')} "
        "where school_year = %s order by district_id",
        [school_year],
    )
    if not named:
        return due, []
    by_id = {d["district_id"]: d for d in due}
    chosen: list[dict[str, Any]] = []
    not_due: list[dict[str, str]] = []
    known_districts(wh, named)
    closed = rostered(wh, named, school_year + 1, current_scope().role_relation("rostering"))
    for district in dict.fromkeys(named):
        if district in by_id:
            chosen.append(by_id[district])
            continue
        rows = wh.query_dicts(
            "select effective_reset_date, date_source, status, issues "
            f"from {built_relation('reset_schedule')} "
            "where district_id = %s and school_year = %s",
            [district, school_year],
        )
        run = get_run(wh, district, school_year)
        if not rows:
            reason = f"no reset date for school year {school_year}"
        elif rows[0]["status"] != "scheduled":
            reason = f"blocked ({rows[0]['issues'] or 'conflicts_with_rostering'}): a CSM must act"
        elif rows[0]["effective_reset_date"] > as_of:
            reason = f"not due until {rows[0]['effective_reset_date']}"
        elif run is not None and run["status"] == "completed":
            reason = f"already reset (completed {run['finished_at']:%Y-%m-%d %H:%M} UTC)"
        elif district in closed:
            reason = closed_reason(school_year, closed[district])
        elif run is not None and run["status"] == "restored":
            # restored districts wait until an operator names them: this is that operator
            chosen.append({"district_id": district, **rows[0]})
            continue
        else:
            reason = "not due"
        not_due.append({"district_id": district, "reason": reason})
    return chosen, not_due


def shown(district_id: str, limit: int = 60) -> str:
    """A district id for a one-line message: quoted, and cut when very long."""
    text = repr(district_id[:limit])
    return text + "…" if len(district_id) > limit else text


def known_districts(wh: Warehouse, districts: list[str]) -> None:
    table = current_scope().districts
    key = table.key[0]
    column = quote_ident(key) if table.kind(key) == "text" else f"cast({quote_ident(key)} as text)"
    marks = ", ".join(["%s"] * len(districts))
    found = {
        str(r[0])
        for r in wh.query(
            f"select {column} from {table.relation} where {column} in ({marks})", districts
        )
    }
    for district in districts:
        if district not in found:
            raise RunError(f"unknown district {shown(district)}: it is not in {table.qualified}")


def annotate(wh: Warehouse, school_year: int, candidates: list[dict[str, Any]]) -> None:
    """Each candidate's live rows per table (dbt's reset_scope counted every due district in
    one grouped pass per table), its run's status, and rows deleted so far in this cycle."""
    live: dict[str, dict[str, int]] = {}
    for district, table, n in wh.query(
        "select district_id, table_name, row_count "
        f"from {built_relation('reset_scope')} "
        "where school_year = %s and action = 'delete'",
        [school_year],
    ):
        live.setdefault(district, {})[table] = int(n)
    runs = {
        r["district_id"]: r
        for r in wh.query_dicts(
            "select district_id, status, rows_deleted from eoy_runner.reset_runs "
            "where school_year = %s",
            [school_year],
        )
    }
    for cand in candidates:
        counts = live.get(cand["district_id"], {})
        cand["rows"] = {t: counts.get(t, 0) for t in current_scope().deleted}
        run = runs.get(cand["district_id"])
        cand["resume"] = run["status"] if run else None
        # a restored run starts a new cycle: nothing of it is deleted yet
        done = run is not None and run["status"] != "restored"
        cand["rows_done"] = int(run["rows_deleted"] or 0) if done and run else 0


def plan_guard(
    plan_path: Path, school_year: int, candidates: list[dict[str, Any]], plan: dict[str, Any]
) -> dict[str, str]:
    """Districts the approved plan does not cover, with why."""
    plan_year = plan.get("school_year")
    if plan_year is not None and int(plan_year) != school_year:
        raise RunError(
            f"the plan {plan_path} is for school year {plan_year}, not {school_year}: "
            "make a new plan with `eoy-reset plan --out`"
        )
    tolerance = plan_tolerance(plan)
    approved = {d["district_id"]: d for d in plan.get("due", [])}
    refused: dict[str, str] = {}
    for cand in candidates:
        district = cand["district_id"]
        entry = approved.get(district)
        if entry is None:
            refused[district] = "not in the approved plan"
            continue
        planned_rows = entry.get("rows") or {}
        planned = sum(int(planned_rows.get(t, 0)) for t in current_scope().deleted)
        if not planned_rows:
            planned = int(entry.get("rows_total", 0))
        now = sum(cand["rows"].values()) + cand["rows_done"]
        moved = abs(now - planned) / max(planned, 1)
        if moved > tolerance:
            refused[district] = (
                f"rows moved {moved:.0%} since the plan ({planned:,} -> {now:,}), "
                f"more than {tolerance:.0%}: make and approve a new plan"
            )
    return refused


def confirm(console: Console, candidates: list[dict[str, Any]]) -> None:
    n = len(candidates)
    rows = sum(sum(c["rows"].values()) for c in candidates)
    console.print(
        f"[bold]About to delete the student data of {n} district{'s' if n != 1 else ''} "
        f"({rows:,} rows), after snapshotting it.[/]"
    )
    if not typed_confirmation("confirm", str(n)):
        raise RunError("confirmation did not match: nothing was deleted")
