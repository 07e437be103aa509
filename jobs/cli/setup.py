"""Set-up: the warehouse's schemas and roles, generated districts, the demo."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from jobs.cli.common import screen, settings_of
from jobs.cli.options import JsonOpt
from jobs.config import ConfigError, Settings
from jobs.output import emit

if TYPE_CHECKING:
    from jobs.warehouse.connection import Warehouse
    from jobs.warehouse.roles import Grants


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
    from jobs.warehouse.roles import create_roles, roles_set_up
    from jobs.warehouse.schema import init_warehouse

    settings = settings_of(ctx)
    if roles and settings.target != "postgres":
        raise ConfigError("--roles needs --target postgres: DuckDB has no roles")
    with connect(settings, create=True, require_init=False) as wh:
        statements = init_warehouse(wh)
        created_roles: list[str] = []
        if roles or roles_set_up(wh):  # again: what init added goes to its role
            created_roles = create_roles(wh, _grants(settings, wh))
    made = "schema eoy_runner" if settings.is_vendor_project else "schemas app and eoy_runner"

    def render() -> None:
        screen.out.print(f"Initialised {settings.describe()}: {made} ready.")
        if created_roles:
            screen.out.print(f"Roles: {', '.join(created_roles)}")

    doc = {"warehouse": settings.describe(), "statements": len(statements), "roles": created_roles}
    emit(doc, as_json, render)


def _grants(settings: Settings, wh: Warehouse) -> Grants | None:
    """The roles' grants: on the tables a vendor's project declares, else the demo's."""
    if not settings.is_vendor_project:
        return None
    from jobs.scope import load_scope
    from jobs.scope.grants import grants_of

    return grants_of(load_scope(settings, wh))


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
    from jobs.synthetic.generate import generate_districts, render_counts
    from jobs.warehouse.connection import connect

    with connect(settings_of(ctx)) as wh:
        counts = generate_districts(
            wh,
            districts=districts,
            seed=seed,
            students_per_district=students_per_district,
            show_progress=not as_json,
        )
    emit({"rows": counts}, as_json, lambda: render_counts(screen.out, counts))


def demo(ctx: typer.Context) -> None:
    """The whole reset on a fresh embedded DuckDB, in about a minute."""
    from jobs.demo import run_demo

    run_demo(settings_of(ctx), screen.out)
