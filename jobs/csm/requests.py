"""`eoy-reset request-date`: a CSM records a district's reset-date request, checked at once.

The rules are dbt's (model reset_date_windows, on int_reset_dates_resolved like
reset_schedule): the request is written inside a transaction, the model's compiled SQL runs
on it in that same transaction, and a request the rules would not honour is rolled back
with one line saying why and which dates they would accept (unless `anyway`). Every change
is kept in eoy_runner.reset_request_changes: who, when, each date before and after, and
what the rules made of it.

dbt's compiled SQL of the windows is kept beside the warehouse's dbt target (`WINDOWS_KEPT`),
with what it was compiled from: the project's files, dbt's version and the warehouse. A
request on a warehouse whose policy table still holds the seed file's rows then needs no
build before its check (the SQL reads the source tables and the policy table, nothing else
dbt builds); only the rebuild of reset_schedule after a recorded change.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.plan.dbt import (
    PolicyError,
    build_models,
    dbt_work_dir,
    policy_rows,
    policy_years,
    project_key,
)
from jobs.plan.planner import REQUEST_ISSUES
from jobs.scope import current_scope
from jobs.scope.built import built_relation
from jobs.scope.sql import district_known_sql
from jobs.warehouse import Warehouse, connect
from jobs.warehouse.ledger import utcnow

# The seed and the staging views under the windows, plus reset_schedule so the plan, the
# audit views and the report read the new date at once.
REQUEST_SELECTION = ["reset_policy", "+reset_date_windows", "+reset_schedule"]
WINDOWS_MODEL = "reset_date_windows"
FIELDS = (
    "requested_reset_date",
    "school_year_end_date",
    "summer_session_end_date",
    "rostering_start_date",
)
# The compiled windows SQL of the last build, in the warehouse's dbt folder.
WINDOWS_KEPT = "request-windows.sql"
KEEP: Any = object()  # an option not given: the recorded value stays


class RequestError(EoyError):
    """A request that cannot be recorded: unknown district or school year, bad dates."""


class RequestRefused(EoyError):
    """The rules would not honour the request as asked; nothing was recorded."""


def request_date(
    settings: Settings,
    district_id: str,
    requested: date,
    *,
    school_year: int | None = None,
    school_year_end: date | None = KEEP,
    summer_session_end: date | None = KEEP,
    rostering_start: date | None = KEEP,
    by: str,
    anyway: bool = False,
) -> dict[str, Any]:
    """Record (or update) the district's request row and return the reset date it now gets.

    school_year_end, summer_session_end, rostering_start: a date, None to clear it, or KEEP
    (the default) to leave what is recorded. Raises RequestRefused, with nothing changed,
    when the rules would not honour the request and `anyway` is false.
    """
    if not by.strip() or len(by) > 200 or not by.isprintable():
        raise RequestError("--by must be a person's name on one line (1 to 200 characters)")
    year = school_year if school_year is not None else requested.year
    if year not in policy_years():
        raise PolicyError(
            f"no reset policy for school year {year}: give --school-year, the calendar year "
            "the school year ends in, or add a row to seeds/reset_policy.csv"
        )
    key = project_key(settings)  # before any build: a file changed meanwhile is seen next time
    with connect(settings) as wh:
        _require_district(wh, district_id)
        run_status = wh.scalar(
            "select status from eoy_runner.reset_runs where district_id = %s and school_year = %s",
            [district_id, year],
        )
        sql = kept_windows_sql(settings, wh, key)
    if sql is None:
        sql = _keep_windows_sql(settings, key, build_request_models(settings))
    given = {
        "requested_reset_date": requested,
        "school_year_end_date": school_year_end,
        "summer_session_end_date": summer_session_end,
        "rostering_start_date": rostering_start,
    }
    with connect(settings) as wh, wh.transaction():
        old = _request_row(wh, district_id, year)
        new = {
            field: (old or {}).get(field) if value is KEEP else value
            for field, value in given.items()
        }
        changed = old is None or any(old[f] != new[f] for f in FIELDS)
        if changed:
            _write_request(wh, district_id, year, new, exists=old is not None)
        outcome = _outcome(wh, sql, district_id, year)
        problem = refusal(outcome)
        if problem and not anyway:
            raise RequestRefused(  # the transaction rolls back: nothing is recorded
                f"request refused for district {district_id!r}, school year {year}: {problem}; "
                f"{accepted_dates(outcome)}; nothing was recorded (--anyway records it as asked)"
            )
        if changed:
            _record_change(wh, district_id, year, by, anyway, old, new, outcome)
    if changed:  # the marts the plan and the audit read, rebuilt on the recorded row
        refresh_schedule(settings, key)
    return {
        "district_id": district_id,
        "school_year": year,
        "changed": changed,
        "recorded_by": by if changed else None,
        "anyway": bool(problem) and anyway,
        "request": new,
        "previous": old,
        "effective_reset_date": outcome["effective_reset_date"],
        "date_source": outcome["date_source"],
        "status": outcome["status"],
        "issues": _issues(outcome["issues"]),
        "accepted_from": outcome["accepted_from"],
        "accepted_until": outcome["accepted_until"],
        "refused_reason": problem,
        # the ledger's run of the district and year: a completed one is not reset again
        "run_status": run_status,
        "warehouse": settings.describe(),
    }


def build_request_models(settings: Settings) -> Any:
    """Build the windows model and what it reads (as `plan` builds its marts); dbt's result."""
    from jobs.output import phase

    with phase("building the reset-date models…"):
        return build_models(settings, REQUEST_SELECTION)


def refresh_schedule(settings: Settings, key: str) -> None:
    """Rebuild the windows and reset_schedule, and keep the windows' SQL for the next
    request under `key`, the project's digest taken before the build (the policy table was
    seeded by the build before the check, or found equal to the seed file)."""
    from jobs.output import phase

    with phase("rebuilding reset_schedule…"):
        result = build_models(settings, [WINDOWS_MODEL, "reset_schedule"])
    _keep_windows_sql(settings, key, result)


def _kept_path(settings: Settings) -> Path:
    return dbt_work_dir(settings) / WINDOWS_KEPT


def _keep_windows_sql(settings: Settings, key: str, result: Any) -> str:
    """The windows' SQL of a build, written down under the project's digest; returned."""
    sql = _windows_sql(result)
    path = _kept_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(f"-- {key}\n{sql}", encoding="utf-8")
    os.replace(temporary, path)  # another request on this warehouse reads it whole or not
    return sql


def kept_windows_sql(settings: Settings, wh: Warehouse, key: str) -> str | None:
    """The windows' SQL dbt compiled last for this warehouse, if it was kept under `key` (the
    project's digest now) and the warehouse's policy table holds the seed file's rows; else
    None (a build must come first)."""
    try:
        head, _, sql = _kept_path(settings).read_text(encoding="utf-8").partition("\n")
    except (OSError, UnicodeDecodeError):
        return None
    if head != f"-- {key}" or not sql.strip():
        return None
    return sql if _policy_is_seeded(wh) else None


def _policy_is_seeded(wh: Warehouse) -> bool:
    """Whether eoy.reset_policy holds exactly the rows of seeds/reset_policy.csv."""
    if not wh.relation_exists("eoy", "reset_policy"):
        return False
    try:
        rows = wh.query(
            "select school_year, default_reset_date, earliest_reset_date "
            f"from {built_relation('reset_policy')}"
        )
    except Exception:  # e.g. a role that may not read it: the build comes first, as always
        return False
    return sorted((int(y), str(d), str(e)) for y, d, e in rows) == policy_rows()


def _windows_sql(result: Any) -> str:
    """The SQL dbt ran to build reset_date_windows (its ephemeral parents inlined)."""
    for node_result in getattr(result.result, "results", None) or []:
        node = getattr(node_result, "node", None)
        if node is not None and node.name == WINDOWS_MODEL and node.compiled_code:
            return str(node.compiled_code)
    raise RequestError(f"dbt built no {WINDOWS_MODEL}: run `dbt build` in the repo root to see why")


def _require_district(wh: Warehouse, district_id: str) -> None:
    scope = current_scope()
    if not wh.scalar(district_known_sql(scope), [district_id]):
        raise RequestError(
            f"no district {district_id!r} in {scope.districts.qualified}: check the id "
            "(`eoy-reset plan` and the report list them)"
        )


def _requests() -> str:
    """The table of the scope's requests role (the demo's, or eoy-reset's own)."""
    return current_scope().role_relation("requests")


def _request_row(wh: Warehouse, district_id: str, year: int) -> dict[str, Any] | None:
    rows = wh.query_dicts(
        f"select {', '.join(FIELDS)} from {_requests()} "
        "where district_id = %s and school_year = %s",
        [district_id, year],
    )
    return rows[0] if rows else None


def _write_request(
    wh: Warehouse, district_id: str, year: int, new: dict[str, Any], exists: bool
) -> None:
    values = [new[f] for f in FIELDS]
    if exists:
        wh.execute(
            f"update {_requests()} set {', '.join(f'{f} = %s' for f in FIELDS)} "
            "where district_id = %s and school_year = %s",
            [*values, district_id, year],
        )
    else:
        wh.execute(
            f"insert into {_requests()} (district_id, school_year, "
            f"{', '.join(FIELDS)}) values (%s, %s, %s, %s, %s, %s)",
            [district_id, year, *values],
        )


def _outcome(wh: Warehouse, sql: str, district_id: str, year: int) -> dict[str, Any]:
    """reset_date_windows' row of the district, computed on this transaction's rows."""
    body = sql.strip().rstrip(";").replace("%", "%%")  # the model's own % are literal
    rows = wh.query_dicts(
        f"select * from (\n{body}\n) as windows where district_id = %s and school_year = %s",
        [district_id, year],
    )
    if not rows:
        raise RequestError(
            f"the reset-date rules gave no row for district {district_id!r}, school year {year}"
        )
    return rows[0]


def _record_change(
    wh: Warehouse,
    district_id: str,
    year: int,
    by: str,
    anyway: bool,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    outcome: dict[str, Any],
) -> None:
    before = [(old or {}).get(f) for f in FIELDS]
    pairs = [v for pair in zip(before, [new[f] for f in FIELDS], strict=True) for v in pair]
    wh.execute(
        "insert into eoy_runner.reset_request_changes (district_id, school_year, changed_by, "
        "changed_at, anyway, "
        + ", ".join(f"old_{f}, new_{f}" for f in FIELDS)
        + ", effective_reset_date, date_source, schedule_status, issues) values ("
        + ", ".join(["%s"] * (5 + 2 * len(FIELDS) + 4))
        + ")",
        [
            district_id,
            year,
            by,
            utcnow(),
            anyway,
            *pairs,
            outcome["effective_reset_date"],
            outcome["date_source"],
            outcome["status"],
            outcome["issues"] or "",
        ],
    )


def _issues(text: str | None) -> list[str]:
    return [name for name in (text or "").split(",") if name]


def _day(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def refusal(outcome: dict[str, Any]) -> str | None:
    """Why the rules do not honour the request as asked (None: they do), in the rules' words."""
    issues = _issues(outcome["issues"])
    asked = _day(outcome["requested_reset_date"])
    if "request_too_early" in issues:
        return (
            f"{asked} is before the policy's earliest reset date "
            f"{_day(outcome['earliest_reset_date'])}"
        )
    if "request_not_before_rostering" in issues:
        return (
            f"{asked} is not before rostering for the new school year starts "
            f"({_day(outcome['rostering_start_date'])})"
        )
    if "request_during_session" in issues:
        return (
            f"{asked} falls during the school year or summer session (it ends "
            f"{_day(outcome['session_end_date'])}), so the reset would move to "
            f"{_day(outcome['effective_reset_date'])}"
        )
    if outcome["status"] == "blocked" or any(i in REQUEST_ISSUES for i in issues):
        return (
            f"the reset date {_day(outcome['effective_reset_date'])} is not before rostering "
            f"starts ({_day(outcome['rostering_start_date'])})"
        )
    return None


def accepted_dates(outcome: dict[str, Any]) -> str:
    """The dates the rules would honour as asked, as the model computed them."""
    first, last = outcome["accepted_from"], outcome["accepted_until"]
    if last is None:
        return f"dates accepted: {_day(first)} or later"
    if last >= first:
        return f"dates accepted: {_day(first)} to {_day(last)}"
    return (
        f"no date is accepted: the session ends {_day(outcome['session_end_date'])} and "
        f"rostering starts {_day(outcome['rostering_start_date'])}; record a later rostering "
        "start (--rostering-start) first"
    )
