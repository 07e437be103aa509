"""Sign-in sessions, CSRF tokens and login throttling of the console.

A session is a random token in an HttpOnly cookie; the server keeps a row per session in
eoy_console.sessions under an HMAC of the token keyed by EOY_WEB_SECRET, so neither a
reader of the table nor a copy of the warehouse can sign in with what it finds there, and
signing out or disabling the account ends the session at once (a signed cookie alone could
not be taken back). A session ends after IDLE without a request, and LIFETIME after it
began, whatever happens. Each form carries a CSRF token, an HMAC of the session's token (of
a sign-in nonce cookie on the login form), which a page of another site cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import timedelta

from jobs.warehouse.connection import Warehouse
from jobs.warehouse.ledger import utcnow
from jobs.web.accounts import User

SESSION_COOKIE = "eoy_session"
LOGIN_COOKIE = "eoy_login"
IDLE = timedelta(minutes=30)
LIFETIME = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
THROTTLE_WINDOW = timedelta(minutes=1)
ACCOUNT_FAILURES = 9  # so the tenth wrong password within a minute is throttled
CLIENT_FAILURES = 30  # one address trying many names
FAILURES_KEPT = timedelta(days=1)
TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")


class Keys:
    """The HMACs of one server, keyed by its secret."""

    def __init__(self, secret: str):
        self._secret = secret.encode("utf-8")

    def _mac(self, purpose: str, value: str) -> str:
        message = f"{purpose}\0{value}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def session_id(self, token: str) -> str:
        return self._mac("session", token)

    def csrf(self, token: str) -> str:
        """The CSRF token of a session's forms (or of the login form's nonce)."""
        return self._mac("csrf", token)

    def login_name(self, username: str) -> str:
        """What the throttle keeps of a name typed at sign-in (a password typed in the
        wrong field must not be kept in clear)."""
        return self._mac("login", username)

    def csrf_ok(self, token: str | None, given: str | None) -> bool:
        if not token or not given or not TOKEN.fullmatch(token):
            return False
        return hmac.compare_digest(self.csrf(token), given)


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 43 characters


def open_session(wh: Warehouse, keys: Keys, user: User) -> str:
    """A new session for the user; its token, for the cookie."""
    token, now = new_token(), utcnow()
    wh.execute(
        "delete from eoy_console.sessions where expires_at <= %s or last_seen_at <= %s",
        [now, now - IDLE],
    )
    wh.execute(
        "insert into eoy_console.sessions (session_hash, username, created_at, last_seen_at, "
        "expires_at) values (%s, %s, %s, %s, %s)",
        [keys.session_id(token), user.name, now, now, now + LIFETIME],
    )
    return token


def session_user(wh: Warehouse, keys: Keys, token: str | None) -> User | None:
    """Who the session's token belongs to: None when there is no such session, it has
    expired, or its account is disabled."""
    if not token or not TOKEN.fullmatch(token):
        return None
    now = utcnow()
    rows = wh.query(
        "select users.username, users.role, users.district_id, sessions.last_seen_at "
        "from eoy_console.sessions as sessions join eoy_console.users as users "
        "on users.username = sessions.username "
        "where sessions.session_hash = %s and sessions.expires_at > %s "
        "and sessions.last_seen_at > %s and users.disabled_at is null",
        [keys.session_id(token), now, now - IDLE],
    )
    if not rows:
        return None
    name, role, district_id, last_seen = rows[0]
    if now - last_seen >= TOUCH_EVERY:
        wh.execute(
            "update eoy_console.sessions set last_seen_at = %s where session_hash = %s",
            [now, keys.session_id(token)],
        )
    return User(str(name), str(role), district_id)


def close_session(wh: Warehouse, keys: Keys, token: str) -> None:
    wh.execute("delete from eoy_console.sessions where session_hash = %s", [keys.session_id(token)])


def throttled(wh: Warehouse, keys: Keys, username: str, client: str) -> bool:
    """Whether sign-in is refused for now: too many wrong passwords for this name, or from
    this address, within the last minute."""
    since = utcnow() - THROTTLE_WINDOW
    by_name, by_client = wh.query(
        "select coalesce(sum(case when username = %s then 1 else 0 end), 0), "
        "coalesce(sum(case when client = %s then 1 else 0 end), 0) "
        'from eoy_console.login_failures where "at" > %s',
        [keys.login_name(username), client, since],
    )[0]
    return int(by_name) >= ACCOUNT_FAILURES or int(by_client) >= CLIENT_FAILURES


def record_failure(wh: Warehouse, keys: Keys, username: str, client: str) -> None:
    now = utcnow()
    wh.execute('delete from eoy_console.login_failures where "at" < %s', [now - FAILURES_KEPT])
    wh.execute(
        'insert into eoy_console.login_failures (username, client, "at") values (%s, %s, %s)',
        [keys.login_name(username), client[:200], now],
    )
