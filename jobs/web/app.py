"""The console's pages: sign-in, the districts, the reset date a district asks
for, its copy, the plans to approve and the runs. Server-rendered (Jinja2, autoescaped), no
script: the operator's page refreshes itself with a meta tag. How each request is served and
checked is `site.py`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from jobs.config import ConfigError, Settings, scrub
from jobs.csm.requests import KEEP, RequestRefused, request_date
from jobs.csm.view import SOURCES
from jobs.errors import EoyError
from jobs.scope import current_scope
from jobs.snapshot.certificate import (
    DISPOSITION,
    HTML_NAME,
    JSON_NAME,
    KINDS,
    SIGNATURE_NAME,
    certificate_files,
)
from jobs.snapshot.copy import FORMATS, export_for_district
from jobs.warehouse.connection import Warehouse, WarehouseError, connect
from jobs.warehouse.contract import CONSOLE_ROLES
from jobs.warehouse.ledger import utcnow
from jobs.web import pages
from jobs.web.accounts import ROLE_NAMES, User, account_exists, signed_in
from jobs.web.actions import record_action
from jobs.web.review import approve_as
from jobs.web.sessions import (
    LIFETIME,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    TOKEN,
    close_session,
    new_token,
    open_session,
    record_failure,
    session_user,
    throttled,
)
from jobs.web.site import (
    REFRESH_SECONDS,
    BadInput,
    Call,
    NotFound,
    Site,
    form_day,
    home_of,
    path_segment,
    read_form,
)

SHA256 = re.compile(r"[0-9a-f]{64}")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
ISSUES = {
    "request_too_early": "the requested date is before the policy's earliest reset date",
    "request_not_before_rostering": "the requested date is not before rostering starts",
    "request_during_session": "the requested date falls during the school year or summer "
    "session, so the reset moves to the day after it",
    "conflicts_with_rostering": "the reset date is not before rostering for the new year "
    "starts: it is never reset automatically until a new date is recorded",
}
# the files of a certificate, by the `file` query parameter
CERTIFICATE_FILES = {"html": HTML_NAME, "json": JSON_NAME, "sig": SIGNATURE_NAME}
# a certificate shown in the browser: its own inline styles, nothing to fetch, no script
CERTIFICATE_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
# a refusal's hint of the command line, said as the form says it
CLI_HINT = " (--anyway records it as asked)"
FORM_HINT = {"csm": " (tick “Record it anyway” to record it as asked)", "district_admin": ""}


class Console(Site):
    """The console of one warehouse: its pages."""

    def routes(self) -> list[Route]:
        every = CONSOLE_ROLES
        district_roles = ("csm", "district_admin")
        return [
            Route("/", self.endpoint(self.home, every)),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.endpoint(self.logout, every, form=True), methods=["POST"]),
            Route("/districts", self.endpoint(self.districts, district_roles)),
            Route("/districts/{district_id}", self.endpoint(self.district, district_roles)),
            Route(
                "/districts/{district_id}/request-date",
                self.endpoint(self.request_date, district_roles, form=True),
                methods=["POST"],
            ),
            Route("/districts/{district_id}/copy", self.endpoint(self.copy, ("district_admin",))),
            Route(
                "/districts/{district_id}/certificate",
                self.endpoint(self.certificate, district_roles),
            ),
            Route("/plans", self.endpoint(self.plans, ("reviewer",))),
            Route(
                "/plans/{sha256}/approve",
                self.endpoint(self.approve, ("reviewer",), form=True),
                methods=["POST"],
            ),
            Route("/runs", self.endpoint(self.runs, ("operator",))),
            Route("/{rest:path}", self.endpoint(self.nowhere, every), methods=ALL_METHODS),
        ]

    # -- sign-in --------------------------------------------------------------------------
    async def login_page(self, request: Request) -> Response:
        return await run_in_threadpool(self._login_page, request)

    def _login_page(self, request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            try:
                with self.turn(), connect(self.settings) as wh:
                    user = session_user(wh, self.keys, token)
            except WarehouseError:
                user = None  # the form works without the warehouse; signing in will say
            if user is not None:
                return RedirectResponse(home_of(user), status_code=303)
        return self._login_form(request, 200)

    def _login_form(
        self, request: Request, status: int, error: str = "", username: str = ""
    ) -> Response:
        """The form, with a CSRF token tied to a nonce cookie of the sign-in page."""
        nonce = request.cookies.get(LOGIN_COOKIE) or ""
        fresh = not TOKEN.fullmatch(nonce)
        nonce = new_token() if fresh else nonce
        response = self.render(
            "login.html",
            None,
            None,
            "Sign in",
            status,
            csrf=self.keys.csrf(nonce),
            error=error,
            username=username,
        )
        if fresh:
            response.set_cookie(
                LOGIN_COOKIE,
                nonce,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/login",
            )
        if status == 429:
            response.headers["Retry-After"] = "60"
        return response

    async def login(self, request: Request) -> Response:
        fields = await read_form(request)
        return await run_in_threadpool(self._login, request, fields)

    def _login(self, request: Request, fields: dict[str, str]) -> Response:
        if not self.keys.csrf_ok(request.cookies.get(LOGIN_COOKIE), fields.get("csrf_token")):
            return self.message(
                403,
                "Forbidden",
                "The sign-in form did not carry its CSRF token (a stale page, or one not from "
                "this console). Reload the sign-in page and try again.",
                None,
                None,
            )
        name, password = fields.get("username", "").strip(), fields.get("password", "")
        client = request.client.host if request.client else "unknown"
        user, token = None, ""
        try:
            with self.turn(), connect(self.settings) as wh, wh.transaction():
                known = account_exists(wh, name)  # only a real account's name is recorded
                if throttled(wh, self.keys, name, client):
                    if known:
                        record_action(wh, name, None, "login", "refused", detail={"throttled": 1})
                    return self._login_form(
                        request,
                        429,
                        "Too many wrong passwords for this account in the last minute: wait a "
                        "minute, then try again.",
                        name,
                    )
                user = signed_in(wh, name, password)
                if user is None:
                    record_failure(wh, self.keys, name, client)
                    if known:
                        record_action(wh, name, None, "login", "failed")
                else:
                    token = open_session(wh, self.keys, user)
                    record_action(wh, name, user.role, "login", "ok", user.district_id)
        except WarehouseError as exc:
            return self.busy(exc, None, None)
        if user is None:
            return self._login_form(request, 401, "Wrong user name or password.", name)
        response = RedirectResponse(home_of(user), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            max_age=int(LIFETIME.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
            path="/",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/login")
        return response

    def logout(self, call: Call) -> Response:
        with connect(self.settings) as wh:
            close_session(wh, self.keys, call.token)
            record_action(wh, call.user.name, call.user.role, "logout", "ok")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def home(self, call: Call) -> Response:
        return RedirectResponse(home_of(call.user), status_code=303)

    def nowhere(self, call: Call) -> Response:
        raise NotFound

    def _record(
        self,
        user: User,
        action: str,
        outcome: str,
        district_id: str | None = None,
        school_year: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """The user's action in the ledger, on a connection of its own."""
        with connect(self.settings) as wh:
            record_action(
                wh, user.name, user.role, action, outcome, district_id, school_year, detail
            )

    # -- districts ------------------------------------------------------------------------
    def _may_see(self, wh: Warehouse, user: User, district_id: str) -> None:
        """404 for a district that is not the district administrator's own, or none at all."""
        if user.role == "district_admin" and district_id != user.district_id:
            raise NotFound
        if not district_id.isprintable():  # no id has control characters; the query is spared
            raise NotFound
        if not pages.district_exists(wh, district_id):
            raise NotFound

    def _year(self, call: Call, wh: Warehouse) -> int:
        text = call.query("school_year")
        if not text:
            return pages.default_school_year(wh, date.today())
        if not re.fullmatch(r"\d{4}", text):
            raise BadInput(
                f"school_year {text!r} is not a year: give the calendar year the school year "
                "ends in, like 2023 for 2022-23"
            )
        return int(text)

    def districts(self, call: Call) -> Response:
        user = call.user
        if user.role == "district_admin":
            return RedirectResponse(f"/districts/{path_segment(user.district_id or '')}", 303)
        filters = pages.Filters(
            q=call.query("q")[:200],
            status=call.query("status"),
            source=call.query("source"),
            run=call.query("run"),
            issues=call.query("issues") in ("1", "on", "true"),
        )
        with connect(self.settings) as wh:
            year = self._year(call, wh)
            rows, shown = pages.district_list(wh, year, filters)
            context: dict[str, Any] = {
                "year": year,
                "years": pages.school_years(wh),
                "total": int(
                    wh.scalar(f"select count(*) from {current_scope().districts.relation}")
                ),
                "built": pages.built(wh, pages.SCHEDULE),
                "changes": pages.changes(wh, year, limit=20),
                "roles": _roles(wh),
            }
        return self.render(
            "districts.html",
            user,
            call.token,
            "Districts",
            rows=rows,
            shown=shown,
            filters=filters,
            sources=list(SOURCES.items()),
            one_district=False,
            **context,
        )

    def district(self, call: Call) -> Response:
        district_id = call.request.path_params["district_id"]
        with connect(self.settings) as wh:
            self._may_see(wh, call.user, district_id)
            year = self._year(call, wh)
        return self._district_page(
            call, district_id, year, 200, recorded=call.query("recorded") == "1"
        )

    def _district_page(
        self,
        call: Call,
        district_id: str,
        year: int,
        status: int,
        recorded: bool = False,
        error: str = "",
    ) -> Response:
        with connect(self.settings) as wh:
            page = pages.district_page(wh, district_id, year)
            if page is None:
                raise NotFound
            years, roles = pages.school_years(wh), _roles(wh)
        done = page.run is not None and page.run.status == "completed"
        user = call.user
        return self.render(
            "district.html",
            user,
            call.token,
            page.name or district_id,
            status,
            here=f"/districts/{path_segment(district_id)}"
            if user.role == "district_admin"
            else None,
            page=page,
            years=years,
            roles=roles,
            recorded=recorded,
            error=error,
            form={
                k: call.form.get(k, "") for k in ("date", "summer_session_end", "rostering_start")
            },
            can_request=user.role == "csm" or not done,
            can_copy=user.role == "district_admin",
            source_text=SOURCES,
            issue_text=ISSUES,
        )

    def request_date(self, call: Call) -> Response:
        """The rules of `request-date`, on the district's behalf or by the district itself."""
        district_id, user = call.request.path_params["district_id"], call.user
        with connect(self.settings) as wh:
            self._may_see(wh, user, district_id)
            shown_year = self._year(call, wh)
        try:
            day = form_day(call.form, "date", required=True)
            summer = form_day(call.form, "summer_session_end")
            rostering = form_day(call.form, "rostering_start")
        except ConfigError as exc:
            return self._district_page(call, district_id, shown_year, 400, error=str(exc))
        assert isinstance(day, date)
        anyway = user.role == "csm" and call.form.get("anyway", "") in ("1", "on", "true")
        asked = {"date": day, "summer_session_end": summer, "rostering_start": rostering}
        detail: dict[str, Any] = {k: v for k, v in asked.items() if v is not KEEP}
        try:
            doc = request_date(
                self.settings,
                district_id,
                day,
                summer_session_end=summer,
                rostering_start=rostering,
                by=user.name,
                anyway=anyway,
            )
        except EoyError as exc:
            refused = isinstance(exc, RequestRefused)
            said = scrub(str(exc)).replace(CLI_HINT, FORM_HINT.get(user.role, ""))
            outcome = "refused" if refused else "failed"
            self._record(
                user, "request_date", outcome, district_id, day.year, {**detail, "reason": said}
            )
            return self._district_page(
                call, district_id, day.year, 422 if refused else 400, error=said
            )
        self._record(
            user,
            "request_date",
            "ok",
            district_id,
            doc["school_year"],
            {
                **detail,
                "anyway": doc["anyway"],
                "effective_reset_date": doc["effective_reset_date"],
                "status": doc["status"],
            },
        )
        return RedirectResponse(
            f"/districts/{path_segment(district_id)}?school_year={doc['school_year']}&recorded=1",
            303,
        )

    def copy(self, call: Call) -> Response:
        """The district's copy: live rows before its reset, its snapshot's after it."""
        district_id, user = call.request.path_params["district_id"], call.user
        with connect(self.settings) as wh:
            self._may_see(wh, user, district_id)
            year = self._year(call, wh)
        fmt = (call.query("format") or "csv").lower()
        if fmt not in FORMATS:
            raise BadInput(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        folder = tempfile.mkdtemp(prefix="eoy-copy-")  # 0700, this process's own
        try:
            doc = export_for_district(self.settings, district_id, year, fmt, Path(folder))
        except BaseException as exc:
            shutil.rmtree(folder, ignore_errors=True)
            if not isinstance(exc, EoyError) or isinstance(exc, WarehouseError):
                raise
            self._record(user, "copy", "failed", district_id, year)
            return self.message(409, "No copy", scrub(str(exc)), user, call.token)
        rows = sum(int(t["rows"]) for t in doc["tables"].values())
        detail = {"format": fmt, "source": doc["source"], "rows": rows}
        self._record(user, "copy", "ok", district_id, year, detail)
        path = Path(doc["path"])
        return FileResponse(
            path,
            media_type="application/zip",
            filename=path.name,
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
        )

    def certificate(self, call: Call) -> Response:
        """One file of the district's certificate (`kind`: disposition or copy_destroyed;
        `file`: html, json or sig), as the ledger issued it; 404 when there is none."""
        district_id = call.request.path_params["district_id"]
        with connect(self.settings) as wh:
            self._may_see(wh, call.user, district_id)
            year = self._year(call, wh)
            kind = call.query("kind") or DISPOSITION
            name = CERTIFICATE_FILES.get(call.query("file") or "html")
            if kind not in KINDS or name is None:
                raise NotFound
            cert = pages.certificate_of(wh, district_id, year, kind)
        if cert is None:
            raise NotFound
        data = certificate_files(cert)[name]
        saved = f"{_file_stem(district_id)}-{year}-{kind}-{name}"
        if name == HTML_NAME:  # shown in the browser: its own styles, nothing else
            return Response(
                data,
                media_type="text/html; charset=utf-8",
                headers={
                    "Content-Security-Policy": CERTIFICATE_CSP,
                    "Content-Disposition": f'inline; filename="{saved}"',
                },
            )
        media = "application/json" if name == JSON_NAME else "application/octet-stream"
        return Response(
            data,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="{saved}"'},
        )

    # -- plans and runs -------------------------------------------------------------------
    def plans(self, call: Call, status: int = 200, error: str = "") -> Response:
        approved = call.query("approved")
        with connect(self.settings) as wh:
            views = pages.plan_views(wh)
        return self.render(
            "plans.html",
            call.user,
            call.token,
            "Plans",
            status,
            plans=views,
            tables=current_scope().deleted,
            approved=approved if re.fullmatch(r"[0-9a-f]{12}", approved) else "",
            error=error,
        )

    def approve(self, call: Call) -> Response:
        sha, user = call.request.path_params["sha256"], call.user
        if not SHA256.fullmatch(sha):
            raise NotFound
        try:
            doc = approve_as(self.settings, sha, user.name)
        except EoyError as exc:
            said = scrub(str(exc))
            self._record(user, "approve_plan", "failed", detail={"reason": said})
            return self.plans(call, 409, said)
        if doc is None:
            raise NotFound
        self._record(
            user,
            "approve_plan",
            "ok",
            school_year=int(doc["school_year"]),
            detail={
                "plan_sha256": sha,
                "districts": len(doc["districts"]),
                "rows_total": doc["rows_total"],
            },
        )
        return RedirectResponse(f"/plans?approved={sha[:12]}", 303)

    def runs(self, call: Call) -> Response:
        text = call.query("school_year")
        if text and not re.fullmatch(r"\d{4}", text):
            raise BadInput(f"school_year {text!r} is not a year")
        with connect(self.settings) as wh:
            runs = pages.runs_of(wh, year=int(text) if text else None)
        counts: dict[str, int] = {}
        for run in runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        order = ("running", "failed", "completed", "restored")
        return self.render(
            "runs.html",
            call.user,
            call.token,
            "Runs",
            refresh=REFRESH_SECONDS,
            runs=runs,
            counts=sorted(
                counts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 9
            ),
            now=utcnow(),
        )


def _file_stem(district_id: str) -> str:
    """A district id as part of a file name a browser saves (no quote, slash or space)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", district_id)[:80] or "district"


def _roles(wh: Warehouse) -> dict[str, str]:
    """Each console user's role, said in words, to show beside a name in a history."""
    return {
        str(name): ROLE_NAMES.get(str(role), str(role))
        for name, role in wh.query("select username, role from eoy_console.users")
    }


def create_app(settings: Settings, secret: str) -> Starlette:
    """The console's ASGI application."""
    return Console(settings, secret).app
