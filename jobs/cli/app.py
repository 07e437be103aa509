"""The `eoy-reset` command: its global options, and every command in the order `--help` lists
them. Each command lives in the module of who uses it; the work, in the stage packages."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from jobs import __version__
from jobs.cli import analyst, certificates, console, csm, operator, reviewer, setup, snapshots
from jobs.cli.common import screen
from jobs.config import Settings

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}

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
    context_settings=HELP_OPTIONS,
)

# the options before the command, as a usage error names them
GLOBAL_OPTIONS = (
    "--target",
    "--duckdb-path",
    "--pg-dsn",
    "--snapshot-root",
    "--object-lock-mode",
    "--retention-days",
)


def show_version(value: bool) -> None:
    if value:
        screen.out.print(f"eoy-reset {__version__}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def global_options(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="Warehouse: duckdb (embedded, default) or postgres. Env EOY_TARGET."
        ),
    ] = None,
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


# in the order `--help` lists them (the `users` group comes after every command)
COMMANDS: list[tuple[str, Callable[..., None]]] = [
    # set-up
    ("init", setup.init),
    ("generate", setup.generate),
    # plan and run
    ("plan", reviewer.plan),
    ("approve", reviewer.approve),
    ("request-date", csm.request_date),
    ("run", operator.run),
    ("status", operator.status),
    ("resume-syncs", operator.resume_syncs),
    ("import-oneroster", operator.import_oneroster),
    ("restore", operator.restore),
    # snapshots
    ("verify-snapshot", snapshots.verify_snapshot),
    ("export", snapshots.export),
    ("purge-snapshots", snapshots.purge_snapshots),
    ("hold", snapshots.hold),
    ("release", snapshots.release),
    ("share", snapshots.share),
    # audit, notices, demo
    ("report", analyst.report),
    ("query", analyst.query),
    ("notices", csm.notices),
    ("demo", setup.demo),
    # the web console
    ("serve", console.serve),
    # certificates
    ("keygen", certificates.keygen),
    ("certificate", certificates.certificate),
    ("verify-certificate", certificates.verify_certificate),
]
USERS_COMMANDS: list[tuple[str, Callable[..., None]]] = [
    ("add", console.users_add),
    ("list", console.users_list),
    ("disable", console.users_disable),
]

users_app = typer.Typer(
    help="The web console's accounts: add, list, disable.",
    no_args_is_help=True,
    context_settings=HELP_OPTIONS,
)
app.add_typer(users_app, name="users")
for name, command in COMMANDS:
    app.command(name)(command)
for name, command in USERS_COMMANDS:
    users_app.command(name)(command)
