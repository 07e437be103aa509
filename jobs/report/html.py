"""`eoy-reset report --html FILE`: the compliance report, one self-contained HTML file.

Builds the audit models (schema eoy_audit) as of a day, reads them, and writes plain HTML
with inline CSS and inline SVG charts: no script, no network fetch (a Content-Security-Policy
says so to the browser). Every value is HTML-escaped: district ids are data, not markup.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jobs import __version__
from jobs.config import Settings
from jobs.errors import EoyError
from jobs.plan.dbt import PolicyError, build_models, policy_years
from jobs.report.built import SCHEMA, as_built, builds_here
from jobs.warehouse.connection import Warehouse, connect

AUDIT_SELECTION = ["+fqn:eoy_reset.marts.audit"]
MAX_TABLE_ROWS = 500

SECTIONS = {
    "summary": "Summary",
    "timeline": "Reset timeline",
    "deleted": "Rows deleted by table and product",
    "overdue": "Overdue and blocked districts",
    "upcoming": "Upcoming resets",
    "notices": "Reset notices to districts",
    "certificates": "Certificates to districts",
    "educators": "Inactive educators per district",
    "retention": "Retention check",
    "status": "Reset status by district",
}

QUERIES = {
    "status": "select * from {s}.audit_reset_status "
    "order by school_year desc, effective_reset_date, district_id",
    "deleted": "select * from {s}.audit_deleted_rows "
    "order by school_year, district_id, table_name, product",
    "overdue": "select * from {s}.audit_overdue_districts "
    "order by needs_csm desc, days_past_reset_date desc, district_id",
    "upcoming": "select * from {s}.audit_upcoming_resets "
    "order by effective_reset_date, district_id",
    "educators": "select * from {s}.audit_inactive_educators order by district_id, educator_id",
    # what needs the CSM first: a date changed since its notice, unreachable, not yet notified
    "notices": "select * from {s}.audit_notices order by is_changed_after_notice desc, "
    "case notice_status when 'unreachable' then 0 when 'not_notified' then 1 else 2 end, "
    "district_id",
    "retention": "select * from {s}.audit_retention_violations order by district_id, table_name",
    # what is owed first, then void, then what was certified
    "certificates": "select * from {s}.audit_certificates order by case certificate_status "
    "when 'owed' then 0 when 'void' then 1 else 2 end, school_year desc, district_id, kind",
}


class ReportError(EoyError):
    """The report could not be written; the message says where and what to do."""


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    kind: str = ""  # "num" (right-aligned, thousands), "date" (no wrap), "hash" (monospace)


Rows = list[dict[str, Any]]


def write_report(
    settings: Settings, path: Path, as_of: date, school_year: int | None = None
) -> dict[str, Any]:
    """Build the audit models as of `as_of`, read them, write the HTML; say what was written.

    school_year: the year reported on (default: the year of `as_of`)."""
    school_year = school_year if school_year is not None else as_of.year
    _check_writable(Path(path))
    if school_year not in policy_years():
        raise PolicyError(
            f"no reset policy for school year {school_year}: add a row to "
            "seeds/reset_policy.csv or report --as-of a day of a school year that has one"
        )
    if builds_here(settings):
        build_audit_models(settings, as_of, school_year)
    else:
        as_built(settings, as_of, school_year)
    with connect(settings) as wh:
        data = read_audit(wh)
    html_text, summary = render_report(
        data, as_of, school_year, settings.describe(), report_dir=Path(path).resolve().parent
    )
    _write_atomically(Path(path), html_text)
    return {
        "path": str(path),
        "as_of": as_of.isoformat(),
        "school_year": school_year,
        "sections": list(SECTIONS.values()),
        "counts": summary,
        "charts": html_text.count("<svg "),
        "bytes": len(html_text.encode()),
    }


def build_audit_models(settings: Settings, as_of: date, school_year: int) -> None:
    """The audit views and everything under them, built for the day (tests are not run)."""
    from jobs.output import phase

    with phase(f"building the audit models as of {as_of.isoformat()}…"):
        _build_audit(settings, as_of, school_year)


def _build_audit(settings: Settings, as_of: date, school_year: int) -> None:
    build_models(
        settings,
        [*AUDIT_SELECTION],
        parameters={"EOY_AS_OF_DATE": as_of.isoformat(), "EOY_SCHOOL_YEAR": str(school_year)},
    )


def read_audit(wh: Warehouse) -> dict[str, Rows]:
    """Every section's rows, from schema eoy_audit only (what eoy_analyst may read)."""
    data = {name: wh.query_dicts(sql.format(s=SCHEMA)) for name, sql in QUERIES.items()}
    for row in data["status"]:
        at = row.get("snapshot_purged_at")
        row["snapshot"] = f"purged on {at:%Y-%m-%d}" if at is not None else None
    return data


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------
def summarize(data: dict[str, Rows], school_year: int) -> dict[str, int]:
    year = [r for r in data["status"] if r["school_year"] == school_year]
    by_status = {
        s: sum(1 for r in year if r["status"] == s)
        for s in ("completed", "not_started", "running", "failed", "blocked", "restored")
    }
    deleted = [
        r
        for r in data["deleted"]
        if r["school_year"] == school_year and r["run_status"] == "completed"
    ]
    return {
        "districts": len(year),
        **by_status,
        "due_now": sum(1 for r in year if r["is_due"]),
        "rows_deleted": sum(int(r["rows_deleted"]) for r in deleted),
        "overdue_or_blocked": len(data["overdue"]),
        "needs_csm": sum(1 for r in data["overdue"] if r["needs_csm"]),
        "upcoming": len(data["upcoming"]),
        "inactive_educators": len(data["educators"]),
        "retention_violations": len(data["retention"]),
        "certificates_owed": sum(
            1 for r in data.get("certificates", []) if r["certificate_status"] == "owed"
        ),
    }


# ---------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------
def fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, date):
        return value.isoformat()
    if kind == "num" and isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table_html(columns: Sequence[Column], rows: Rows, none_text: str) -> str:
    if not rows:
        return empty(none_text) if none_text else ""
    head = "".join(f'<th class="{c.kind}">{escape(c.header)}</th>' for c in columns)
    body = []
    for row in rows[:MAX_TABLE_ROWS]:
        cells = "".join(
            f'<td class="{c.kind}">{escape(fmt(row.get(c.key), c.kind))}</td>' for c in columns
        )
        body.append(f"<tr>{cells}</tr>")
    more = ""
    if len(rows) > MAX_TABLE_ROWS:
        more = (
            f'<p class="note">First {MAX_TABLE_ROWS:,} of {len(rows):,} rows; query '
            f"{escape(SCHEMA)} for all of them.</p>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}"


def section(key: str, body: str, note: str = "") -> str:
    intro = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<section id="{key}"><h2>{escape(SECTIONS[key])}</h2>{intro}{body}</section>'


def summary_html(s: dict[str, int], school_year: int) -> str:
    cards = [
        ("Districts", s["districts"], ""),
        ("Completed", s["completed"], "good"),
        ("Not started", s["not_started"], ""),
        ("Due now", s["due_now"], "warn" if s["due_now"] else ""),
        ("Failed", s["failed"], "bad" if s["failed"] else ""),
        ("Blocked", s["blocked"], "warn" if s["blocked"] else ""),
        ("Restored", s["restored"], ""),
        ("Rows deleted", s["rows_deleted"], ""),
        ("Overdue or blocked", s["overdue_or_blocked"], "warn" if s["overdue_or_blocked"] else ""),
        ("Upcoming resets", s["upcoming"], ""),
        ("Inactive educators", s["inactive_educators"], ""),
        ("Certificates owed", s["certificates_owed"], "warn" if s["certificates_owed"] else ""),
        (
            "Retention violations",
            s["retention_violations"],
            "bad" if s["retention_violations"] else "good",
        ),
    ]
    items = "".join(
        f'<div class="card {tone}"><div class="figure">{escape(fmt(value, "num"))}</div>'
        f'<div class="label">{escape(label)}</div></div>'
        for label, value, tone in cards
    )
    return f'<div class="cards">{items}</div>' + (
        f'<p class="note">School year {school_year}: districts by where their reset stands.'
        " Rows deleted counts completed resets only (a restored reset's rows are back).</p>"
    )


def chart(svg: str) -> str:
    return f'<figure class="chart">{svg}</figure>'


def empty(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


def timeline_section(data: dict[str, Rows], as_of: date, school_year: int) -> str:
    from jobs.report.charts import timeline_svg

    points = [
        (r["effective_reset_date"], r["status"])
        for r in data["status"]
        if r["school_year"] == school_year and r["effective_reset_date"] is not None
    ]
    body = (
        chart(timeline_svg(points, as_of))
        if points
        else empty("No district has a reset date this school year.")
    )
    return section(
        "timeline",
        body,
        f"School year {school_year}: districts per reset date, "
        "coloured by where the reset stands; the dashed line is the report day.",
    )


def deleted_section(data: dict[str, Rows], school_year: int) -> str:
    from jobs.report.charts import deleted_rows_svg

    totals: dict[tuple[str, str], int] = {}
    for r in data["deleted"]:
        if r["school_year"] == school_year and r["run_status"] == "completed":
            key = (r["table_name"], r["product"] or "")
            totals[key] = totals.get(key, 0) + int(r["rows_deleted"])
    if not totals:
        return section("deleted", empty("No completed reset has deleted rows this school year."))
    svg = deleted_rows_svg([(t, p or None, n) for (t, p), n in totals.items()])
    rows = [
        {"table_name": t, "product": p or None, "rows_deleted": n}
        for (t, p), n in sorted(totals.items())
    ]
    columns = [
        Column("table_name", "Table"),
        Column("product", "Product"),
        Column("rows_deleted", "Rows deleted", "num"),
    ]
    return section(
        "deleted",
        chart(svg) + table_html(columns, rows, ""),
        "Completed resets of the school year, all districts. Product — : the table "
        "has no product column, or the ledger did not split its count.",
    )


def overdue_section(data: dict[str, Rows]) -> str:
    columns = [
        Column("district_id", "District"),
        Column("district_name", "Name"),
        Column("effective_reset_date", "Reset date", "date"),
        Column("reason", "Reason"),
        Column("needs_csm", "Needs CSM"),
        Column("days_past_reset_date", "Days past", "num"),
        Column("schedule_issues", "Issues"),
        Column("run_error", "Last error"),
    ]
    rows = [
        {**r, "days_past_reset_date": days_past(r["days_past_reset_date"])} for r in data["overdue"]
    ]
    return section(
        "overdue",
        table_html(columns, rows, "No district is overdue or blocked."),
        "Due and not completed as of the report day, and blocked districts. Not started or "
        "failed: the operator runs the reset; blocked or restored: a CSM agrees a new date.",
    )


def days_past(days: Any) -> Any:
    """Days past the reset date; a blocked district's date still to come says so instead."""
    if isinstance(days, int) and days < 0:
        return f"in {-days:,} day{'s' if days != -1 else ''}"
    return days


def upcoming_section(data: dict[str, Rows]) -> str:
    columns = [
        Column("district_id", "District"),
        Column("district_name", "Name"),
        Column("effective_reset_date", "Reset date", "date"),
        Column("days_until_reset", "In days", "num"),
        Column("date_source", "Date from"),
        Column("syncs_to_pause", "Syncs to pause", "num"),
        Column("schedule_issues", "Issues"),
    ]
    return section(
        "upcoming",
        table_html(columns, data["upcoming"], "No reset in the coming days."),
        "Scheduled resets after the report day: send each district its notice.",
    )


def notices_section(data: dict[str, Rows]) -> str:
    rows = data["notices"]
    columns = [
        Column("district_id", "District"),
        Column("district_name", "Name"),
        Column("effective_reset_date", "Reset date", "date"),
        Column("schedule_status", "Status"),
        Column("notice_status", "Notice"),
        Column("last_notified_at", "Notified", "date"),
        Column("notified_reset_date", "Date in notice", "date"),
        Column("is_changed_after_notice", "Changed since"),
        Column("last_notice_recipients", "To", "num"),
    ]
    figures = {
        status: sum(1 for r in rows if r["notice_status"] == status)
        for status in ("notified", "unreachable", "not_notified")
    }
    changed = sum(1 for r in rows if r["is_changed_after_notice"])
    return section(
        "notices",
        table_html(columns, rows, "No district has a reset this school year."),
        f"{figures['notified']:,} notified ({changed:,} with a date changed since: send "
        f"`eoy-reset notices --send` again), {figures['unreachable']:,} unreachable (no "
        f"administrator with an email: the CSM must reach them), {figures['not_notified']:,} "
        "not notified yet.",
    )


def _certificate_where(row: dict[str, Any], report_dir: Path | None) -> str:
    """Where the certificate is (a link to its certificate.html), or how to issue it."""
    if row["certificate_status"] == "void":
        return "void: the reset was restored since"
    folder = row.get("written_to")
    if row["certificate_status"] == "certified" and folder:
        page = Path(folder) / "certificate.html"
        shown = os.path.relpath(page, report_dir) if report_dir is not None else str(page)
        return f'<a href="{escape(quote(shown))}">{escape(shown)}</a>'
    kind = "" if row["kind"] == "disposition" else " --kind copy_destroyed"
    command = (
        f"eoy-reset certificate --district {row['district_id']} --school-year "
        f"{row['school_year']}{kind} --out DIR"
    )
    said = "issued, not written out" if row["certificate_status"] == "certified" else "owed"
    return f"{said}: <code>{escape(command)}</code>"


def certificates_section(data: dict[str, Rows], report_dir: Path | None) -> str:
    rows = data.get("certificates", [])
    if not rows:
        return section("certificates", empty("No reset has completed: no certificate is owed."))
    columns = [
        Column("district_id", "District"),
        Column("district_name", "Name"),
        Column("school_year", "School year"),
        Column("kind", "Kind"),
        Column("certificate_status", "Status"),
        Column("issued_at", "Issued", "date"),
        Column("document_sha256", "Document SHA-256", "hash"),
    ]
    head = "".join(f'<th class="{c.kind}">{escape(c.header)}</th>' for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{c.kind}">{escape(fmt(row.get(c.key), c.kind))}</td>' for c in columns
        )
        + f"<td>{_certificate_where(row, report_dir)}</td></tr>"
        for row in rows[:MAX_TABLE_ROWS]
    )
    figures = {
        status: sum(1 for r in rows if r["certificate_status"] == status)
        for status in ("certified", "owed", "void")
    }
    return section(
        "certificates",
        f"<table><thead><tr>{head}<th>Certificate</th></tr></thead><tbody>{body}</tbody></table>",
        f"{figures['certified']:,} certified, {figures['owed']:,} owed (a completed reset or "
        f"a purge without its certificate: issue it), {figures['void']:,} void (restored "
        "since). A certificate of disposition proves a reset to its district; a copy "
        "destroyed one, a purge.",
    )


def educators_section(data: dict[str, Rows]) -> str:
    from jobs.report.charts import inactive_educators_svg

    per_district: dict[str, dict[str, Any]] = {}
    for r in data["educators"]:
        entry = per_district.setdefault(
            r["district_id"],
            {
                "district_id": r["district_id"],
                "district_name": r["district_name"],
                "never": 0,
                "inactive": 0,
                "total": 0,
            },
        )
        entry["never" if r["reason"] == "never_logged_in" else "inactive"] += 1
        entry["total"] += 1
    rows = sorted(per_district.values(), key=lambda e: (-e["total"], e["district_id"]))
    if not rows:
        return section("educators", empty("No inactive educator to recommend for removal."))
    svg = inactive_educators_svg([(e["district_id"], e["never"], e["inactive"]) for e in rows])
    columns = [
        Column("district_id", "District"),
        Column("district_name", "Name"),
        Column("never", "Never logged in", "num"),
        Column("inactive", "Inactive", "num"),
        Column("total", "Total", "num"),
    ]
    return section(
        "educators",
        chart(svg) + table_html(columns, rows, ""),
        "Educators who never logged in, or not for more than a year before the "
        "reset date: a recommendation to the district; nobody is deleted.",
    )


def retention_section(data: dict[str, Rows]) -> str:
    columns = [
        Column("district_id", "District"),
        Column("school_year", "School year"),
        Column("table_name", "Table"),
        Column("violation", "Violation"),
        Column("expected_rows", "Expected", "num"),
        Column("actual_rows", "Found", "num"),
        Column("rows_in_violation", "Rows in violation", "num"),
    ]
    return section(
        "retention",
        table_html(
            columns,
            data["retention"],
            "All well: no student data of a completed reset is left, no retained row is lost.",
        ),
        "After each district's latest completed reset: last year's student rows still "
        "present, or retained rows lost since the reset.",
    )


def status_section(data: dict[str, Rows]) -> str:
    columns = [
        Column("district_id", "District"),
        Column("school_year", "School year"),
        Column("effective_reset_date", "Reset date", "date"),
        Column("date_source", "Date from"),
        Column("status", "Status"),
        Column("rows_deleted", "Rows deleted", "num"),
        Column("run_finished_at", "Finished", "date"),
        Column("syncs_paused_at", "Syncs paused", "date"),
        Column("syncs_resumed_at", "Syncs resumed", "date"),
        Column("manifest_sha256", "Snapshot manifest SHA-256", "hash"),
        Column("snapshot", "Snapshot", "date"),
    ]
    return section(
        "status",
        table_html(columns, data["status"], "No district."),
        "Every district of the school year, and every earlier run in the ledger.",
    )


def render_report(
    data: dict[str, Rows],
    as_of: date,
    school_year: int,
    warehouse: str,
    report_dir: Path | None = None,
) -> tuple[str, dict[str, int]]:
    """The whole page, and the summary figures it shows; links to the certificates written
    are relative to `report_dir`, the report's folder."""
    summary = summarize(data, school_year)
    parts = [
        section("summary", summary_html(summary, school_year)),
        timeline_section(data, as_of, school_year),
        deleted_section(data, school_year),
        overdue_section(data),
        upcoming_section(data),
        notices_section(data),
        certificates_section(data, report_dir),
        educators_section(data),
        retention_section(data),
        status_section(data),
    ]
    return _page(as_of, school_year, warehouse, "".join(parts)), summary


CSS = """
:root { --ink:#212121; --muted:#616161; --line:#e0e0e0; --good:#2e7d32; --warn:#ef6c00;
        --bad:#c62828; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); margin: 0 auto; max-width: 1200px; padding: 24px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: var(--muted); }
nav { margin: 12px 0 8px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
nav a { color: #1565c0; text-decoration: none; }
section { border-top: 1px solid var(--line); margin-top: 20px; padding-top: 4px; }
h2 { font-size: 18px; margin: 12px 0 6px; }
.note, .empty { color: var(--muted); margin: 4px 0 10px; }
.empty { font-style: italic; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
         gap: 10px; }
.card { border: 1px solid var(--line); border-left: 4px solid var(--line); border-radius: 6px;
        padding: 8px 12px; }
.card.good { border-left-color: var(--good); }
.card.warn { border-left-color: var(--warn); }
.card.bad { border-left-color: var(--bad); }
.card .figure { font-size: 22px; font-weight: 600; }
.card .label { color: var(--muted); }
figure.chart { margin: 8px 0; }
figure.chart svg { width: 100%; height: auto; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 4px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left;
         vertical-align: top; overflow-wrap: break-word; }
th { background: #f5f5f5; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num, td.date { white-space: nowrap; }
td.hash { font: 11px ui-monospace, monospace; word-break: break-all; min-width: 16ch; }
footer { color: var(--muted); margin-top: 24px; font-size: 12px; }
"""


def _page(as_of: date, school_year: int, warehouse: str, body: str) -> str:
    nav = "".join(f'<a href="#{key}">{escape(title)}</a>' for key, title in SECTIONS.items())
    title = f"EOY reset audit — school year {school_year}, as of {as_of.isoformat()}"
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>Warehouse {escape(warehouse)} · "
        f"eoy-reset {escape(__version__)} · models in schema {escape(SCHEMA)}</p>"
        f"<nav>{nav}</nav></header>{body}"
        "<footer>Counts and the ids of organizations and educators only: this report holds "
        "no student data.</footer></body></html>\n"
    )


def _check_writable(path: Path) -> None:
    """Fail before the dbt build, not after it, when the report cannot go there."""
    from jobs.plan.preflight import PreflightError, writable_file

    if path.is_dir():
        raise ReportError(f"--html {path} is a folder: give the path of the HTML file to write")
    try:
        writable_file(path, "--html")
    except PreflightError as exc:
        raise ReportError(str(exc)) from None


def _write_atomically(path: Path, text: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    tmp: str | None = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise ReportError(
            f"cannot write the report to {path}: {exc.strerror or exc}; "
            "choose a writable --html path"
        ) from None
