"""Which day and school year the audit views are built for, and whether this role may build
them: `report` and `query` as the owner, the runner or the CSM build them for the day asked;
as eoy_analyst (PostgreSQL, `init --roles`), who may only read them, they read them as the
last build left them (the view eoy_audit.audit_as_of says for which day)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.plan.dbt import postgres_build
from jobs.warehouse.connection import connect

SCHEMA = "eoy_audit"


class BuiltError(EoyError):
    """The audit views are not for the day asked, and this role may not build them."""


@dataclass(frozen=True)
class ReportDay:
    """The day and school year a report is for, and why that day when none was asked."""

    as_of: date
    school_year: int
    why: str = ""


def report_day(settings: Settings, as_of: date | None, school_year: int | None) -> ReportDay:
    """What `report` reports on. Not asked: the latest school year in the ledger and its last
    reset date (a past year's timeline reads as it was), else today; for a role that may not
    build the audit views, the day and year they were built for."""
    if not builds_here(settings):
        built = as_built(settings, as_of, school_year)
        return ReportDay(built.as_of, built.school_year, "" if as_of else built.why)
    with connect(settings) as wh:
        if school_year is None:
            latest = wh.scalar("select max(school_year) from eoy_runner.reset_runs")
            school_year = int(latest) if latest is not None else None
        last = wh.scalar(
            "select max(effective_reset_date) from eoy_runner.reset_runs where school_year = %s",
            [school_year],
        )
    if as_of is not None:
        return ReportDay(as_of, school_year if school_year is not None else as_of.year)
    if isinstance(last, date) and school_year is not None:
        return ReportDay(last, school_year, "its last reset date in the ledger")
    today = date.today()
    return ReportDay(today, school_year if school_year is not None else today.year)


def as_built(settings: Settings, as_of: date | None, school_year: int | None) -> ReportDay:
    """The day and school year the audit views were built for, when this role may only read
    them (eoy_analyst); another day or year asked is refused, in one line."""
    with connect(settings) as wh:
        user = wh.scalar("select current_user")
        try:
            rows = wh.query(f"select as_of_date, school_year from {SCHEMA}.audit_as_of")
        except EoyError:
            rows = []
    if not rows:
        raise BuiltError(
            f"the audit views are not built yet, and role {user} may not build them: an "
            "operator's `eoy-reset plan`, `run` or `report` builds them"
        )
    built = ReportDay(rows[0][0], int(rows[0][1]), "the day the audit views were built for")
    asked = (as_of or built.as_of, school_year or built.school_year)
    if asked != (built.as_of, built.school_year):
        raise BuiltError(
            f"the audit views are as of {built.as_of}, school year {built.school_year}, and "
            f"role {user} may not build them for another day: ask for that day (--as-of "
            f"{built.as_of}, school year {built.school_year}), or an operator's `eoy-reset "
            "report --as-of DAY` builds them for another"
        )
    return built


def builds_here(settings: Settings) -> bool:
    """Whether the connected role may build the audit views (every role may on DuckDB)."""
    return settings.target != "postgres" or postgres_build(settings).may_build
