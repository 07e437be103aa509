"""The operator's commands: run the reset, see where it stands, restore a district, take up
the new year's roster and turn the syncs back on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from jobs.cli.common import at_terminal, parse_date, screen, settings_of
from jobs.cli.options import AsOfOpt, DistrictOpt, JsonOpt, LedgerYearOpt, PlanYearOpt, YesOpt
from jobs.output import CommandFailed, emit, status_document
from jobs.plan.preflight import known_school_year


def run(
    ctx: typer.Context,
    as_of: AsOfOpt,
    school_year: PlanYearOpt = None,
    district: Annotated[
        list[str] | None,
        typer.Option("--district", help="Only these districts (repeat the option)."),
    ] = None,
    plan_file: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="A plan from `plan --out`, approved with `approve`: run only what it says.",
        ),
    ] = None,
    yes: YesOpt = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            help="Worker processes resetting districts in parallel (PostgreSQL; DuckDB "
            "allows one writer process). Without workers, the runner passes two batches of "
            "districts at a time.",
        ),
    ] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Reset the due districts: pause syncs, export, verify, delete, check retention."""
    from jobs.reset.runner import render_summary, run_reset

    settings = settings_of(ctx)
    result = run_reset(
        settings,
        as_of=parse_date(as_of, "--as-of"),
        school_year=school_year,
        districts=district or None,
        plan_path=plan_file,
        yes=yes,
        dry_run=dry_run,
        workers=workers,
        interactive=at_terminal(as_json),
        show_progress=not as_json,
        console=screen.out,
    )
    if not district:  # a restored district waits to be named
        from jobs.reset.syncs import restored_districts

        result.restored = restored_districts(settings, result.school_year)
    problem = result.problem()

    def render() -> None:
        render_summary(screen.out, result)
        if result.approval:
            approval = result.approval
            screen.out.print(
                f"Ran plan {approval['plan_sha256'][:12]}, approved by {approval['approved_by']}.",
                highlight=False,
            )

    emit(result.document(), as_json, render, error=problem)
    if problem:
        raise CommandFailed(problem)


def status(ctx: typer.Context, school_year: LedgerYearOpt = None, as_json: JsonOpt = False) -> None:
    """Per district: last step, rows deleted, snapshot, errors."""
    from jobs.reset.runner import render_status, reset_status
    from jobs.snapshot.retention import mark_purged

    settings = settings_of(ctx)
    known_school_year(settings, school_year)
    doc = mark_purged(settings, reset_status(settings, school_year))
    emit(status_document(doc), as_json, lambda: render_status(screen.out, doc))


def resume_syncs(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Turn import syncs back on for districts whose new-year rostering is complete."""
    from jobs.reset.runner import resume_syncs as resume
    from jobs.reset.view import render_resume

    doc = resume(settings_of(ctx))
    emit(doc, as_json, lambda: render_resume(screen.out, doc))


def import_oneroster(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(help="Folder of the district's OneRoster 1.1 CSV bulk export.")
    ],
    district: DistrictOpt,
    school_year: Annotated[
        int, typer.Option("--school-year", help="The new school year the roster is for.")
    ],
    yes: YesOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Load a district's new-year roster (after its reset) and record rostering complete."""
    import sys

    from jobs.roster.load import confirm_at_terminal, render_import
    from jobs.roster.load import import_oneroster as load_roster

    doc = load_roster(
        settings_of(ctx),
        directory,
        district,
        school_year,
        yes=yes,
        confirm=confirm_at_terminal(screen.out) if at_terminal(as_json) else None,
        show_progress=not as_json and sys.stderr.isatty(),
    )
    emit(doc, as_json, lambda: render_import(screen.out, doc))


def restore(
    ctx: typer.Context,
    district: DistrictOpt,
    school_year: Annotated[
        int | None,
        typer.Option(
            "--school-year",
            help="School year of the reset to undo. Default: the district's latest reset in "
            "the ledger.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Put a district's deleted rows back from its verified snapshot.

    Its import syncs stay paused, and no plan or run resets it again by itself: only
    `run --district ID` does."""
    from jobs.reset.restore import latest_reset_year
    from jobs.reset.runner import restore_district

    settings = settings_of(ctx)
    known_school_year(settings, school_year)
    year = school_year if school_year is not None else latest_reset_year(settings, district)
    doc = restore_district(settings, district, year)
    if doc.get("warning"):
        screen.err.print(f"eoy-reset: warning: {doc['warning']}", highlight=False, soft_wrap=True)

    def render() -> None:
        which = "" if school_year is not None else ", its latest reset in the ledger"
        kept = sum(doc["rows_kept_for_other_owners"].values())
        beside = (
            f" {kept:,} rows of its snapshot were still there, kept for another district that"
            " owns them too: they stay as that district has them."
            if kept
            else ""
        )
        screen.out.print(
            f"Restored {doc['rows_restored']:,} rows of district {district} for school year "
            f"{year}{which}.{beside} Its import syncs stay paused; {doc['advice']}.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    emit(doc, as_json, render)
