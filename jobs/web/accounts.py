"""The console's accounts (`eoy-reset users add|list|disable`), in schema eoy_console.

Passwords are kept as argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory
profile) and never leave this module: no page, log line or ledger row carries one.
"""

from __future__ import annotations

import getpass
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.scope import ensure_scope
from jobs.scope.sql import district_known_sql
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.contract import CONSOLE_ROLES
from jobs.warehouse.ledger import utcnow
from jobs.web.actions import record_action

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
PASSWORD_MIN, PASSWORD_MAX = 8, 1024
ROLE_NAMES = {
    "csm": "customer success manager",
    "district_admin": "district administrator",
    "reviewer": "plan reviewer",
    "operator": "reset operator",
}


class AccountError(EoyError):
    """An account that cannot be added, found or disabled; nothing was changed."""


@dataclass(frozen=True)
class User:
    """Who is signed in: the name, the role and, for a district administrator, the district."""

    name: str
    role: str
    district_id: str | None


@dataclass(frozen=True)
class Account:
    """An account as `users list` shows it (never its password hash)."""

    username: str
    role: str
    district_id: str | None
    created_at: datetime
    created_by: str
    disabled_at: datetime | None
    last_login_at: datetime | None


@cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id


@cache
def _decoy_hash() -> str:
    """A hash to check a password against when the account does not exist, so a login with
    an unknown name takes as long as one with a wrong password."""
    return _hasher().hash("not a password of anyone")


def require_accounts(wh: Warehouse) -> None:
    if not wh.relation_exists("eoy_console", "users"):
        raise AccountError(
            "the warehouse has no eoy_console.users (it was initialised before the web "
            "console existed): run `eoy-reset init` to add it"
        )


def check_name(name: str) -> str:
    if not NAME.fullmatch(name or ""):
        raise AccountError(
            f"user name {name!r} is not allowed: 1 to 64 letters, digits, '.', '_', '@' or "
            "'-', starting with a letter or digit"
        )
    return name


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX or not password.isprintable():
        raise AccountError(
            f"the password must be {PASSWORD_MIN} to {PASSWORD_MAX} printable characters on "
            "one line (give it on standard input with --password-stdin)"
        )
    return password


def read_password(password_stdin: bool) -> str:
    """The password from standard input: typed without echo at a terminal, else its first
    line. Never an option's value, which the process list and shell history would keep."""
    if not password_stdin:
        raise AccountError(
            "give the password on standard input: `… users add NAME --role ROLE "
            "--password-stdin` (typed at the prompt, or piped in)"
        )
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\r\n")


def add_user(
    settings: Settings,
    name: str,
    role: str,
    district_id: str | None,
    password: str,
    by: str,
) -> Account:
    """A new account with an argon2id hash of its password; refused when the name is taken."""
    check_name(name)
    if role not in CONSOLE_ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(CONSOLE_ROLES)}")
    if role == "district_admin" and not district_id:
        raise AccountError("a district_admin needs --district ID: the one district it manages")
    if role != "district_admin" and district_id:
        raise AccountError(f"only a district_admin has a district: drop --district for {role}")
    hashed = _hasher().hash(check_password(password))
    with connect(settings) as wh, wh.transaction():
        require_accounts(wh)
        scope = ensure_scope(settings, wh)
        if district_id and not wh.scalar(district_known_sql(scope), [district_id]):
            raise AccountError(
                f"no district {district_id!r} in {scope.districts.qualified}: check the id"
            )
        if wh.scalar("select count(*) from eoy_console.users where username = %s", [name]):
            raise AccountError(
                f"user {name!r} exists already: choose another name (`users list` shows them)"
            )
        wh.execute(
            "insert into eoy_console.users (username, role, district_id, password_hash, "
            "created_at, created_by) values (%s, %s, %s, %s, %s, %s)",
            [name, role, district_id, hashed, utcnow(), by],
        )
        record_action(
            wh, by, None, "users_add", "ok", district_id, detail={"user": name, "role": role}
        )
        return _accounts(wh, name)[0]


def _accounts(wh: Warehouse, name: str | None = None) -> list[Account]:
    rows = wh.query(
        "select username, role, district_id, created_at, created_by, disabled_at, last_login_at "
        "from eoy_console.users"
        + (" where username = %s" if name is not None else "")
        + " order by username",
        [name] if name is not None else None,
    )
    return [Account(*row) for row in rows]


def list_users(settings: Settings) -> list[Account]:
    with connect(settings) as wh:
        require_accounts(wh)
        return _accounts(wh)


def disable_user(settings: Settings, name: str, by: str) -> Account:
    """Disable an account and end its sessions at once; disabling it again changes nothing."""
    with connect(settings) as wh, wh.transaction():
        require_accounts(wh)
        found = _accounts(wh, name)
        if not found:
            raise AccountError(f"no user {name!r}: `users list` shows the accounts")
        if found[0].disabled_at is None:
            wh.execute(
                "update eoy_console.users set disabled_at = %s where username = %s",
                [utcnow(), name],
            )
            record_action(wh, by, None, "users_disable", "ok", detail={"user": name})
        wh.execute("delete from eoy_console.sessions where username = %s", [name])
        return _accounts(wh, name)[0]


def signed_in(wh: Warehouse, name: str, password: str) -> User | None:
    """The user, when the name is an enabled account and the password is its own; else None.

    Always checks one hash, a decoy for an unknown name, so both failures take as long."""
    rows = wh.query(
        "select role, district_id, password_hash, disabled_at from eoy_console.users "
        "where username = %s",
        [name],
    )
    stored = str(rows[0][2]) if rows else _decoy_hash()
    try:
        _hasher().verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if not rows or rows[0][3] is not None:
        return None
    role, district_id = str(rows[0][0]), rows[0][1]
    updates: list[Any] = [utcnow()]
    sql = "update eoy_console.users set last_login_at = %s"
    if _hasher().check_needs_rehash(stored):  # the hasher's parameters were raised since
        sql += ", password_hash = %s"
        updates.append(_hasher().hash(password))
    wh.execute(sql + " where username = %s", [*updates, name])
    return User(name, role, district_id)


def account_exists(wh: Warehouse, name: str) -> bool:
    return bool(wh.scalar("select count(*) from eoy_console.users where username = %s", [name]))
