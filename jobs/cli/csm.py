"""The CSM's commands: a district's requested reset date, and the notices to its administrators."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from jobs.cli.common import parse_date, screen, settings_of
from jobs.cli.options import AsOfOpt, DistrictOpt, JsonOpt, PlanYearOpt
from jobs.config import notice_sender
from jobs.output import emit


def request_date(
    ctx: typer.Context,
    district: DistrictOpt,
    requested: Annotated[
        str, typer.Option("--date", help="The reset date the district asks for, YYYY-MM-DD.")
    ],
    school_year: Annotated[
        int | None,
        typer.Option(
            "--school-year",
            help="School year by the calendar year it ends in (2022-23 is 2023). "
            "Default: the year of --date.",
        ),
    ] = None,
    school_year_end: Annotated[
        str | None,
        typer.Option("--school-year-end", help="The district's last school day (none: clear)."),
    ] = None,
    summer_session_end: Annotated[
        str | None,
        typer.Option("--summer-session-end", help="The last day of summer school (none: clear)."),
    ] = None,
    rostering_start: Annotated[
        str | None,
        typer.Option(
            "--rostering-start", help="When rostering for the new year starts (none: clear)."
        ),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Who records it. Default: EOY_OPERATOR, else the OS user."),
    ] = None,
    anyway: Annotated[
        bool,
        typer.Option("--anyway", help="Record a request the rules would not honour as asked."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """The CSM records a district's requested reset date; prints the date the plan will use.

    Dates not given keep what is recorded. A request the rules would not honour is refused
    (nothing recorded), naming the dates they would accept, unless --anyway."""
    from jobs.csm.requests import KEEP
    from jobs.csm.requests import request_date as record_request
    from jobs.csm.view import render_request
    from jobs.plan.approval import operator_name

    def optional(value: str | None, option: str) -> Any:
        if value is None:
            return KEEP
        return None if value.strip().lower() == "none" else parse_date(value, option)

    doc = record_request(
        settings_of(ctx),
        district,
        parse_date(requested, "--date"),
        school_year=school_year,
        school_year_end=optional(school_year_end, "--school-year-end"),
        summer_session_end=optional(summer_session_end, "--summer-session-end"),
        rostering_start=optional(rostering_start, "--rostering-start"),
        by=by.strip() if by and by.strip() else operator_name(),
        anyway=anyway,
    )
    emit(doc, as_json, lambda: render_request(screen.out, doc))


def notices(
    ctx: typer.Context,
    as_of: AsOfOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the .eml files.")],
    school_year: PlanYearOpt = None,
    send: Annotated[
        bool,
        typer.Option("--send", help="Deliver each notice over SMTP (once per reset date)."),
    ] = False,
    smtp_host: Annotated[str, typer.Option("--smtp-host", help="SMTP server.")] = "localhost",
    smtp_port: Annotated[
        int, typer.Option("--smtp-port", min=1, max=65535, help="SMTP port.")
    ] = 25,
    sender: Annotated[
        str | None,
        typer.Option("--from", help="Sender address (needed with --send). Env EOY_NOTICE_FROM."),
    ] = None,
    smtp_user: Annotated[
        str | None,
        typer.Option(
            "--smtp-user",
            help="Log in to the SMTP server as this user; the password comes from "
            "EOY_SMTP_PASSWORD (never an option), and only over STARTTLS.",
        ),
    ] = None,
    starttls: Annotated[
        bool,
        typer.Option(
            "--starttls",
            help="Require STARTTLS: refuse a server that does not offer it (without it, "
            "STARTTLS is used whenever the server offers it).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """One reset notice per district, to its administrators, as .eml files; --send sends them.

    A notice already sent for the same reset date is not sent again; a district with no
    administrator email is listed as unreachable, and an administrator whose email is not
    one address is skipped and named (the others still get theirs). After a district's reset
    completed, each administrator gets a post-reset notice with its certificate of
    disposition attached (signed with EOY_SIGNING_KEY), once."""
    from jobs.csm.mailer import NoticeError, smtp_server
    from jobs.csm.notices import make_notices
    from jobs.csm.view import notice_warnings, render_notices
    from jobs.plan.preflight import writable_folder

    day = parse_date(as_of, "--as-of")
    writable_folder(out, "--out")
    address = sender or notice_sender()
    if send and not address:
        raise NoticeError("--send needs --from ADDRESS (or EOY_NOTICE_FROM): the sender")
    server = smtp_server(smtp_host, smtp_port, smtp_user, starttls)
    doc = make_notices(
        settings_of(ctx),
        day,
        out,
        school_year=school_year,
        sender=address or "eoy-reset@localhost",
        smtp=server if send else None,
    )
    for line in notice_warnings(doc):
        screen.say("warning", line)
    emit(doc, as_json, lambda: render_notices(screen.out, doc))
