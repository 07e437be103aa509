"""What `request-date` and `notices` print at a terminal (their --json is the document)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

SOURCES = {
    "default": "the policy's default date",
    "requested": "the date the district asked for",
    "after_session_end": "the day after the district's last session day",
}


def _day(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def render_request(console: Console, doc: dict[str, Any]) -> None:
    """The reset date the plan will use for the district, and what was recorded."""
    said = console.print
    status = "BLOCKED" if doc["status"] == "blocked" else "scheduled"
    said(
        f"District {doc['district_id']}, school year {doc['school_year']}: reset on "
        f"{_day(doc['effective_reset_date'])} ({status}; {SOURCES.get(doc['date_source'], '')}).",
        highlight=False,
        markup=False,
    )
    if doc["issues"]:
        said(f"Issues: {', '.join(doc['issues'])}.", highlight=False, markup=False)
    if doc["refused_reason"]:
        said(
            f"Recorded anyway: {doc['refused_reason']}.",
            highlight=False,
            markup=False,
        )
    if doc["changed"]:
        said(f"Recorded by {doc['recorded_by']}.", highlight=False, markup=False)
    else:
        said("Unchanged: the request was recorded like this already.", highlight=False)
    if doc["run_status"] == "completed":
        said(
            f"Note: district {doc['district_id']} was reset already for school year "
            f"{doc['school_year']}; the new date applies only if it is restored.",
            highlight=False,
            markup=False,
        )
    until = doc["accepted_until"]
    window = (
        f"{_day(doc['accepted_from'])} or later"
        if until is None
        else f"{_day(doc['accepted_from'])} to {_day(until)}"
    )
    if until is None or until >= doc["accepted_from"]:
        said(f"Dates the rules honour as asked: {window}.", highlight=False)


def render_notices(console: Console, doc: dict[str, Any]) -> None:
    """One line per district's notice, then what was sent and who cannot be reached."""
    from jobs.terminal import print_table_or_records

    columns = ["district", "reset date", "status", "to", "notice"]
    rows = [
        [
            n["district_id"],
            _day(n["effective_reset_date"]),
            n["schedule_status"],
            str(n["recipients"]),
            n["status"],
        ]
        for n in doc["notices"]
    ]
    print_table_or_records(
        console,
        f"Notices as of {_day(doc['as_of'])}, school year {doc['school_year']}, in {doc['out']}",
        columns,
        rows,
        right={"to"},
    )
    by_status = doc["totals"]["by_status"]
    figures = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in by_status.items())
    console.print(f"{len(doc['notices'])} notices: {figures or 'none'}.", highlight=False)
    if doc["unreachable"]:
        console.print(
            "Unreachable (no administrator with an email; reach them another way): "
            + ", ".join(doc["unreachable"])
            + ".",
            highlight=False,
            markup=False,
        )
    render_post_reset(console, doc)


def notice_warnings(doc: dict[str, Any]) -> list[str]:
    """One line each: an administrator skipped, a post-reset notice that must wait."""
    lines = [
        f"district {s['district_id']!r}: administrator {s['educator_id']!r} skipped, "
        f"{s['reason']}; correct the email in the roster"
        for s in doc.get("skipped_recipients", [])
    ]
    lines += [
        f"district {n['district_id']!r}: its post-reset notice waits: {n['reason']}"
        for n in doc.get("post_reset", [])
        if n["status"] == "no_certificate"
    ]
    return lines


def render_post_reset(console: Console, doc: dict[str, Any]) -> None:
    """The post-reset notices: one line per administrator (by educator id, never an address)."""
    from jobs.terminal import print_table_or_records

    notices = doc.get("post_reset", [])
    if not notices:
        return
    rows = [
        [
            n["district_id"],
            n["educator_id"] or "—",
            (n["certificate_sha256"] or "—")[:12],
            n["status"],
        ]
        for n in notices
    ]
    print_table_or_records(
        console,
        "Post-reset notices (certificate attached), one per administrator",
        ["district", "administrator", "certificate", "notice"],
        rows,
    )
    figures = doc["totals"]["post_reset"]["by_status"]
    said = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in figures.items())
    console.print(f"{len(notices)} post-reset notices: {said}.", highlight=False)
