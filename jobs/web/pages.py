"""What the console's pages show, read from the dbt marts, the app tables and the ledger.

Each function takes an open warehouse and returns dataclasses; the HTTP side (app.py) opens
the warehouse for the request, calls them, closes it, and renders. Organizations, dates and
counts; the only people named are educators and the console's own users.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from jobs.csm.notices import CONTACTS
from jobs.plan.dbt import policy_years
from jobs.plan.stored import stored_plans
from jobs.scope import current_scope
from jobs.scope.built import built_relation
from jobs.scope.sql import district_count_sql, district_known_sql, districts_select
from jobs.snapshot.certificate import DISPOSITION, KINDS, TITLES, Certificate, latest_issued
from jobs.warehouse.connection import Warehouse
from jobs.warehouse.ledger import cycle_deletes

# The marts the pages read; `serve` builds them when it starts.
SCHEDULE, WINDOWS, INACTIVE = "reset_schedule", "reset_date_windows", "inactive_educators"
LIST_LIMIT = 500
# The school year's reset is over by the autumn: from September on, the next one is current.
NEW_SCHOOL_YEAR_MONTH = 9


def _issues(text: str | None) -> list[str]:
    return [name for name in (text or "").split(",") if name]


@dataclass(frozen=True)
class DistrictRow:
    district_id: str
    name: str
    effective_reset_date: date | None
    date_source: str | None
    status: str | None
    issues: list[str]
    run_status: str | None
    reset_at: datetime | None
    last_notice_at: datetime | None


@dataclass(frozen=True)
class Filters:
    """The CSM's filters of the district list; empty means any."""

    q: str = ""
    status: str = ""
    source: str = ""
    run: str = ""
    issues: bool = False

    def keeps(self, row: DistrictRow) -> bool:
        text = self.q.strip().casefold()
        return (
            (not text or text in row.district_id.casefold() or text in row.name.casefold())
            and (not self.status or row.status == self.status)
            and (not self.source or row.date_source == self.source)
            and (not self.run or (row.run_status or "none") == self.run)
            and (not self.issues or bool(row.issues))
        )


@dataclass(frozen=True)
class Schedule:
    effective_reset_date: date
    date_source: str
    status: str
    issues: list[str]
    default_reset_date: date | None
    earliest_reset_date: date | None
    requested_reset_date: date | None
    session_end_date: date | None
    rostering_start_date: date | None
    accepted_from: date | None
    accepted_until: date | None

    @property
    def window_open(self) -> bool:
        """Whether any date would be honoured as asked."""
        return self.accepted_from is not None and (
            self.accepted_until is None or self.accepted_until >= self.accepted_from
        )


@dataclass(frozen=True)
class TableRows:
    table: str
    action: str  # delete or retain
    rows: int  # in the warehouse now
    deleted: int  # deleted by the district's reset of the school year (the ledger's count)


@dataclass(frozen=True)
class Educator:
    educator_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    role: str | None
    school: str | None
    last_login_at: datetime | None
    days_inactive: int | None
    reason: str


@dataclass(frozen=True)
class Notice:
    effective_reset_date: date
    schedule_status: str
    recipients: int
    sent_at: datetime


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate the district was issued: what the page says of it; its files are
    served from the ledger's copy (`certificate_of`)."""

    kind: str
    title: str
    issued_at: datetime
    sha256: str
    key_fingerprint: str


@dataclass(frozen=True)
class Change:
    district_id: str
    changed_by: str
    changed_at: datetime
    anyway: bool
    old_requested_reset_date: date | None
    new_requested_reset_date: date | None
    new_summer_session_end_date: date | None
    new_rostering_start_date: date | None
    effective_reset_date: date | None
    date_source: str | None
    schedule_status: str | None
    issues: list[str]


@dataclass(frozen=True)
class Run:
    district_id: str
    name: str | None
    school_year: int
    status: str
    effective_reset_date: date | None
    started_at: datetime | None
    finished_at: datetime | None
    rows_deleted: int
    error: str | None
    step: str | None = None  # the last step the ledger recorded
    step_status: str | None = None


@dataclass(frozen=True)
class DistrictPage:
    district_id: str
    name: str
    state: str | None
    school_year: int
    built: bool  # whether the reset-date marts exist
    schedule: Schedule | None
    run: Run | None
    tables: list[TableRows]
    inactive: list[Educator]
    notices: list[Notice]
    changes: list[Change]
    certificates: list[IssuedCertificate] = field(default_factory=list)

    @property
    def rows_to_delete(self) -> int:
        return sum(t.rows for t in self.tables if t.action == "delete")

    @property
    def rows_deleted(self) -> int:
        return sum(t.deleted for t in self.tables)


@dataclass(frozen=True)
class PlanDistrict:
    district_id: str
    effective_reset_date: str
    rows: dict[str, int]
    rows_total: int


@dataclass(frozen=True)
class PlanView:
    plan_sha256: str
    made_at: datetime
    made_by: str
    school_year: int
    as_of: date
    districts: list[PlanDistrict]
    blocked: int
    approvers: list[tuple[str, datetime]] = field(default_factory=list)

    @property
    def rows_total(self) -> int:
        return sum(d.rows_total for d in self.districts)

    def approved_by(self, name: str) -> bool:
        return any(who == name for who, _ in self.approvers)


# ---------------------------------------------------------------------------------------
# school years
# ---------------------------------------------------------------------------------------
def school_years(wh: Warehouse) -> list[int]:
    """The policy's school years and any the ledger has runs of, newest first."""
    ran = {int(y) for (y,) in wh.query("select distinct school_year from eoy_runner.reset_runs")}
    return sorted(policy_years() | ran, reverse=True)


def _requests() -> str:
    """The table of the scope's requests role."""
    return current_scope().role_relation("requests")


def default_school_year(wh: Warehouse, today: date) -> int:
    """The school year the pages show unless asked: the latest one anybody acted on (a
    request, a run, a plan), else the one under way by the calendar."""
    latest = wh.scalar(
        f"select max(school_year) from (select school_year from {_requests()} "
        "union all select school_year from eoy_runner.reset_runs "
        "union all select school_year from eoy_runner.plans) as years"
    )
    if latest is not None:
        return int(latest)
    return today.year + (1 if today.month >= NEW_SCHOOL_YEAR_MONTH else 0)


def built(wh: Warehouse, *models: str) -> bool:
    """Whether dbt built these marts (default: those the district pages read)."""
    models = models or (SCHEDULE, WINDOWS)
    return all(wh.relation_exists("eoy", m) for m in models)


# ---------------------------------------------------------------------------------------
# districts
# ---------------------------------------------------------------------------------------
def district_exists(wh: Warehouse, district_id: str) -> bool:
    return bool(wh.scalar(district_known_sql(current_scope()), [district_id]))


def district_list(wh: Warehouse, year: int, filters: Filters) -> tuple[list[DistrictRow], int]:
    """Every district with its date, source, status and issues, its reset and its last
    notice for the school year; the rows the filters keep (up to LIST_LIMIT) and their count."""
    columns, join, params = "null, null, null, null", "", []
    if built(wh, SCHEDULE):
        columns = "s.effective_reset_date, s.date_source, s.status, s.issues"
        join = (
            f"left join {built_relation(SCHEDULE)} as s on s.district_id = d.district_id "
            "and s.school_year = %s "
        )
        params = [year]
    rows = wh.query(
        f"select d.district_id, d.name, {columns}, r.status, "
        "case when r.status = 'completed' then r.finished_at end, n.sent "
        f"from ({districts_select(current_scope())}) as d {join}"
        "left join eoy_runner.reset_runs as r on r.district_id = d.district_id "
        "and r.school_year = %s "
        "left join (select district_id, max(sent_at) as sent from eoy_runner.notices_sent "
        "where school_year = %s group by district_id) as n on n.district_id = d.district_id "
        "order by d.district_id",
        [*params, year, year],
    )
    kept = [
        row
        for row in (
            DistrictRow(str(r[0]), str(r[1] or ""), r[2], r[3], r[4], _issues(r[5]), *r[6:])
            for r in rows
        )
        if filters.keeps(row)
    ]
    return kept[:LIST_LIMIT], len(kept)


def district_page(wh: Warehouse, district_id: str, year: int) -> DistrictPage | None:
    """Everything the district's page shows for the school year; None: no such district."""
    found = wh.query(
        f"select name, state from ({districts_select(current_scope())}) as d "
        "where district_id = %s",
        [district_id],
    )
    if not found:
        return None
    dates = built(wh, SCHEDULE, WINDOWS)
    runs = runs_of(wh, district_id, year)
    return DistrictPage(
        district_id=district_id,
        name=str(found[0][0] or ""),
        state=found[0][1],
        school_year=year,
        built=dates,
        schedule=_schedule(wh, district_id, year) if dates else None,
        run=runs[0] if runs else None,
        tables=_tables(wh, district_id, year),
        inactive=(
            _inactive(wh, district_id, year) if built(wh, INACTIVE) and built(wh, CONTACTS) else []
        ),
        notices=_notices(wh, district_id, year),
        changes=changes(wh, year, district_id),
        certificates=certificates_of(wh, district_id, year),
    )


def _schedule(wh: Warehouse, district_id: str, year: int) -> Schedule | None:
    rows = wh.query(
        "select s.effective_reset_date, s.date_source, s.status, s.issues, "
        "w.default_reset_date, w.earliest_reset_date, w.requested_reset_date, "
        "w.session_end_date, w.rostering_start_date, w.accepted_from, w.accepted_until "
        f"from {built_relation(SCHEDULE)} as s left join {built_relation(WINDOWS)} as w "
        "on w.district_id = s.district_id and w.school_year = s.school_year "
        "where s.district_id = %s and s.school_year = %s",
        [district_id, year],
    )
    if not rows:
        return None
    r = rows[0]
    return Schedule(r[0], r[1], r[2], _issues(r[3]), *r[4:])


def _tables(wh: Warehouse, district_id: str, year: int) -> list[TableRows]:
    """Rows per table in the warehouse now, and what the reset deleted (the ledger's count
    of the deletes of its current cycle)."""
    scope = current_scope()
    tables = [(t, "delete") for t in scope.deleted] + [(t, "retain") for t in scope.retained]

    def count(table: str) -> str:
        return district_count_sql(scope, scope.tables[table], district_id)

    counted = dict(
        wh.query(
            " union all ".join(
                f"select '{t}' as table_name, ({count(t)}) as n"
                for t, _ in tables
                if scope.tables[t].deleted or scope.tables[t].district_column is not None
            ),
        )
    )
    deleted: dict[str, int] = {}
    for detail in cycle_deletes(wh, district_id, year):
        for table, n in (detail.get("rows") or {}).items():
            deleted[table] = deleted.get(table, 0) + int(n)
    return [TableRows(t, action, int(counted.get(t, 0)), deleted.get(t, 0)) for t, action in tables]


def _inactive(wh: Warehouse, district_id: str, year: int) -> list[Educator]:
    rows = wh.query(
        "select i.educator_id, e.first_name, e.last_name, e.email, i.role, e.school_name, "
        "i.last_login_at, i.days_inactive, i.reason "
        f"from {built_relation(INACTIVE)} as i "
        f"left join {built_relation(CONTACTS)} as e on e.educator_id = i.educator_id "
        "where i.district_id = %s and i.school_year = %s "
        "order by i.reason, e.last_name, e.first_name, i.educator_id limit %s",
        [district_id, year, LIST_LIMIT],
    )
    return [Educator(*row) for row in rows]


def _notices(wh: Warehouse, district_id: str, year: int) -> list[Notice]:
    rows = wh.query(
        "select effective_reset_date, schedule_status, recipients, sent_at "
        "from eoy_runner.notices_sent where district_id = %s and school_year = %s "
        "order by sent_at desc",
        [district_id, year],
    )
    return [Notice(*row) for row in rows]


def certificates_of(wh: Warehouse, district_id: str, year: int) -> list[IssuedCertificate]:
    """The district's certificates of the school year that still hold: the latest of each
    kind, the disposition only while its reset stands (a restored reset voids it)."""
    if not wh.relation_exists("eoy_runner", "certificates"):
        return []
    run = wh.query(
        "select status, started_at from eoy_runner.reset_runs "
        "where district_id = %s and school_year = %s",
        [district_id, year],
    )
    found = []
    for kind in KINDS:
        cert = latest_issued(wh, district_id, year, kind)
        if cert is None:
            continue
        at = datetime.fromisoformat(cert.issued_at.removesuffix("Z"))
        # a disposition holds for the reset that completed, not for one restored since, nor
        # for an earlier reset of the year (issued before this one began)
        if kind == DISPOSITION and not (
            run and run[0][0] == "completed" and at >= _utc(run[0][1]).replace(microsecond=0)
        ):
            continue
        found.append(IssuedCertificate(kind, TITLES[kind], at, cert.sha256, cert.key_fingerprint))
    return found


def _utc(value: datetime) -> datetime:
    """A ledger time as a naive UTC time (the ledger's naive times are UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def certificate_of(wh: Warehouse, district_id: str, year: int, kind: str) -> Certificate | None:
    """The certificate `certificates_of` lists for that kind, else None."""
    if kind not in {c.kind for c in certificates_of(wh, district_id, year)}:
        return None
    return latest_issued(wh, district_id, year, kind)


def changes(
    wh: Warehouse, year: int, district_id: str | None = None, limit: int = 50
) -> list[Change]:
    """Who changed which district's requested date and when, newest first."""
    where = "school_year = %s" + (" and district_id = %s" if district_id else "")
    params: list[Any] = [year, *([district_id] if district_id else []), limit]
    rows = wh.query(
        "select district_id, changed_by, changed_at, anyway, old_requested_reset_date, "
        "new_requested_reset_date, new_summer_session_end_date, new_rostering_start_date, "
        "effective_reset_date, date_source, schedule_status, issues "
        f"from eoy_runner.reset_request_changes where {where} "
        "order by changed_at desc, change_id desc limit %s",
        params,
    )
    return [Change(*[*r[:11], _issues(r[11])]) for r in rows]


# ---------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------
def runs_of(
    wh: Warehouse, district_id: str | None = None, year: int | None = None, limit: int = 200
) -> list[Run]:
    """Runs from the ledger, those in progress first, then the latest; each with the last
    step it recorded."""
    where: list[str] = []
    params: list[Any] = []
    if district_id is not None:
        where.append("r.district_id = %s")
        params.append(district_id)
    if year is not None:
        where.append("r.school_year = %s")
        params.append(year)
    rows = wh.query(
        "select r.district_id, d.name, r.school_year, r.status, r.effective_reset_date, "
        "r.started_at, r.finished_at, coalesce(r.rows_deleted, 0), r.error "
        "from eoy_runner.reset_runs as r "
        f"left join ({districts_select(current_scope())}) as d on d.district_id = r.district_id "
        + (f"where {' and '.join(where)} " if where else "")
        + "order by case when r.status = 'running' then 0 else 1 end, "
        "coalesce(r.finished_at, r.started_at) desc nulls last, r.district_id limit %s",
        [*params, limit],
    )
    runs = [Run(*row) for row in rows]
    if not runs:
        return runs
    steps = {
        (str(d), int(y)): (str(step), str(status))
        for d, y, step, status in wh.query(
            "select district_id, school_year, step, status from eoy_runner.reset_events "
            "where event_id in (select max(event_id) from eoy_runner.reset_events "
            "group by district_id, school_year)"
        )
    }
    return [
        replace(r, step=step[0], step_status=step[1])
        if (step := steps.get((r.district_id, r.school_year)))
        else r
        for r in runs
    ]


# ---------------------------------------------------------------------------------------
# plans
# ---------------------------------------------------------------------------------------
def plan_views(wh: Warehouse) -> list[PlanView]:
    """The plans `plan --out` kept, newest first, each with its districts and approvers."""
    views = []
    for plan in stored_plans(wh):
        doc = plan.document
        approvers = [
            (str(by), at)
            for by, at in wh.query(
                "select approved_by, approved_at from eoy_runner.plan_approvals "
                "where plan_sha256 = %s order by approved_at, approved_by",
                [plan.plan_sha256],
            )
        ]
        views.append(
            PlanView(
                plan_sha256=plan.plan_sha256,
                made_at=plan.made_at,
                made_by=plan.made_by,
                school_year=plan.school_year,
                as_of=plan.as_of,
                districts=[
                    PlanDistrict(
                        str(d["district_id"]),
                        str(d.get("effective_reset_date", "")),
                        {str(t): int(n) for t, n in (d.get("rows") or {}).items()},
                        int(d.get("rows_total", 0)),
                    )
                    for d in doc.get("due", [])
                ],
                blocked=len(doc.get("blocked", [])),
                approvers=approvers,
            )
        )
    return views
