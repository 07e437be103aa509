"""`eoy-reset`: the operator's command line (SPEC §8).

Thin on purpose: each command parses its options, calls one function of the module that
does the work, and prints the result (a rich table, or one JSON document with --json).
"""

from __future__ import annotations

import functools
import os
import re
import sys
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from jobs import __version__
from jobs.config import ConfigError, Settings, scrub
from jobs.errors import EoyError
from jobs.output import (
    CommandFailed,
    emit_failure,
    emit_json,
    json_requested,
    run_document,
    status_document,
)

try:  # typer vendors its own copy of click
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click  # type: ignore[no-redef]

app = typer.Typer(
    name="eoy-reset",
    help=(
        "End-of-year student data reset: plan who is due, snapshot their student data, "
        "delete it, check what must be kept, and record every step in a ledger."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # click's own help: it wraps the text beside an option and never cuts an option name
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

console = Console()
err_console = Console(stderr=True)

TargetOpt = Annotated[
    str | None,
    typer.Option(
        "--target", help="Warehouse: duckdb (embedded, default) or postgres. Env EOY_TARGET."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
AsOfOpt = Annotated[
    str, typer.Option("--as-of", help="The day to plan for, YYYY-MM-DD (the reset date).")
]
YearOpt = Annotated[
    int | None,
    typer.Option(
        "--school-year",
        help="School year by the calendar year it ends in (2022-23 is 2023). "
        "Default: the year of --as-of.",
    ),
]


LedgerYearOpt = Annotated[
    int | None,
    typer.Option(
        "--school-year",
        help="School year by the calendar year it ends in (2022-23 is 2023). "
        "Default: the latest school year in the ledger, else this year.",
    ),
]


def show_version(value: bool) -> None:
    if value:
        console.print(f"eoy-reset {__version__}", highlight=False)
        raise typer.Exit(0)


def settings_of(ctx: typer.Context) -> Settings:
    settings: Settings = ctx.obj
    return settings


def parse_date(value: str, option: str) -> date:
    text = value.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise ConfigError(
                f"{option} {text}: no such day in the calendar; give a real day as YYYY-MM-DD"
            ) from None
        raise ConfigError(f"{option} {value!r} is not a date: use YYYY-MM-DD") from None


def known_school_year(settings: Settings, year: int | None) -> None:
    """Refuse a school year with no reset policy and no run in the ledger (like `plan`)."""
    from jobs.plan.dbt import policy_years
    from jobs.warehouse.connection import connect

    if year is None or year in policy_years():
        return
    with connect(settings) as wh:
        if wh.scalar("select count(*) from eoy_runner.reset_runs where school_year = %s", [year]):
            return
    hint = " (2022-23 is 2023)" if year < 1000 else ""
    raise ConfigError(
        f"no reset policy for school year {year} and no reset of it in the ledger: give the "
        f"calendar year the school year ends in{hint}, or add a row to seeds/reset_policy.csv"
    )


def given_options(ctx: typer.Context) -> list[str]:
    """The global options this command was given on its command line, as a command to type
    next needs them (a DSN without its password)."""
    from jobs.config import redact_dsn

    parent = ctx.parent
    options: list[str] = []
    for param in parent.command.params if parent is not None else []:
        name = param.name or ""
        if not isinstance(param, typer.core.TyperOption) or param.is_flag or parent is None:
            continue
        if parent.get_parameter_source(name) != click.core.ParameterSource.COMMANDLINE:
            continue
        value = parent.params[name]
        options += [param.opts[0], redact_dsn(value) if name == "pg_dsn" else str(value)]
    return options


def print_commands(ctx: typer.Context, commands: list[list[str]]) -> None:
    """Commands to type next, one a line, whole: a terminal that wraps one still copies it
    as one line."""
    from jobs.output import command_line

    options = given_options(ctx)
    for args in commands:
        console.print(f"  {command_line(args, options)}", highlight=False, soft_wrap=True)


@app.callback()
def global_options(
    ctx: typer.Context,
    target: TargetOpt = None,
    duckdb_path: Annotated[
        Path | None,
        typer.Option(
            "--duckdb-path",
            help="DuckDB warehouse file. Env EOY_DUCKDB_PATH. Default .eoy/warehouse.duckdb.",
        ),
    ] = None,
    pg_dsn: Annotated[
        str | None,
        typer.Option("--pg-dsn", help="postgresql://user:pw@host:port/db. Env EOY_PG_DSN."),
    ] = None,
    snapshot_root: Annotated[
        str | None,
        typer.Option(
            "--snapshot-root",
            help="Where snapshots are kept: a folder, or s3://bucket/prefix (endpoint, region "
            "and credentials from the AWS_* variables). Env EOY_SNAPSHOT_ROOT. "
            "Default snapshots/.",
        ),
    ] = None,
    object_lock_mode: Annotated[
        str | None,
        typer.Option(
            "--object-lock-mode",
            help="On an s3:// bucket with Object Lock: COMPLIANCE (default) or GOVERNANCE "
            "retention of each snapshot object. Env EOY_OBJECT_LOCK_MODE.",
        ),
    ] = None,
    retention_days: Annotated[
        int | None,
        typer.Option(
            "--retention-days",
            min=0,
            help="On an s3:// bucket with Object Lock: days each snapshot object is retained "
            "(its purge date). Env EOY_RETENTION_DAYS. Default 90.",
        ),
    ] = None,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            "--project-dir",
            help="The root dbt project, whose sources declare the reset's scope: this repo, "
            "or a vendor's project that installs eoy-reset as a dbt package. "
            "Env EOY_PROJECT_DIR.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=show_version
        ),
    ] = False,
) -> None:
    ctx.obj = Settings.from_env(
        target=target,
        duckdb_path=duckdb_path,
        pg_dsn=pg_dsn,
        snapshot_root=snapshot_root,
        object_lock_mode=object_lock_mode,
        retention_days=retention_days,
        project_dir=project_dir,
    )
    _vendor_scope(ctx, ctx.obj)


# Commands that never read a scope's tables (they make the warehouse, keys or accounts).
UNSCOPED = {"init", "generate", "demo", "keygen", "verify-certificate", "users", "approve"}


def _vendor_scope(ctx: typer.Context, settings: Settings) -> None:
    """In a vendor's project, the declared scope, loaded and checked before the command
    reads a table (this repo's own is the demo's, which `plan` and `run` check themselves)."""
    if not settings.is_vendor_project or ctx.invoked_subcommand in UNSCOPED:
        return
    if ctx.resilient_parsing or any(a in ("--help", "-h") for a in sys.argv[1:]):
        return
    from jobs.scope import load_scope
    from jobs.warehouse.connection import connect

    with connect(settings) as wh:
        load_scope(settings, wh)


# ---------------------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------------------
@app.command()
def init(
    ctx: typer.Context,
    roles: Annotated[
        bool,
        typer.Option(
            "--roles",
            help="PostgreSQL only: also create the least-privilege roles eoy_runner, "
            "eoy_dbt and eoy_analyst.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create schemas app and eoy_runner (idempotent: safe to run again)."""
    from jobs.warehouse.connection import connect
    from jobs.warehouse.schema import init_warehouse

    settings = settings_of(ctx)
    if roles and settings.target != "postgres":
        raise ConfigError("--roles needs --target postgres: DuckDB has no roles")
    with connect(settings, create=True, require_init=False) as wh:
        from jobs.warehouse.roles import create_roles, roles_set_up

        statements = init_warehouse(wh)
        created_roles: list[str] = []
        if roles or roles_set_up(wh):  # again: what init added goes to its role
            created_roles = create_roles(wh)
    if as_json:
        emit_json(
            {
                "warehouse": settings.describe(),
                "statements": len(statements),
                "roles": created_roles,
            }
        )
    else:
        console.print(f"Initialised {settings.describe()}: schemas app and eoy_runner ready.")
        if created_roles:
            console.print(f"Roles: {', '.join(created_roles)}")


@app.command()
def generate(
    ctx: typer.Context,
    districts: Annotated[int, typer.Option("--districts", min=1, help="How many districts.")],
    seed: Annotated[int, typer.Option("--seed", help="Random seed: same seed, same data.")],
    students_per_district: Annotated[
        int | None,
        typer.Option(
            "--students-per-district",
            min=1,
            help="Fix every district's size instead of the long-tailed default.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load deterministic synthetic districts into schema app (for demos, tests, benchmarks)."""
    from jobs.synthetic.generate import generate_districts
    from jobs.warehouse.connection import connect

    with connect(settings_of(ctx)) as wh:
        counts = generate_districts(
            wh,
            districts=districts,
            seed=seed,
            students_per_district=students_per_district,
            show_progress=not as_json,
        )
    if as_json:
        emit_json({"rows": counts})
    else:
        from jobs.synthetic.generate import render_counts

        render_counts(console, counts)


# ---------------------------------------------------------------------------------------
# plan and run
# ---------------------------------------------------------------------------------------
@app.command()
def plan(
    ctx: typer.Context,
    as_of: AsOfOpt,
    school_year: YearOpt = None,
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
    if as_json:
        emit_json(the_plan)
    else:
        render_plan(console, the_plan)
        if out is not None:
            run_args = ["run", "--as-of", day.isoformat()]
            if the_plan["school_year"] != day.year:
                run_args += ["--school-year", str(the_plan["school_year"])]
            console.print(
                f"Plan written to {out}. A reviewer approves it, then it runs:",
                highlight=False,
                soft_wrap=True,
            )
            print_commands(ctx, [["approve", str(out)], [*run_args, "--plan", str(out)]])


@app.command()
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
    if as_json:
        emit_json(doc)
    else:
        render_approval(console, doc)


@app.command("request-date")
def request_date_cmd(
    ctx: typer.Context,
    district: Annotated[str, typer.Option("--district", help="District id.")],
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
    from jobs.csm.requests import KEEP, request_date
    from jobs.csm.view import render_request
    from jobs.plan.approval import operator_name

    def optional(value: str | None, option: str) -> Any:
        if value is None:
            return KEEP
        return None if value.strip().lower() == "none" else parse_date(value, option)

    doc = request_date(
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
    if as_json:
        emit_json(doc)
    else:
        render_request(console, doc)


@app.command()
def run(
    ctx: typer.Context,
    as_of: AsOfOpt,
    school_year: YearOpt = None,
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
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
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
        interactive=sys.stdin.isatty() and not as_json,
        show_progress=not as_json,
        console=console,
    )
    if not district:  # a restored district waits to be named
        from jobs.reset.syncs import restored_districts

        result["restored"] = restored_districts(settings, result["school_year"])
    problem = run_problem(result)
    if as_json:
        emit_json(run_document(result), error=problem)
    else:
        render_summary(console, result)
        if result.get("approval"):
            approval = result["approval"]
            console.print(
                f"Ran plan {approval['plan_sha256'][:12]}, approved by {approval['approved_by']}.",
                highlight=False,
            )
    if problem:
        raise CommandFailed(problem)


def run_problem(result: dict[str, Any]) -> str | None:
    """The first reason the run did not do all it was asked, or None.

    A named district that cannot run (blocked, not due) is a failure; one already reset is
    not, so the same command run again to finish a run still exits 0.
    """
    stopped = [d for d in result["districts"] if d["status"] in ("failed", "refused")]
    stopped += [
        {**n, "status": "not run", "error": n["reason"]}
        for n in result.get("not_due", [])
        if not str(n["reason"]).startswith("already reset")
    ]
    if not stopped:
        return None
    first = stopped[0]
    more = f" (and {len(stopped) - 1} more district(s))" if len(stopped) > 1 else ""
    return f"district {first['district_id']!r} {first['status']}: {first['error']}{more}"


@app.command()
def status(ctx: typer.Context, school_year: LedgerYearOpt = None, as_json: JsonOpt = False) -> None:
    """Per district: last step, rows deleted, snapshot, errors."""
    from jobs.reset.runner import render_status, reset_status
    from jobs.snapshot.retention import mark_purged

    settings = settings_of(ctx)
    known_school_year(settings, school_year)
    doc = mark_purged(settings, reset_status(settings, school_year))
    if as_json:
        emit_json(status_document(doc))
    else:
        render_status(console, doc)


@app.command("resume-syncs")
def resume_syncs_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Turn import syncs back on for districts whose new-year rostering is complete."""
    from jobs.reset.runner import resume_syncs
    from jobs.reset.view import render_resume

    doc = resume_syncs(settings_of(ctx))
    if as_json:
        emit_json(doc)
    else:
        render_resume(console, doc)


@app.command("import-oneroster")
def import_oneroster_cmd(
    ctx: typer.Context,
    directory: Annotated[
        Path, typer.Argument(help="Folder of the district's OneRoster 1.1 CSV bulk export.")
    ],
    district: Annotated[str, typer.Option("--district", help="District id.")],
    school_year: Annotated[
        int, typer.Option("--school-year", help="The new school year the roster is for.")
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Load a district's new-year roster (after its reset) and record rostering complete."""
    from jobs.roster.load import confirm_at_terminal, import_oneroster, render_import

    interactive = sys.stdin.isatty() and not as_json
    doc = import_oneroster(
        settings_of(ctx),
        directory,
        district,
        school_year,
        yes=yes,
        confirm=confirm_at_terminal(console) if interactive else None,
        show_progress=not as_json and sys.stderr.isatty(),
    )
    if as_json:
        emit_json(doc)
    else:
        render_import(console, doc)


@app.command()
def restore(
    ctx: typer.Context,
    district: Annotated[str, typer.Option("--district", help="District id.")],
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
        err_console.print(f"eoy-reset: warning: {doc['warning']}", highlight=False, soft_wrap=True)
    if as_json:
        emit_json(doc)
    else:
        which = "" if school_year is not None else ", its latest reset in the ledger"
        console.print(
            f"Restored {doc['rows_restored']:,} rows of district {district} for school year "
            f"{year}{which}. Its import syncs stay paused; {doc['advice']}.",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


# ---------------------------------------------------------------------------------------
# snapshots
# ---------------------------------------------------------------------------------------
@app.command("verify-snapshot")
def verify_snapshot_cmd(
    ctx: typer.Context,
    directory: Annotated[
        str, typer.Argument(help="A district's snapshot folder, or its s3://bucket/… prefix.")
    ],
    against_source: Annotated[
        bool,
        typer.Option("--against-source", help="Also compare with the rows in the warehouse."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-read every file of a snapshot and check it against its manifest."""
    from jobs.snapshot.layout import MANIFEST, SnapshotError
    from jobs.snapshot.store import is_object_root, store_for
    from jobs.snapshot.verify import render_verify, verify_snapshot

    settings = settings_of(ctx)
    if is_object_root(directory):
        directory = directory.rstrip("/")
        store = store_for(directory, settings)
        if store.manifest_bytes(directory) is None:
            raise SnapshotError(
                f"{directory} is not a complete snapshot: it has no {MANIFEST} (an unfinished "
                "snapshot, or another prefix); give a district's prefix, like "
                "s3://bucket/snapshots/2023/d00042"
            )
        location: str | Path = directory
    else:
        folder = Path(directory)
        if not folder.is_dir():
            raise SnapshotError(
                f"{directory} is not a folder: give a district's snapshot folder, "
                "like snapshots/2023/d00042"
            )
        if not (folder / MANIFEST).is_file():
            raise SnapshotError(
                f"{directory} is not a snapshot folder: it has no {MANIFEST} (an unfinished "
                "snapshot, or another folder); give a district's folder, like "
                "snapshots/2023/d00042"
            )
        location = folder
    result = verify_snapshot(location, settings=settings if against_source else None)
    problem = None
    if not result["ok"]:
        problem = f"snapshot {directory} failed verification: {result['problems'][0]}"
    if as_json:
        emit_json(result, error=problem)
    else:
        render_verify(console, result)
    if problem:
        raise CommandFailed(problem)


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    district: Annotated[str, typer.Option("--district", help="District id.")],
    school_year: Annotated[int, typer.Option("--school-year", help="School year.")],
    fmt: Annotated[
        str, typer.Option("--format", help="csv (zipped, for people) or parquet.")
    ] = "csv",
    out: Annotated[Path, typer.Option("--out", help="Folder to write into.")] = Path("."),
    force: Annotated[
        bool, typer.Option("--force", help="Replace a copy already in the --out folder.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """A zip of a district's data for the district: from the warehouse, or after its reset from
    its snapshot parts. An existing copy is kept unless --force."""
    from jobs.plan.preflight import writable_folder
    from jobs.snapshot.copy import copy_path, export_for_district
    from jobs.snapshot.retention import purged_on
    from jobs.snapshot.source import ExportError

    settings = settings_of(ctx)
    writable_folder(out, "--out")
    existing = copy_path(out, district, school_year, fmt)
    if existing.exists() and not force:
        raise ExportError(
            f"{existing} exists already: pass --force to replace it, or choose another --out"
        )
    try:
        doc = export_for_district(settings, district, school_year, fmt, out)
    except ExportError:
        purged = purged_on(settings, district, school_year)
        if purged is None:
            raise
        raise ExportError(
            f"the snapshot of district {district!r} for school year {school_year} was purged "
            f"on {purged:%Y-%m-%d}: no copy of its deleted rows is left to export"
        ) from None
    if as_json:
        emit_json(doc)
    else:
        console.print(f"Wrote {doc['path']} ({doc['source']}).")


@app.command("purge-snapshots")
def purge_snapshots_cmd(
    ctx: typer.Context,
    older_than: Annotated[
        int, typer.Option("--older-than", min=0, help="Days past which a snapshot goes.")
    ] = 90,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be purged; remove nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove snapshots past the recovery window, except districts under a legal hold.

    Lists the snapshots that would go, then asks for a typed confirmation at a terminal;
    elsewhere it needs --yes. Each purge is recorded: status, export and report say when.
    """
    from jobs.reset.view import purge_certificate_note, render_purge, render_purge_list
    from jobs.snapshot.layout import SnapshotError
    from jobs.snapshot.retention import purge_snapshots

    interactive = sys.stdin.isatty() and not as_json
    if not (dry_run or yes or interactive):
        raise SnapshotError(
            "refusing to purge snapshots without --yes or a confirmation at a terminal: "
            "list them with --dry-run, then purge with --yes"
        )

    def confirm(going: list[dict[str, Any]]) -> None:
        render_purge_list(console, going)
        n = len(going)
        answer = typer.prompt(
            f"Type {n} to purge {'them' if n != 1 else 'it'}", default="", show_default=False
        )
        if answer.strip() != str(n):
            raise SnapshotError("confirmation did not match: no snapshot was purged")

    doc = purge_snapshots(
        settings_of(ctx),
        older_than_days=older_than,
        dry_run=dry_run,
        confirm=None if yes else confirm,
    )
    doc["totals"] = purge_totals(doc)
    note = purge_certificate_note(doc)
    if note:
        err_console.print(f"eoy-reset: note: {note}", highlight=False, markup=False, soft_wrap=True)
    if as_json:
        emit_json(doc)
    else:
        render_purge(console, doc)


def purge_totals(doc: dict[str, Any]) -> dict[str, Any]:
    from jobs.output import count_by, totals

    going = doc["purged"] + doc["would_purge"]
    return totals(
        len({e["district_id"] for e in going}),
        sum(int(e["rows"]) for e in going),
        count_by(doc["snapshots"]),
        snapshots=len(going),
    )


@app.command()
def hold(
    ctx: typer.Context,
    district: Annotated[str, typer.Option("--district", help="District id.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (no student PII).")] = None,
) -> None:
    """Put a district's snapshots under legal hold: purge-snapshots leaves them."""
    from jobs.snapshot.retention import set_hold

    doc = set_hold(settings_of(ctx), district, held=True, reason=reason)
    again = " (it was already)" if doc["was_held"] else ""
    console.print(f"District {district} is under legal hold{again}.", highlight=False)


@app.command()
def release(
    ctx: typer.Context,
    district: Annotated[str, typer.Option("--district", help="District id.")],
) -> None:
    """Lift a district's legal hold."""
    from jobs.snapshot.retention import set_hold

    doc = set_hold(settings_of(ctx), district, held=False)
    if doc["was_held"]:
        console.print(f"District {district} is no longer under legal hold.", highlight=False)
    else:
        console.print(
            f"District {district} was not under legal hold: nothing to release.", highlight=False
        )


@app.command()
def share(
    ctx: typer.Context,
    district: Annotated[str, typer.Option("--district", help="District id.")],
    school_year: Annotated[int, typer.Option("--school-year", help="School year.")],
    expires: Annotated[
        str, typer.Option("--expires", help="How long the link works: 7d, 12h, 30m (up to 7d).")
    ] = "7d",
    fmt: Annotated[
        str, typer.Option("--format", help="csv (zipped, for people) or parquet.")
    ] = "csv",
    by: Annotated[
        str | None, typer.Option("--by", help="Who shares it (default: the login name).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The district's copy next to its snapshot in the object store, and a link to download it
    that expires. The ledger records who shared what and until when (never the link)."""
    from jobs.snapshot.share import parse_expiry, share_copy

    doc = share_copy(
        settings_of(ctx), district, school_year, fmt, parse_expiry(expires), shared_by=by
    )
    if as_json:
        emit_json(doc)
        return
    console.print(
        f"District {district}, school year {school_year}: {doc['copy']} "
        f"({doc['format']}, {doc['rows_total']:,} rows). The link works until "
        f"{doc['expires_at']} UTC:",
        highlight=False,
    )
    print(doc["link"])


# ---------------------------------------------------------------------------------------
# audit, demo
# ---------------------------------------------------------------------------------------
@app.command()
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
    if as_json:
        emit_json(doc)
    else:
        figures = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in doc["counts"].items())
        why = f" ({chosen.why})" if chosen.why else ""
        console.print(
            f"Report for school year {doc['school_year']} as of {chosen.as_of}{why} written to "
            f"{html}: {figures}.",
            highlight=False,
        )


@app.command()
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
    from jobs.tables import print_table_or_records

    if name is None:
        known = analyses()
        if as_json:
            emit_json({"analyses": [{"name": k, "description": v} for k, v in known.items()]})
            return
        for key, about in known.items():
            console.print(f"[bold]{key}[/bold]: {about}", highlight=False)
        return
    doc = run_query(settings_of(ctx), name, parse_vars(var or []))
    if as_json:
        emit_json(doc)
        return
    numeric = {
        c for c in doc["columns"] if any(isinstance(r.get(c), int | float) for r in doc["rows"])
    }
    given = ", ".join(f"{k}={v}" for k, v in doc["vars"].items())
    print_table_or_records(
        console,
        f"{name} ({len(doc['rows'])} rows{'; ' + given if given else ''})",
        doc["columns"],
        [[cell(r.get(c), c) for c in doc["columns"]] for r in doc["rows"]],
        right=numeric,
    )


@app.command()
def notices(
    ctx: typer.Context,
    as_of: AsOfOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for the .eml files.")],
    school_year: YearOpt = None,
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
    address = sender or os.environ.get("EOY_NOTICE_FROM", "").strip()
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
        err_console.print(
            f"eoy-reset: warning: {line}", highlight=False, markup=False, soft_wrap=True
        )
    if as_json:
        emit_json(doc)
    else:
        render_notices(console, doc)


@app.command()
def demo(ctx: typer.Context) -> None:
    """The whole reset on a fresh embedded DuckDB, in about a minute."""
    from jobs.demo import run_demo

    run_demo(settings_of(ctx), console)


# ---------------------------------------------------------------------------------------
# the web console (SPEC §8b): serve, users
# ---------------------------------------------------------------------------------------
@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (behind a proxy: 127.0.0.1).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8080,
) -> None:
    """The web console: district self-service, the CSM's desk, plan approval, the runs.

    Needs EOY_WEB_SECRET (the key of its sessions) and accounts from `users add`. It opens
    the warehouse per request, so commands run beside it, also on DuckDB."""
    from jobs.web.server import serve_console

    serve_console(
        settings_of(ctx),
        host,
        port,
        lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True),
    )


users_app = typer.Typer(
    help="The web console's accounts: add, list, disable.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(users_app, name="users")


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user name to sign in with.")],
    role: Annotated[str, typer.Option("--role", help="csm, district_admin, reviewer or operator.")],
    district: Annotated[
        str | None, typer.Option("--district", help="A district_admin's district id.")
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password from standard input."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add an account of the web console; its password is read from standard input."""
    from jobs.plan.approval import operator_name
    from jobs.web.accounts import add_user, read_password

    account = add_user(
        settings_of(ctx),
        name,
        role.strip().lower(),
        district,
        read_password(password_stdin),
        by=operator_name(),
    )
    if as_json:
        emit_json(asdict(account))
    else:
        where = f" of district {account.district_id}" if account.district_id else ""
        console.print(f"Added {account.username}: {account.role}{where}.", markup=False)


@users_app.command("list")
def users_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The console's accounts: role, district, when added and by whom, disabled, last sign-in."""
    from jobs.tables import print_table_or_records
    from jobs.web.accounts import list_users

    accounts = list_users(settings_of(ctx))
    if as_json:
        emit_json({"users": [asdict(a) for a in accounts]})
        return

    def at(value: Any) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else ""

    print_table_or_records(
        console,
        f"{len(accounts)} console accounts",
        ["user", "role", "district", "added", "by", "disabled", "last sign-in"],
        [
            [
                a.username,
                a.role,
                a.district_id or "",
                at(a.created_at),
                a.created_by,
                at(a.disabled_at),
                at(a.last_login_at),
            ]
            for a in accounts
        ],
    )


@users_app.command("disable")
def users_disable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user name.")],
    as_json: JsonOpt = False,
) -> None:
    """Disable an account: it can no longer sign in, and its open sessions end at once."""
    from jobs.plan.approval import operator_name
    from jobs.web.accounts import disable_user

    account = disable_user(settings_of(ctx), name, by=operator_name())
    if as_json:
        emit_json(asdict(account))
    else:
        console.print(f"Disabled {account.username}: its sessions have ended.", markup=False)


# ---------------------------------------------------------------------------------------
# certificates: keygen, certificate, verify-certificate
# ---------------------------------------------------------------------------------------
@app.command()
def keygen(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Folder for signing.key and signing.pub.")],
    as_json: JsonOpt = False,
) -> None:
    """Make the Ed25519 key pair that signs certificates: signing.key (mode 0600: keep it
    secret, point EOY_SIGNING_KEY at it) and signing.pub (give it to districts to check
    their certificates). An existing key is never replaced."""
    from jobs.snapshot.signing import KEY_ENV, generate_keypair

    pair = generate_keypair(out)
    if as_json:
        emit_json(
            {
                "private_key_path": pair.private_key,
                "public_key_path": pair.public_key,
                "fingerprint_sha256": pair.fingerprint,
            }
        )
        return
    console.print(
        f"Wrote {pair.private_key} (keep it secret) and {pair.public_key} (give it to "
        f"districts). Key fingerprint SHA-256 {pair.fingerprint}. Sign with it: "
        f"export {KEY_ENV}={pair.private_key}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def certificate(
    ctx: typer.Context,
    district: Annotated[str, typer.Option("--district", help="District id.")],
    school_year: Annotated[int, typer.Option("--school-year", help="School year.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for the certificate's files.")],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="disposition (the data was deleted; default) or copy_destroyed (its "
            "snapshot was purged since).",
        ),
    ] = "disposition",
    as_json: JsonOpt = False,
) -> None:
    """A signed certificate for the district: certificate.json (canonical JSON),
    certificate.json.sig (its detached Ed25519 signature) and certificate.html.

    Issued from the ledger and checked against the snapshot's manifests, signed with the key
    EOY_SIGNING_KEY names and kept in the ledger; asked again for the same facts, the same
    certificate is written. A restored district gets none."""
    from dataclasses import asdict

    from jobs.snapshot.certificate import TITLES, certify

    written = certify(settings_of(ctx), district, school_year, kind, out)
    if as_json:
        emit_json(asdict(written))
        return
    again = " (issued before for the same facts)" if written.reused else ""
    console.print(
        f"{TITLES[written.kind]}, district {district}, school year {school_year}{again}: "
        f"{written.json_path.parent}/ certificate.json, certificate.json.sig, "
        f"certificate.html. Issued {written.issued_at}, key SHA-256 {written.key_fingerprint}.",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )


@app.command("verify-certificate")
def verify_certificate_cmd(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A certificate.json.")],
    public_key: Annotated[
        Path, typer.Option("--public-key", help="The signer's signing.pub (PEM).")
    ],
    signature: Annotated[
        Path | None,
        typer.Option("--signature", help="The detached signature. Default: FILE.sig."),
    ] = None,
    district: Annotated[
        str | None, typer.Option("--district", help="It must be this district's.")
    ] = None,
    school_year: Annotated[
        int | None, typer.Option("--school-year", help="It must be of this school year.")
    ] = None,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="Check the signature only; reach no warehouse."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check a certificate: prints `valid`, or exits 1 with one line saying why. The
    signature needs only the file and the public key; where the warehouse and the snapshot
    can be reached, they must still say what the certificate says."""
    from dataclasses import asdict

    from jobs.snapshot.certificate_check import verify_certificate

    verdict = verify_certificate(
        file,
        public_key,
        None if offline else settings_of(ctx),
        signature=signature,
        district_id=district,
        school_year=school_year,
    )
    problem = None if verdict.valid else f"invalid: {verdict.reason}"
    if as_json:
        emit_json(asdict(verdict), error=problem)
    elif verdict.valid:
        print("valid")
    for what, why in verdict.not_checked.items() if verdict.valid else ():
        err_console.print(
            f"eoy-reset: note: not compared with the {what}: {why}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if problem:
        raise CommandFailed(problem)


GLOBAL_OPTIONS = (
    "--target",
    "--duckdb-path",
    "--pg-dsn",
    "--snapshot-root",
    "--object-lock-mode",
    "--retention-days",
)


def usage_line(exc: click.exceptions.UsageError) -> str:
    """A usage error in one line, with the fix."""
    ctx = exc.ctx
    command = ctx.info_name if ctx is not None and ctx.parent is not None else None
    helper = f"`eoy-reset {command} --help`" if command else "`eoy-reset --help`"
    if isinstance(exc, click.exceptions.NoSuchOption):
        option = exc.option_name
        if option in GLOBAL_OPTIONS and command:
            return (
                f"{option} is a global option: put it before the command, "
                f"`eoy-reset {option} VALUE {command} …`"
            )
        return f"{command or 'eoy-reset'} has no option {option}: see {helper}"
    text = " ".join(exc.format_message().split())
    param = getattr(exc, "param", None)
    given_year = _option_value("--school-year")
    if param is not None and "--school-year" in getattr(param, "opts", []) and given_year:
        found = re.search(r"^(\d{4})[-/](\d{2,4})$", given_year)
        if found:
            start, end = found.group(1), found.group(2)
            year = int(start[:2] + end[-2:]) if len(end) == 2 else int(end)
            year += 100 if year <= int(start) else 0
            return (
                f"--school-year {start}-{end}: use {year}, the year the school year ends "
                f"(--school-year {year})"
            )
        return (
            f"--school-year {given_year!r} is not a year: give the calendar year the school year "
            "ends in, like 2023 for 2022-23"
        )
    return f"{text.rstrip('.')}: see {helper}"


def _option_value(option: str) -> str | None:
    """The value given to an option on the command line (for a usage error's hint)."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == option and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def _fail(message: str, code: int) -> None:
    print(f"eoy-reset: {message}", file=sys.stderr)
    if json_requested():
        emit_failure(message)
    sys.exit(code)


@functools.cache
def _command() -> click.Command:
    """The click command typer makes of `app`: made once per process, however many commands
    the process runs (a tenth of a second each time)."""
    return typer.main.get_command(app)


def main() -> None:
    """One command, from sys.argv and the environment as they are now."""
    from jobs.faults import ignored_switches_warning
    from jobs.output import INTERRUPTED, interrupted, interrupts, new_command

    global console, err_console
    # the consoles take their width (COLUMNS) and colours from the environment of this command
    console, err_console = Console(), Console(stderr=True)
    new_command()
    warning = ignored_switches_warning()
    if warning:
        print(warning, file=sys.stderr)
    try:
        with interrupts():
            try:
                rv = _command()(standalone_mode=False, prog_name="eoy-reset")
            finally:  # whatever dbt, a driver or typer made of Ctrl-C, it says this
                if interrupted():
                    _fail(INTERRUPTED, 130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.UsageError as exc:
        _fail(scrub(usage_line(exc)), exc.exit_code)
    except click.exceptions.ClickException as exc:
        _fail(scrub(" ".join(exc.format_message().split())), exc.exit_code)
    except typer.Abort:
        _fail("aborted: nothing more was done", 130)
    except KeyboardInterrupt:
        _fail(INTERRUPTED, 130)
    except EoyError as exc:
        _fail(scrub(str(exc)), exc.exit_code)
    except Exception as exc:
        if os.environ.get("EOY_DEBUG"):
            raise
        first = scrub((str(exc).strip().splitlines() or [""])[0])
        _fail(f"unexpected {type(exc).__name__}: {first} (EOY_DEBUG=1 shows more)", 1)
    sys.exit(rv if isinstance(rv, int) else 0)
