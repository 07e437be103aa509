"""The web console: serve it, and its accounts (add, list, disable)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from jobs.cli.common import screen, settings_of
from jobs.cli.options import JsonOpt
from jobs.output import emit


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
        lambda line: screen.out.print(line, markup=False, highlight=False, soft_wrap=True),
    )


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
    where = f" of district {account.district_id}" if account.district_id else ""
    emit(
        asdict(account),
        as_json,
        lambda: screen.out.print(f"Added {account.username}: {account.role}{where}.", markup=False),
    )


def users_list(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The console's accounts: role, district, when added and by whom, disabled, last sign-in."""
    from jobs.terminal import print_table_or_records
    from jobs.web.accounts import list_users

    accounts = list_users(settings_of(ctx))

    def at(value: Any) -> str:
        return f"{value:%Y-%m-%d %H:%M}" if value else ""

    def render() -> None:
        print_table_or_records(
            screen.out,
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

    emit({"users": [asdict(a) for a in accounts]}, as_json, render)


def users_disable(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user name.")],
    as_json: JsonOpt = False,
) -> None:
    """Disable an account: it can no longer sign in, and its open sessions end at once."""
    from jobs.plan.approval import operator_name
    from jobs.web.accounts import disable_user

    account = disable_user(settings_of(ctx), name, by=operator_name())
    emit(
        asdict(account),
        as_json,
        lambda: screen.out.print(
            f"Disabled {account.username}: its sessions have ended.", markup=False
        ),
    )
