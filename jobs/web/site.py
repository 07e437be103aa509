"""The console's plumbing: how every request is served, checked and answered.

Every request opens the warehouse, does its work and closes it before its page is sent, so
on DuckDB, which lets one process have the file at a time, a command can run between two
requests; there the console's own requests also take turns (one lock), as their
transactions would otherwise conflict. The order of the checks is the same on every page:
no session, a redirect to /login; a POST without its CSRF token, 403; a role the page is not
for, 403; a district that is not the user's (or does not exist), 404 (`NotFound`).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobs.config import ConfigError, Settings, debug, scrub
from jobs.csm.requests import KEEP
from jobs.errors import EoyError, first_line
from jobs.plan.dbt import release_duckdb
from jobs.warehouse.connection import WarehouseError, connect
from jobs.web.accounts import ROLE_NAMES, User
from jobs.web.sessions import SESSION_COOKIE, Keys, session_user

HERE = Path(__file__).parent
REFRESH_SECONDS = 5  # the operator's page, and the page that says the warehouse is busy
MAX_BODY = 64 * 1024  # a form of the console is a few hundred bytes

log = logging.getLogger("eoy_reset.console")


class NotFound(Exception):
    """No such page, or a district that is not the user's: 404 either way."""


class BadInput(Exception):
    """A query parameter or form field the page cannot use: 400, with the reason."""


@dataclass(frozen=True)
class Call:
    """One request of a signed-in user: who, the session's token, the form's fields."""

    request: Request
    user: User
    token: str
    form: dict[str, str]

    def query(self, name: str) -> str:
        return self.request.query_params.get(name, "").strip()


Handler = Callable[[Call], Response]


def _day(value: date | None) -> str:
    return value.isoformat() if value else "—"


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "—"


def _num(value: int | None) -> str:
    return f"{int(value or 0):,}"


def path_segment(value: str) -> str:
    """A district id as one segment of a URL path."""
    return quote(value, safe="")


class SecurityHeaders:
    """Headers every response carries: the content security policy (no script, no frame,
    forms to this site only), and no caching of pages that name districts and people."""

    def __init__(self, app: ASGIApp, csp: str):
        self.app = app
        self.headers = {
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            "Referrer-Policy": "same-origin",
            "Cross-Origin-Opener-Policy": "same-origin",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in self.headers.items():
                    if key == "Content-Security-Policy" and key in headers:
                        continue  # a page that sets its own (a certificate's styles) keeps it
                    headers[key] = value
                if "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, sending)


class Site:
    """A console of one warehouse: its templates, keys and the serving of every request;
    `routes` (the pages) is the subclass's."""

    def __init__(self, settings: Settings, secret: str):
        self.settings = settings
        self.keys = Keys(secret)
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters.update(day=_day, when=_when, num=_num, path=path_segment)
        self.css = (HERE / "static" / "console.css").read_text(encoding="utf-8")
        digest = base64.b64encode(hashlib.sha256(self.css.encode("utf-8")).digest()).decode()
        csp = (
            f"default-src 'none'; style-src 'sha256-{digest}'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )
        self._turns = threading.Lock() if settings.target == "duckdb" else None
        self.app = Starlette(
            routes=self.routes(),
            middleware=[Middleware(SecurityHeaders, csp=csp)],
            max_body_size=MAX_BODY,
        )

    def routes(self) -> list[Route]:
        raise NotImplementedError

    @contextmanager
    def turn(self) -> Iterator[None]:
        """The console's turn at the warehouse (DuckDB: one request at a time), and dbt's
        hold on the DuckDB file let go before the page is sent."""
        with self._turns or nullcontext():
            try:
                yield
            finally:
                if self.settings.target == "duckdb":
                    release_duckdb()

    def endpoint(
        self, handler: Handler, roles: tuple[str, ...], form: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            fields = await read_form(request) if form else {}
            return await run_in_threadpool(self._serve, request, fields, form, handler, roles)

        return serve

    def _serve(
        self,
        request: Request,
        fields: dict[str, str],
        form: bool,
        handler: Handler,
        roles: tuple[str, ...],
    ) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:  # no warehouse needed to know there is no session
            return self._to_login(request)
        user: User | None = None
        try:
            with self.turn():
                with connect(self.settings) as wh:
                    user = session_user(wh, self.keys, token)
                if user is None:
                    return self._to_login(request)
                if form and not self.keys.csrf_ok(token, fields.get("csrf_token")):
                    return self.message(
                        403,
                        "Forbidden",
                        "This form did not carry its CSRF token (a stale page, or one not from "
                        "this console): nothing was changed. Reload the page and try again.",
                        user,
                        token,
                    )
                if user.role not in roles:
                    return self.message(
                        403,
                        "Not for your role",
                        f"This page is not part of the {ROLE_NAMES[user.role]}'s console.",
                        user,
                        token,
                    )
                return handler(Call(request, user, token, fields))
        except NotFound:
            return self.message(404, "Not found", "There is no such page.", user, token)
        except BadInput as exc:
            return self.message(400, "Cannot read the request", str(exc), user, token)
        except WarehouseError as exc:
            return self.busy(exc, user, token)
        except EoyError as exc:
            return self.message(409, "Cannot do that", scrub(str(exc)), user, token)
        except Exception as exc:
            log.error("console: %s: %s", type(exc).__name__, scrub(first_line(exc)))
            if debug():
                raise
            return self.message(
                500, "Something went wrong", "The error was logged by the console.", user, token
            )

    # -- responses ------------------------------------------------------------------------
    def render(
        self,
        name: str,
        user: User | None,
        token: str | None,
        title: str,
        status: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A page; its forms carry the CSRF token of the session (or the one given)."""
        nav = _nav(user) if user else []
        csrf = context.pop("csrf", None) or (self.keys.csrf(token) if token else "")
        html = self.env.get_template(name).render(
            css=self.css,
            user=user,
            role_name=ROLE_NAMES[user.role] if user else "",
            csrf=csrf,
            nav=nav,
            here=context.pop("here", None) or (nav[0][0] if nav else ""),
            title=title,
            refresh=context.pop("refresh", None),
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def message(
        self,
        status: int,
        title: str,
        text: str,
        user: User | None,
        token: str | None,
        refresh: int | None = None,
    ) -> HTMLResponse:
        return self.render(
            "message.html", user, token, title, status, message=text, refresh=refresh
        )

    def busy(self, exc: WarehouseError, user: User | None, token: str | None) -> HTMLResponse:
        """503: the warehouse cannot be had now (on DuckDB, a command holds the file)."""
        return self.message(
            503,
            "The warehouse is busy",
            f"{scrub(str(exc))}. This page tries again every {REFRESH_SECONDS} seconds.",
            user,
            token,
            refresh=REFRESH_SECONDS,
        )

    def _to_login(self, request: Request) -> Response:
        response = RedirectResponse("/login", status_code=303)
        if request.cookies.get(SESSION_COOKIE):
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response


async def read_form(request: Request) -> dict[str, str]:
    """A form's text fields; none when the body is not a form (its CSRF check then fails)."""
    try:
        data = await request.form(max_files=0, max_fields=32)
    except Exception:
        return {}
    return {k: v for k, v in data.items() if isinstance(v, str)}


def form_day(form: dict[str, str], field: str, required: bool = False) -> Any:
    """A date field: the date, or KEEP (left empty: what is recorded stays)."""
    text = form.get(field, "").strip()
    if not text:
        if required:
            raise ConfigError(f"{field} is missing: give a date as YYYY-MM-DD")
        return KEEP
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{field} {text[:40]!r} is not a date: use YYYY-MM-DD") from None


def _nav(user: User) -> list[tuple[str, str]]:
    if user.role == "district_admin":
        return [(f"/districts/{path_segment(user.district_id or '')}", "My district")]
    return {
        "csm": [("/districts", "Districts")],
        "reviewer": [("/plans", "Plans")],
        "operator": [("/runs", "Runs")],
    }[user.role]


def home_of(user: User) -> str:
    return _nav(user)[0][0]
