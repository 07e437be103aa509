"""`eoy-reset notices`: one reset notice per district, to its administrators, as an .eml file;
`--send` delivers each over SMTP once per reset date and records it in the ledger.

What a notice says comes from dbt (model reset_notices: the date and why, the window in which
it may change, counts of what goes); the addresses and the names of inactive educators are
read through the view educator_contacts when the message is written. Counts only of
students: no student name or username is ever read here. The ledger
(eoy_runner.notices_sent) keeps the district, the reset date and status announced, how many
administrators it went to and the Message-ID, never an address.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.csm.addresses import Recipient, Skipped, display_name, recipient
from jobs.csm.mailer import Mailer, NoticeError, SmtpServer
from jobs.csm.message import long_day, render_html, render_text, write_eml
from jobs.csm.post_reset import post_reset_notices
from jobs.plan.dbt import PolicyError, build_models, policy_years
from jobs.scope.built import built_relation
from jobs.snapshot.store import is_object_root
from jobs.warehouse import Warehouse, connect
from jobs.warehouse.ledger import utcnow

# Educators' names and addresses (dbt view educator_contacts: the demo's educators; none in a
# vendor's project, whose educators are no part of the declared scope)
CONTACTS = "educator_contacts"
NOTICE_SELECTION = ["reset_policy", "+reset_notices", CONTACTS]
MAX_LISTED_EDUCATORS = 100

# The procedure's table: what the reset deletes and what it keeps.
DATA_ACTIONS = (
    ("Student accounts", "Deleted"),
    ("Student academic data (assessment, progress, pathway and usage data)", "Deleted"),
    ("Classrooms", "Deleted"),
    ("Educator accounts", "Retained"),
    ("Organizations (schools and districts)", "Retained"),
)


__all__ = ["NoticeError", "SmtpServer", "make_notices"]


# ---------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------
def make_notices(
    settings: Settings,
    as_of: date,
    out: Path,
    *,
    school_year: int | None = None,
    sender: str,
    smtp: SmtpServer | None = None,
) -> dict[str, Any]:
    """Write every district's notice into `out`; with `smtp`, send those not sent yet. A
    district whose reset completed gets its post-reset notice instead, one per administrator,
    carrying its certificate (`jobs.csm.post_reset`)."""
    year = school_year if school_year is not None else as_of.year
    if year not in policy_years():
        raise PolicyError(
            f"no reset policy for school year {year}: give --school-year, the calendar year "
            "the school year ends in, or add a row to seeds/reset_policy.csv"
        )
    _check_sender(sender)
    connect(settings).close()  # "run eoy-reset init" before dbt's missing-table error
    build_notice_models(settings, as_of, year)
    with connect(settings) as wh:
        rows = wh.query_dicts(
            f"select * from {built_relation('reset_notices')} "
            "where school_year = %s order by district_id",
            [year],
        )
        admins, skipped = administrators(wh)
        idle = _inactive_educators(wh, year)
        sent = _sent(wh, year)
    folder = Path(out) / str(year)
    notices: list[dict[str, Any]] = []
    with connect(settings) as wh, Mailer(smtp) as mailer:
        for row in rows:
            to = admins.get(row["district_id"], [])
            message = compose(row, to, idle.get(row["district_id"], []), settings, sender, as_of)
            count = sum(1 for n in notices if n["status"] == "sent")
            status, to = _deliver(wh, mailer, row, message, to, sent, skipped, count)
            path = write_eml(folder, row["district_id"], message)
            notices.append(_notice_entry(row, to, status, message, path))
        after = post_reset_notices(wh, mailer, settings, year, folder, sender, admins, skipped)
    return _document(as_of, year, folder, smtp, notices, after, skipped)


def _deliver(
    wh: Warehouse,
    mailer: Mailer,
    row: dict[str, Any],
    message: EmailMessage,
    to: list[Recipient],
    sent: dict[tuple[str, date, str], str],
    skipped: list[Skipped],
    sent_before: int,
) -> tuple[str, list[Recipient]]:
    """Send a district's notice unless sent already; (its status, who received it)."""
    district_id = row["district_id"]
    key = (district_id, row["effective_reset_date"], row["schedule_status"])
    if not to:
        return "unreachable", to
    if mailer.server is None:
        return "written", to
    if key in sent:
        message.replace_header("Message-ID", sent[key])  # the file keeps the one sent
        return "already_sent", to
    refused = mailer.send(message, f"the notice of district {district_id!r}", sent_before)
    for r in to:
        if r.address in refused:
            skipped.append(Skipped(district_id, r.educator_id, "the SMTP server refused it"))
    received = [r for r in to if r.address not in refused]
    if not received:
        return "refused", received
    _record_sent(wh, row, len(received), str(message["Message-ID"]))
    return "sent", received


def _notice_entry(
    row: dict[str, Any], to: list[Recipient], status: str, message: EmailMessage, path: Path
) -> dict[str, Any]:
    return {
        "district_id": row["district_id"],
        "district_name": row["district_name"],
        "effective_reset_date": row["effective_reset_date"],
        "date_source": row["date_source"],
        "schedule_status": row["schedule_status"],
        "issues": [i for i in (row["issues"] or "").split(",") if i],
        "recipients": len(to),
        "status": status,
        "message_id": str(message["Message-ID"]),
        "path": path,
        "rows": int(row["student_rows"]),
    }


def _rows_by_table(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The rows the reset will delete per table the scope declares deleted, in the
    declaration's order (reset_notices.rows_by_table: 'table=rows;…')."""
    out = []
    for part in (row["rows_by_table"] or "").split(";"):
        table, _, rows = part.rpartition("=")
        if table:
            out.append((table, f"{int(rows):,}"))
    return out


def _document(
    as_of: date,
    year: int,
    folder: Path,
    smtp: SmtpServer | None,
    notices: list[dict[str, Any]],
    after: list[Any],
    skipped: list[Skipped],
) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    for n in notices:
        by_status[n["status"]] = by_status.get(n["status"], 0) + 1
    post = [asdict(n) for n in after]
    post_by_status: dict[str, int] = {}
    for n in post:
        post_by_status[n["status"]] = post_by_status.get(n["status"], 0) + 1
    return {
        "as_of": as_of,
        "school_year": year,
        "out": folder,
        "sent_with": smtp.where if smtp else None,
        "notices": notices,
        "post_reset": post,
        "unreachable": [n["district_id"] for n in notices if n["status"] == "unreachable"],
        "skipped_recipients": [asdict(s) for s in skipped],
        "totals": {
            "districts": len(notices),
            "rows": sum(n["rows"] for n in notices),
            "by_status": by_status,
            "sent": by_status.get("sent", 0),
            "unreachable": by_status.get("unreachable", 0),
            "post_reset": {"messages": len(post), "by_status": post_by_status},
            "skipped_recipients": len(skipped),
        },
    }


def build_notice_models(settings: Settings, as_of: date, year: int) -> None:
    from jobs.output import phase

    with phase(f"building the notice models as of {as_of.isoformat()}…"):
        build_models(
            settings,
            [*NOTICE_SELECTION],
            parameters={"EOY_AS_OF_DATE": as_of.isoformat(), "EOY_SCHOOL_YEAR": str(year)},
        )


def _check_sender(sender: str) -> None:
    try:
        address = Address(addr_spec=sender.strip())
    except (ValueError, IndexError, TypeError) as exc:
        raise NoticeError(f"--from {sender!r} is not an email address: {exc}") from None
    if not address.username or not address.domain:
        raise NoticeError(f"--from {sender!r} is not an email address: give name@domain")


def administrators(wh: Warehouse) -> tuple[dict[str, list[Recipient]], list[Skipped]]:
    """Each district's administrators with one usable address (one per address), and those
    whose email field is not one (skipped and reported, never an address in the report)."""
    found: dict[str, list[Recipient]] = {}
    skipped: list[Skipped] = []
    seen: set[tuple[str, str]] = set()
    for district_id, educator_id, email, first, last in wh.query(
        "select district_id, educator_id, email, first_name, last_name "
        f"from {built_relation(CONTACTS)} "
        "where role = 'administrator' and email is not null and trim(email) <> '' "
        "order by district_id, educator_id"
    ):
        made = recipient(str(district_id), str(educator_id), first, last, email)
        if isinstance(made, Skipped):
            skipped.append(made)
            continue
        key = (str(district_id), made.address.lower())
        if key not in seen:
            seen.add(key)
            found.setdefault(str(district_id), []).append(made)
    return found, skipped


def _inactive_educators(wh: Warehouse, year: int) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for row in wh.query_dicts(
        "select i.district_id, e.first_name, e.last_name, e.email, e.role, i.last_login_at "
        f"from {built_relation('inactive_educators')} as i join {built_relation(CONTACTS)} as e "
        "on e.educator_id = i.educator_id "
        "where i.school_year = %s order by i.district_id, e.last_name, e.first_name, "
        "i.educator_id",
        [year],
    ):
        found.setdefault(row["district_id"], []).append(row)
    return found


def _sent(wh: Warehouse, year: int) -> dict[tuple[str, date, str], str]:
    """The Message-ID of each notice sent, by district, reset date and status announced."""
    return {
        (d, day, status): message_id
        for d, day, status, message_id in wh.query(
            "select district_id, effective_reset_date, schedule_status, message_id "
            "from eoy_runner.notices_sent where school_year = %s",
            [year],
        )
    }


def _record_sent(wh: Warehouse, row: dict[str, Any], recipients: int, message_id: str) -> None:
    wh.execute(
        "insert into eoy_runner.notices_sent (district_id, school_year, effective_reset_date, "
        "schedule_status, date_source, recipients, message_id, sent_at) "
        "values (%s, %s, %s, %s, %s, %s, %s, %s)",
        [
            row["district_id"],
            row["school_year"],
            row["effective_reset_date"],
            row["schedule_status"],
            row["date_source"],
            recipients,
            message_id,
            utcnow(),
        ],
    )


# ---------------------------------------------------------------------------------------
# the message
# ---------------------------------------------------------------------------------------
def school_year_label(year: int) -> str:
    return f"{year - 1}-{year % 100:02d}"


def copy_instructions(settings: Settings, district_id: str, year: int) -> str:
    """How the district gets its copy, in its administrator's words: a download link where
    the snapshots are in a bucket, else a zip the CSM sends (never our commands)."""
    del district_id, year  # the same words for every district; kept for the callers
    if is_object_root(settings.snapshot_root):
        return (
            "ask your CSM for it: they will send you a download link to a zip of your "
            "district's data, one spreadsheet (CSV) file per kind of data"
        )
    return (
        "ask your CSM for it: they will send you a zip of your district's data, one "
        "spreadsheet (CSV) file per kind of data"
    )


def _why(row: dict[str, Any]) -> list[str]:
    issues = [i for i in (row["issues"] or "").split(",") if i]
    asked = row["requested_reset_date"]
    lines = []
    if row["date_source"] == "default" and asked is not None:
        lines.append("This is the default reset date, for the reason below.")
    elif row["date_source"] == "default":
        lines.append("This is the default reset date: the district has not asked for another.")
    elif row["date_source"] == "requested":
        lines.append("This is the date you asked your CSM for.")
    else:
        lines.append(
            f"This is the first day after your school year and summer session end "
            f"({long_day(row['session_end_date'])}): no reset happens while a session runs."
        )
    if "request_too_early" in issues:
        lines.append(
            f"The date you asked for, {long_day(asked)}, could not be used: it is before the "
            f"earliest reset date, {long_day(row['earliest_reset_date'])}."
        )
    if "request_not_before_rostering" in issues:
        lines.append(
            f"The date you asked for, {long_day(asked)}, could not be used: it is not before "
            f"rostering for the new school year starts ({long_day(row['rostering_start_date'])})."
        )
    if "request_during_session" in issues:
        lines.append(
            f"The date you asked for, {long_day(asked)}, falls during your session, so the "
            "reset moves to the day after it ends."
        )
    return lines


def _window(row: dict[str, Any], as_of: date) -> str:
    first, last, by = row["window_from"], row["window_until"], row["change_deadline"]
    if by is None or by < as_of or (last is not None and last < first):
        if row["schedule_status"] == "blocked":
            return (
                "No reset date before your rostering start is after your school year and summer "
                "session: rostering for the new year must start later. Tell your CSM when it "
                "can start."
            )
        return "The reset date can no longer change."
    span = f"any day from {long_day(first)}" + (
        f" to {long_day(last)}" if last is not None else " on"
    )
    return (
        f"You may still ask your CSM for another date, {span} (after your school year and "
        f"summer session, before rostering for the new year starts), until {long_day(by)}."
    )


def notice_blocks(
    row: dict[str, Any],
    educators: list[dict[str, Any]],
    settings: Settings,
    as_of: date,
) -> tuple[str, list[tuple[str, Any]]]:
    """The notice's subject and content as blocks: ("p", text), ("h", title),
    ("table", [(cell, cell)]), ("ul", [text])."""
    name = row["district_name"] or row["district_id"]
    year = int(row["school_year"])
    day = row["effective_reset_date"]
    blocked = row["schedule_status"] == "blocked"
    blocks: list[tuple[str, Any]] = [("p", f"Dear administrators of {name},")]
    if blocked:
        subject = f"{name}: your Imagine Math end-of-year data reset needs a new date"
        blocks += [
            ("h", "Your reset is blocked"),
            (
                "p",
                f"Your district's end-of-year data reset for the {school_year_label(year)} "
                f"school year is blocked: its reset date, {long_day(day)}, is not before "
                "rostering for the new school year starts "
                f"({long_day(row['rostering_start_date'])}), and a reset then would delete the "
                "new year's students. Nothing will be reset until a new date is agreed.",
            ),
            *(("p", line) for line in _why(row)),
            (
                "p",
                "What your CSM must do: agree with you a reset date after your school year and "
                "summer session and before rostering starts, or a later rostering start, and "
                "record it. Reply to this message to start.",
            ),
        ]
    else:
        subject = f"{name}: your Imagine Math end-of-year data reset date, {long_day(day)}"
        # a date already passed (the reset is not done yet): it runs in the coming days
        when = (
            f"is on {long_day(day)}"
            if day >= as_of
            else (f"was due on {long_day(day)} and runs in the coming days")
        )
        blocks += [
            ("h", "Your reset date"),
            (
                "p",
                f"Your district's end-of-year data reset for the {school_year_label(year)} "
                f"school year {when}. All schools of the district are reset "
                "together, and nightly rostering imports pause that day until rostering for "
                "the new school year is complete.",
            ),
            *(("p", line) for line in _why(row)),
        ]
    blocks += [
        ("h", "Changing the date"),
        ("p", _window(row, as_of)),
        ("h", "What is deleted and what is kept"),
        ("table", [("Data", "Action taken for the data reset"), *DATA_ACTIONS]),
        ("h", f"What the reset will delete (as of {long_day(as_of)})"),
        (
            "table",
            [
                ("Data", "Rows"),
                *_rows_by_table(row),
                ("All student data", f"{int(row['student_rows']):,}"),
            ],
        ),
        ("h", "Educators recommended for removal"),
    ]
    if educators:
        blocks.append(
            (
                "p",
                f"{len(educators):,} educator{'s' if len(educators) != 1 else ''} of your "
                "district did not log in for more than a year before the reset date, or never: "
                "remove those no longer with your organization or using the program. The reset "
                "removes no educator.",
            )
        )
        items = [_educator_line(e) for e in educators[:MAX_LISTED_EDUCATORS]]
        if len(educators) > MAX_LISTED_EDUCATORS:
            items.append(f"… and {len(educators) - MAX_LISTED_EDUCATORS:,} more")
        blocks.append(("ul", items))
    else:
        blocks.append(("p", "Every educator of your district logged in within the last year."))
    copy_by = long_day(day) if not blocked else "your reset date"
    blocks += [
        ("h", "Keep a copy of this year's data"),
        (
            "p",
            "No math data is kept from one school year to the next: download a copy of this "
            f"year's data for your records before {copy_by}. To get it, "
            f"{copy_instructions(settings, row['district_id'], year)}.",
        ),
        ("p", "Your Customer Success Manager"),
    ]
    return subject, blocks


def _educator_line(e: dict[str, Any]) -> str:
    name = display_name(e["first_name"], e["last_name"]) or "(no name)"
    login = e["last_login_at"]
    when = f"last login {login:%Y-%m-%d}" if login is not None else "never logged in"
    email = f" <{display_name(e['email'])}>" if e["email"] else ""
    return f"{name}{email}, {e['role']}, {when}"


def compose(
    row: dict[str, Any],
    administrators: list[Recipient],
    educators: list[dict[str, Any]],
    settings: Settings,
    sender: str,
    as_of: date,
) -> EmailMessage:
    """The RFC 5322 message: plain text and HTML alternatives of the same content."""
    subject, blocks = notice_blocks(row, educators, settings, as_of)
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender.strip()
    if administrators:
        message["To"] = [a.header for a in administrators]
    message["Date"] = format_datetime(datetime.now(UTC))
    # short enough never to be folded onto a second line
    message["Message-ID"] = make_msgid(domain=sender.strip().rsplit("@", 1)[-1])
    message["X-EOY-District"] = str(row["district_id"])
    message["X-EOY-Reset-Date"] = row["effective_reset_date"].isoformat()
    message["X-EOY-Reset-Status"] = str(row["schedule_status"])
    message.set_content(render_text(blocks))
    message.add_alternative(render_html(subject, blocks), subtype="html")
    return message
