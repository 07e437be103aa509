"""The web console for its tests: `eoy-reset serve` as a process of its own on a free port of
127.0.0.1, the districts and accounts it is tried with, and a client that signs in as a
browser does (the sign-in page first, for its CSRF token and nonce cookie).

Districts of school year 2023 (default reset date 2023-07-28, earliest 2023-06-19):
- `north`: the district administrator nora's; an educator who never signed in, named with a
  script tag;
- `south`: another district (sam's), which nora must never see;
- `evil`: a district whose name is a script tag; its request row gives only its last school
  day, so the console's default school year is 2023 (the latest anybody acted on).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from jobs.config import PROJECT_DIR, Settings
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.schema import init_warehouse
from jobs.web.accounts import add_user
from tests.conftest import make_settings
from tests.support import fork_server
from tests.support.crash_helpers import cli_env
from tests.support.fork_server import Forked
from tests.support.in_process import run_in_process
from tests.support.reset_data import insert_rows, request
from tests.support.runner_helpers import small_district

SECRET = "console-test-secret-7f3e9a1c5b2d4e6f8a0b1c2d3e4f5a6b"
DSN_PASSWORD = "Dsn-Pw-For-The-Console-41c7"
AS_OF, YEAR = "2023-07-28", 2023
DISTRICTS = ("north", "south", "evil")
SCRIPT_DISTRICT = '<script>alert("district")</script>'
SCRIPT_EDUCATOR = "<script>alert('educator')</script>"
# name: (role, district, password)
USERS = {
    "carla": ("csm", None, "carla-password-1"),
    "cleo": ("csm", None, "cleo-password-1"),
    "nora": ("district_admin", "north", "nora-password-1"),
    "nina": ("district_admin", "north", "nina-password-1"),
    "sam": ("district_admin", "south", "sam-password-1"),
    "rita": ("reviewer", None, "rita-password-1"),
    "otto": ("operator", None, "otto-password-1"),
}
CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def load(wh: Warehouse) -> None:
    """The districts: a school, a teacher, a sync and two students with rows in every table."""
    for district in DISTRICTS:
        small_district(wh, district, students=2)
    wh.execute("update app.districts set name = %s where district_id = 'evil'", [SCRIPT_DISTRICT])
    insert_rows(wh, "district_reset_requests", [request("evil", end=date(2023, 6, 9))])
    insert_rows(
        wh,
        "educators",
        [
            {
                "educator_id": "north-idle",
                "district_id": "north",
                "school_id": "north-sch",
                "email": "idle@north.example",
                "first_name": SCRIPT_EDUCATOR,
                "last_name": "Idle",
                "role": "teacher",
                "last_login_at": None,
                "created_at": datetime(2020, 1, 1),
            }
        ],
    )


def add_users(settings: Settings) -> None:
    for name, (role, district, password) in USERS.items():
        add_user(settings, name, role, district, password, by="tests")


def with_password(settings: Settings) -> Settings:
    """PostgreSQL settings whose DSN carries a password (the test server trusts every
    connection, so it is accepted and ignored): what must never show anywhere."""
    if settings.pg_dsn is None:
        return settings
    parts = urlsplit(settings.pg_dsn)
    user, _, host = parts.netloc.rpartition("@")
    netloc = f"{user}:{DSN_PASSWORD}@{host}"
    return replace(settings, pg_dsn=urlunsplit(parts._replace(netloc=netloc)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A running console; `pages` collects every page its clients were answered."""

    url: str
    port: int
    proc: Forked
    pages: list[str] = field(default_factory=list)
    output: str | None = None

    def client(self) -> httpx.Client:
        def keep(response: httpx.Response) -> None:
            response.read()
            if "text/html" in response.headers.get("content-type", ""):
                self.pages.append(response.text)

        return httpx.Client(base_url=self.url, timeout=120, event_hooks={"response": [keep]})

    def sign_in(self, name: str, password: str | None = None) -> httpx.Client:
        """A client with a session of the user (asserting the sign-in worked)."""
        client = self.client()
        response = self.login(client, name, password or USERS[name][2])
        assert response.status_code == 303, (response.status_code, response.text[:500])
        return client

    def login(self, client: httpx.Client, name: str, password: str) -> httpx.Response:
        """POST /login as the sign-in form does, after GET /login."""
        token = csrf_of(client.get("/login").text)
        return client.post(
            "/login", data={"username": name, "password": password, "csrf_token": token}
        )

    def raw(self, method: str, path: str, cookie: str = "") -> tuple[int, str]:
        """A request of exactly this path (no client normalises `..` or `%2F` away)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            if cookie:
                connection.putheader("Cookie", cookie)
            connection.putheader("Content-Length", "0")
            connection.endheaders()
            response = connection.getresponse()
            body = response.read().decode("utf-8", "replace")
            self.pages.append(body)
            return response.status, body
        finally:
            connection.close()

    def stop(self) -> str:
        """Stop the server (SIGTERM, as Ctrl-C would); its whole output."""
        if self.output is None:
            self.proc.terminate()
            out, err = self.proc.communicate(timeout=60)
            self.output = out + err
        return self.output


@dataclass
class Site:
    """A warehouse of the districts and accounts above, and a console running on it."""

    settings: Settings
    server: Server
    folder: Path

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """`eoy-reset <args>` beside the console (in the test's process)."""
        return run_in_process(list(args), cli_env(self.settings, **env), PROJECT_DIR)

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with connect(self.settings) as wh:
            return wh.query(sql, params)


def console_site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The body of a module's `site` fixture, parametrized by target."""
    folder = tmp_path_factory.mktemp("console")
    made = make_settings(str(request.param), folder, request)
    settings = with_password(next(made))
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        load(wh)
    add_users(settings)
    with running_console(settings) as server:
        yield Site(settings, server, folder)
    made.close()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a csrf_token"
    return found.group(1)


@contextlib.contextmanager
def running_console(settings: Settings, **env: str) -> Iterator[Server]:
    """`eoy-reset serve` on a free port, until the block ends."""
    port = free_port()
    proc = fork_server.start(
        ["serve", "--port", str(port)],
        cli_env(settings, EOY_WEB_SECRET=SECRET, **env),
        PROJECT_DIR,
    )
    server = Server(f"http://127.0.0.1:{port}", port, proc)
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the console did not start: {server.stop()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{server.url}/login", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the console did not answer in 300 s"
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


def session_cookie(client: httpx.Client) -> str:
    return f"eoy_session={client.cookies['eoy_session']}"


def artifacts() -> Path:
    folder = Path(__file__).resolve().parents[1] / "artifacts"
    folder.mkdir(exist_ok=True)
    return folder
