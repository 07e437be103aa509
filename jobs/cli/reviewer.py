"""The plan and its review: who is due as of a day, and the approval a run needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs.cli.common import parse_date, print_commands, screen, settings_of
from jobs.cli.options import AsOfOpt, JsonOpt, PlanYearOpt
from jobs.output import emit


def plan(
    ctx: typer.Context,
    as_of: AsOfOpt,
    school_year: PlanYearOpt = None,
    as_json: JsonOpt = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Write the plan to approve (with its hash) to this file; it is kept in the "
            "ledger too, for reviewers in the web console.",
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(
            "--tolerance",
            help="How far a district's rows may move before the run, as a fraction "
            "(default 0.1); written into the plan, so it is approved with it.",
        ),
    ] = None,
) -> None:
    """Show who is due as of a date: districts, rows per table, blocked districts, issues."""
    from jobs.plan.approval import operator_name
    from jobs.plan.planner import check_tolerance, make_plan, write_plan
    from jobs.plan.preflight import writable_file
    from jobs.plan.stored import keep_plan_file
    from jobs.plan.view import render_plan

    settings = settings_of(ctx)
    day = parse_date(as_of, "--as-of")
    if out is not None:  # said now, not after the build
        writable_file(out, "--out")
    if tolerance is not None:
        check_tolerance(tolerance)
    the_plan = make_plan(settings, day, school_year, tolerance=tolerance)
    if out is not None:
        write_plan(the_plan, out)
        # kept in the ledger too, for the console's reviewers
        keep_plan_file(settings, out, operator_name())

    def render() -> None:
        render_plan(screen.out, the_plan)
        if out is None:
            return
        run_args = ["run", "--as-of", day.isoformat()]
        if the_plan["school_year"] != day.year:
            run_args += ["--school-year", str(the_plan["school_year"])]
        screen.out.print(
            f"Plan written to {out}. A reviewer approves it, then it runs:",
            highlight=False,
            soft_wrap=True,
        )
        print_commands(ctx, [["approve", str(out)], [*run_args, "--plan", str(out)]])

    emit(the_plan, as_json, render)


def approve(
    ctx: typer.Context,
    plan_file: Annotated[Path, typer.Argument(help="The plan file written by `plan --out`.")],
    by: Annotated[
        str | None,
        typer.Option("--by", help="Who approves. Default: EOY_OPERATOR, else the OS user."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Record in the ledger that you reviewed and approve this plan: `run --plan` needs it."""
    from jobs.plan.approval import approve_plan, render_approval

    doc = approve_plan(settings_of(ctx), plan_file, by)
    emit(doc, as_json, lambda: render_approval(screen.out, doc))
