"""`eoy-reset serve`: the console on a host and port, served by uvicorn.

It refuses to start without EOY_WEB_SECRET (the key of its sessions and CSRF tokens), and
builds the reset-date marts its pages read once at start: reset_schedule, the request
windows, the inactive educators and their contacts, none of which depends on a plan's day.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from jobs.config import WEB_SECRET_ENV, Settings, forwarded_allow_ips, web_secret_setting
from jobs.csm.notices import CONTACTS
from jobs.errors import EoyError
from jobs.plan.dbt import build_models, release_duckdb
from jobs.warehouse.connection import connect
from jobs.web.accounts import require_accounts

# The marts of the district pages; not due_districts or reset_scope, which a plan builds for
# its own day and reads right after (a build here in between would change its day).
CONSOLE_SELECTION = [
    "reset_policy",
    "+reset_date_windows",
    "+reset_schedule",
    "inactive_educators",
    CONTACTS,
]
SHORT_SECRET = 32


class ConsoleError(EoyError):
    """The console cannot start; the message says what to do."""


def web_secret() -> str:
    """EOY_WEB_SECRET, or ConsoleError saying how to make one."""
    secret = web_secret_setting()
    if not secret.strip():
        raise ConsoleError(
            f"{WEB_SECRET_ENV} is not set: the console keys its sessions and CSRF tokens with it; "
            f"set it to a long random value, e.g. {WEB_SECRET_ENV}=$(python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    return secret


def _free(host: str, port: int) -> None:
    """Refuse a port another server holds, in one line rather than uvicorn's traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConsoleError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
                "or --host"
            ) from None


def prepare(settings: Settings) -> int:
    """Check the warehouse and build the pages' marts; the number of enabled accounts."""
    with connect(settings) as wh:
        require_accounts(wh)
        accounts = int(
            wh.scalar("select count(*) from eoy_console.users where disabled_at is null")
        )
    try:
        build_models(settings, CONSOLE_SELECTION)
    finally:
        if settings.target == "duckdb":
            release_duckdb()
    return accounts


def serve_console(settings: Settings, host: str, port: int, say: Callable[[str], None]) -> None:
    """Serve the console until interrupted (Ctrl-C, SIGTERM)."""
    import uvicorn

    from jobs.web.app import create_app

    secret = web_secret()
    _free(host, port)
    if len(secret) < SHORT_SECRET:
        say(f"Warning: {WEB_SECRET_ENV} is short; use {SHORT_SECRET} random characters or more.")
    accounts = prepare(settings)
    if not accounts:
        say("No account yet: add one with `eoy-reset users add NAME --role … --password-stdin`.")
    where = f"[{host}]" if ":" in host else host
    say(f"Console of {settings.describe()} on http://{where}:{port}/ (Ctrl-C stops it).")
    uvicorn.run(
        create_app(settings, secret),
        host=host,
        port=port,
        log_level="info",
        server_header=False,
        # behind the SSO proxy on this host, its X-Forwarded-Proto and -For are believed
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips(),
    )
