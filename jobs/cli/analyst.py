"""What the analyst and the compliance officer read: the report, and the ready questions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs.cli.common import parse_date, screen, settings_of
from jobs.cli.options import JsonOpt, LedgerYearOpt
from jobs.output import emit
from jobs.plan.preflight import known_school_year


def report(
    ctx: typer.Context,
    html: Annotated[Path, typer.Option("--html", help="The HTML file to write.")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Report as of this day. Default: the school year's last reset date in the "
            "ledger, else today.",
        ),
    ] = None,
    school_year: LedgerYearOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the compliance report of a school year: one self-contained HTML file."""
    from jobs.report.built import report_day
    from jobs.report.html import write_report

    settings = settings_of(ctx)
    day = parse_date(as_of, "--as-of") if as_of else None
    known_school_year(settings, school_year)
    chosen = report_day(settings, day, school_year)
    doc = write_report(settings, html, chosen.as_of, chosen.school_year)

    def render() -> None:
        figures = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in doc["counts"].items())
        why = f" ({chosen.why})" if chosen.why else ""
        screen.out.print(
            f"Report for school year {doc['school_year']} as of {chosen.as_of}{why} written to "
            f"{html}: {figures}.",
            highlight=False,
        )

    emit(doc, as_json, render)


def query(
    ctx: typer.Context,
    name: Annotated[
        str | None,
        typer.Argument(help="An analysis of analyses/, by file name without .sql; none: list."),
    ] = None,
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var",
            help="A dbt var NAME=VALUE (repeat): as_of_date (default today), school_year "
            "(default the year of as_of_date).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a ready question of analyses/ on the warehouse and print its rows."""
    from jobs.report.query import analyses, cell, parse_vars, run_query
    from jobs.terminal import print_table_or_records

    if name is None:
        known = analyses()

        def listed() -> None:
            for key, about in known.items():
                screen.out.print(f"[bold]{key}[/bold]: {about}", highlight=False)

        doc = {"analyses": [{"name": k, "description": v} for k, v in known.items()]}
        emit(doc, as_json, listed)
        return
    result = run_query(settings_of(ctx), name, parse_vars(var or []))

    def render() -> None:
        columns, rows = result["columns"], result["rows"]
        numeric = {c for c in columns if any(isinstance(r.get(c), int | float) for r in rows)}
        given = ", ".join(f"{k}={v}" for k, v in result["vars"].items())
        print_table_or_records(
            screen.out,
            f"{name} ({len(rows)} rows{'; ' + given if given else ''})",
            columns,
            [[cell(r.get(c), c) for c in columns] for r in rows],
            right=numeric,
        )

    emit(result, as_json, render)
