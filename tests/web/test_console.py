"""The web console over HTTP (issue: the people around the reset get a web console),
on both targets: `eoy-reset serve` runs as a process of its own on 127.0.0.1, and the tests
talk to it as a browser would, the sign-in form first.

Sessions, CSRF tokens, roles and districts: no page or file without a session; a district
administrator gets 404 for any other district's page or file, whatever the path; a POST
without its CSRF token is 403 and changes nothing. The rules of `request-date` hold in the
browser; an approval given there lets `run --plan` run; commands run beside the console, on
DuckDB too. Nothing secret reaches a page, the server's log or the ledger.

The tests of this module share one warehouse and one console per target and run in order:
the reset runs last but one, and the last one stops the console to read its whole log.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from jobs.config import PROJECT_DIR
from jobs.warehouse.connection import connect
from jobs.warehouse.ledger import utcnow
from jobs.web.sessions import Keys
from tests.conftest import TARGETS
from tests.support import fork_server
from tests.support.console_helpers import (
    AS_OF,
    DSN_PASSWORD,
    SCRIPT_DISTRICT,
    SCRIPT_EDUCATOR,
    SECRET,
    USERS,
    Site,
    console_site,
    csrf_of,
    session_cookie,
)
from tests.support.crash_helpers import cli_env
from tests.support.reset_data import insert_rows
from tests.support.smtp_server import local_smtp

NEXT_YEAR_STUDENT = "north-2024-student"


@pytest.fixture(scope="module", params=TARGETS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    yield from console_site(request, tmp_path_factory)


def request_row(site: Site, district: str) -> list[tuple[Any, ...]]:
    return site.query(
        "select requested_reset_date, summer_session_end_date, rostering_start_date "
        "from app.district_reset_requests where district_id = %s",
        [district],
    )


def changes_of(site: Site, district: str) -> list[tuple[Any, ...]]:
    return site.query(
        "select changed_by, new_requested_reset_date, anyway from "
        "eoy_runner.reset_request_changes where district_id = %s order by change_id",
        [district],
    )


def parquet_rows(content: bytes, table: str, folder: Path) -> list[dict[str, Any]]:
    """A table's rows from a Parquet copy (a zip), read with DuckDB."""
    folder.mkdir()
    with zipfile.ZipFile(io.BytesIO(content)) as zf:
        assert f"{table}.parquet" in zf.namelist(), zf.namelist()
        zf.extract(f"{table}.parquet", folder)
    with duckdb.connect() as con:
        result = con.execute("select * from read_parquet(?)", [str(folder / f"{table}.parquet")])
        names = [c[0] for c in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def copy_of(response: Any) -> dict[str, str]:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        return {name: zf.read(name).decode("utf-8", "replace") for name in zf.namelist()}


def test_serve_needs_a_secret_and_users_are_managed_from_the_command_line(site: Site) -> None:
    done = site.cli("serve", "--port", "1")
    assert done.returncode == 2 and "EOY_WEB_SECRET is not set" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    # the password comes on standard input, never as an option
    password = site.folder / "password.txt"
    password.write_text("pat-password-1\n")

    def users(*args: str) -> tuple[int, str, str]:
        done = fork_server.start(
            list(args), cli_env(site.settings), PROJECT_DIR, stdin=str(password)
        )
        out, err = done.communicate(timeout=300)
        return done.returncode or 0, out, err

    code, out, err = users(
        "users", "add", "pat", "--role", "reviewer", "--password-stdin", "--json"
    )
    assert code == 0, err
    assert json.loads(out)["role"] == "reviewer"
    assert site.server.sign_in("pat", "pat-password-1").get("/plans").status_code == 200
    for args, said in [
        (["users", "add", "pat", "--role", "csm", "--password-stdin"], "exists already"),
        (["users", "add", "x", "--role", "boss", "--password-stdin"], "unknown role"),
        (["users", "add", "x", "--role", "district_admin", "--password-stdin"], "--district"),
        (["users", "add", "x", "--role", "csm", "--district", "north", "--password-stdin"], "only"),
        (["users", "add", "x y", "--role", "csm", "--password-stdin"], "not allowed"),
        (["users", "add", "x", "--role", "csm"], "--password-stdin"),
        (["users", "disable", "nobody"], "no user 'nobody'"),
    ]:
        code, _, err = users(*args)
        assert code == 2 and said in err and len(err.splitlines()) == 1, (args, err)
    empty = site.cli("users", "add", "x", "--role", "csm", "--password-stdin")  # stdin is empty
    assert empty.returncode == 2 and "8 to 1024" in empty.stderr
    listed = json.loads(site.cli("users", "list", "--json").stdout)["users"]
    assert {u["username"] for u in listed} == {*USERS, "pat"}
    assert {u["district_id"] for u in listed if u["username"] == "nora"} == {"north"}
    assert "$argon2" not in json.dumps(listed)


def test_without_a_session_every_page_and_file_redirects_to_login(site: Site) -> None:
    client = site.server.client()
    assert client.get("/login").status_code == 200
    for path in [
        "/",
        "/districts",
        "/districts/north",
        "/districts/south?school_year=2023",
        "/districts/north/copy?format=csv",
        "/districts/south/copy?format=parquet",
        "/plans",
        "/runs",
        "/no/such/page",
        "/static/console.css",
    ]:
        response = client.get(path)
        assert (response.status_code, response.headers.get("location")) == (303, "/login"), path
    for path in ["/districts/north/request-date", "/plans/" + "0" * 64 + "/approve", "/logout"]:
        response = client.post(path, data={"date": "2023-07-01", "csrf_token": "x"})
        assert (response.status_code, response.headers.get("location")) == (303, "/login"), path
    # a cookie that is no session is no session
    assert site.server.raw("GET", "/districts/north", "eoy_session=" + "a" * 43)[0] == 303
    assert site.server.raw("GET", "/districts/north/../south")[0] == 303
    assert request_row(site, "north") == []


def test_a_post_without_the_right_csrf_token_is_403_and_changes_nothing(site: Site) -> None:
    nora, carla = site.server.sign_in("nora"), site.server.sign_in("carla")
    own = csrf_of(nora.get("/districts/north").text)
    others = csrf_of(carla.get("/districts").text)
    login_form = csrf_of(site.server.client().get("/login").text)
    tried = [None, "", "0" * 64, login_form]
    for who, tokens in ((nora, [*tried, others, own.upper()]), (carla, [*tried, own])):
        for token in tokens:
            data = {"date": "2023-07-03", "anyway": "1"}
            if token is not None:
                data["csrf_token"] = token
            assert who.post("/districts/north/request-date", data=data).status_code == 403
    assert request_row(site, "north") == [] and changes_of(site, "north") == []
    rita = site.server.sign_in("rita")
    assert rita.post("/plans/" + "a" * 64 + "/approve", data={}).status_code == 403
    # signing out needs the token too; without it the session goes on
    assert nora.post("/logout", data={"csrf_token": others}).status_code == 403
    assert nora.get("/districts/north").status_code == 200
    # the sign-in form's own token, tied to its nonce cookie
    fresh = site.server.client()
    for token in ["", csrf_of(site.server.client().get("/login").text)]:
        fresh.get("/login")
        answer = fresh.post(
            "/login", data={"username": "nora", "password": USERS["nora"][2], "csrf_token": token}
        )
        assert answer.status_code == 403 and "eoy_session" not in answer.cookies
    assert nora.post("/logout", data={"csrf_token": own}).status_code == 303
    assert nora.get("/districts/north").headers.get("location") == "/login"


def test_a_district_admin_sees_only_its_own_district(site: Site) -> None:
    nora, carla = site.server.sign_in("nora"), site.server.sign_in("carla")
    assert nora.get("/districts").headers["location"] == "/districts/north"
    assert nora.get("/").headers["location"] == "/districts/north"
    page = nora.get("/districts/north")
    assert page.status_code == 200 and "District north" in page.text
    token = csrf_of(page.text)
    for path in [
        "/districts/south",
        "/districts/south?school_year=2023",
        "/districts/south/copy?format=csv",
        "/districts/south/copy?format=parquet",
        "/districts/nowhere",
        "/districts/North",
        "/districts/north%20",
    ]:
        response = nora.get(path)
        assert response.status_code == 404 and "District south" not in response.text, path
    refused = nora.post(
        "/districts/south/request-date", data={"date": "2023-07-03", "csrf_token": token}
    )
    assert refused.status_code == 404 and request_row(site, "south") == []
    cookie = session_cookie(nora)
    for path in [
        "/districts/north/../south",
        "/districts/north/..%2Fsouth",
        "/districts/north%2F..%2Fsouth",
        "/districts/north%2f..%2fsouth/copy?format=csv",
        "/districts/south%2F",
        "/districts/%2e%2e/districts/south",
        "/districts/./south",
        "//districts/south",
        "/districts/north/../south/copy?format=csv",
        "/districts/north/copy/../../south/copy?format=csv",
        "/districts/north/copy%3F/../../south",
        "/districts/south;north",
        "/districts/south%00",
    ]:
        status, body = site.server.raw("GET", path, cookie)
        assert status == 404 and "District south" not in body, (path, status)
    # the others see what is theirs to see
    assert carla.get("/districts/south").status_code == 200
    assert carla.get("/districts/north/copy?format=csv").status_code == 403
    assert site.server.sign_in("rita").get("/districts/north").status_code == 403
    assert site.server.sign_in("otto").get("/plans").status_code == 403


def test_a_district_admin_picks_a_date_under_the_rules_of_request_date(site: Site) -> None:
    nora = site.server.sign_in("nora")
    token = csrf_of(nora.get("/districts/north").text)
    too_early = nora.post(
        "/districts/north/request-date",
        data={"date": "2023-06-01", "csrf_token": token, "anyway": "1"},  # anyway is the CSM's
    )
    assert too_early.status_code == 422
    assert "before the policy&#39;s earliest reset date 2023-06-19" in too_early.text
    assert "--anyway" not in too_early.text
    assert request_row(site, "north") == []
    bad = nora.post(
        "/districts/north/request-date", data={"date": "2023-13-01", "csrf_token": token}
    )
    assert bad.status_code == 400 and "is not a date" in bad.text
    chosen = nora.post(
        "/districts/north/request-date",
        # fields of another district or year in the form change nothing of theirs
        data={
            "date": "2023-07-10",
            "csrf_token": token,
            "district_id": "south",
            "school_year": "2031",
        },
    )
    assert chosen.status_code == 303
    assert chosen.headers["location"] == "/districts/north?school_year=2023&recorded=1"
    assert [r[0].isoformat() for r in request_row(site, "north")] == ["2023-07-10"]
    assert request_row(site, "south") == []
    assert changes_of(site, "north")[-1][:2] == ("nora", request_row(site, "north")[0][0])
    page = nora.get(chosen.headers["location"]).text
    assert 'id="effective-date">2023-07-10<' in page and 'id="recorded"' in page
    # the CSM's list and reset_schedule show it; so does the next plan
    listed = site.server.sign_in("carla").get("/districts?q=nor").text
    assert "2023-07-10" in listed and "requested" in listed and "District south" not in listed
    assert (
        site.query(
            "select effective_reset_date, date_source from eoy.reset_schedule "
            "where district_id = 'north' and school_year = 2023"
        )[0][1]
        == "requested"
    )
    plan = json.loads(site.cli("plan", "--as-of", AS_OF, "--json").stdout)
    assert {d["district_id"]: d["effective_reset_date"] for d in plan["due"]}[
        "north"
    ] == "2023-07-10"
    actions = site.query(
        "select action, outcome, district_id, role from eoy_runner.console_actions "
        "where username = 'nora' and action = 'request_date' order by action_id"
    )
    assert [a[1] for a in actions] == ["refused", "ok"]  # the date that is no date: not asked
    assert {(a[2], a[3]) for a in actions} == {("north", "district_admin")}


def test_a_csm_records_a_date_anyway_and_sees_who_changed_what(site: Site) -> None:
    carla = site.server.sign_in("carla")
    token = csrf_of(carla.get("/districts/south").text)
    refused = carla.post(
        "/districts/south/request-date", data={"date": "2023-06-01", "csrf_token": token}
    )
    assert refused.status_code == 422 and "Record it anyway" in refused.text
    assert request_row(site, "south") == []
    recorded = carla.post(
        "/districts/south/request-date",
        data={
            "date": "2023-06-01",
            "rostering_start": "2023-08-20",
            "anyway": "1",
            "csrf_token": token,
        },
    )
    assert recorded.status_code == 303
    assert [tuple(str(v) for v in r) for r in request_row(site, "south")] == [
        ("2023-06-01", "None", "2023-08-20")
    ]
    assert changes_of(site, "south") == [("carla", request_row(site, "south")[0][0], True)]
    page = carla.get("/districts/south").text
    assert "request_too_early" in page and "carla" in page and "2023-07-28" in page
    with_issues = carla.get("/districts?issues=1").text
    assert 'data-district="south"' in with_issues and 'data-district="north"' not in with_issues
    assert 'data-district="south"' not in carla.get("/districts?status=blocked").text
    assert 'data-district="north"' in carla.get("/districts?source=requested").text
    # the latest changes, with who made them, on the CSM's list
    listed = carla.get("/districts").text
    assert "nora" in listed and "district administrator" in listed and "carla" in listed
    assert carla.get("/districts?school_year=20x3").status_code == 400


def test_names_with_a_script_tag_are_shown_escaped(site: Site) -> None:
    carla, nora = site.server.sign_in("carla"), site.server.sign_in("nora")
    pages = [carla.get("/districts"), carla.get("/districts/evil"), nora.get("/districts/north")]
    for response in pages:
        assert response.status_code == 200
        assert "<script" not in response.text.lower()
        assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "&lt;script&gt;alert(&#34;district&#34;)&lt;/script&gt;" in pages[0].text
    assert "&lt;script&gt;alert(&#34;district&#34;)&lt;/script&gt;" in pages[1].text
    assert "&lt;script&gt;alert(&#39;educator&#39;)&lt;/script&gt;" in pages[2].text
    assert SCRIPT_DISTRICT not in pages[0].text and SCRIPT_EDUCATOR not in pages[2].text


def test_a_disabled_users_session_stops_working(site: Site) -> None:
    cleo = site.server.sign_in("cleo")
    assert cleo.get("/districts").status_code == 200
    done = site.cli("users", "disable", "cleo")
    assert done.returncode == 0, done.stderr
    assert cleo.get("/districts").headers.get("location") == "/login"
    assert site.server.login(site.server.client(), "cleo", USERS["cleo"][2]).status_code == 401
    listed = json.loads(site.cli("users", "list", "--json").stdout)["users"]
    assert next(u for u in listed if u["username"] == "cleo")["disabled_at"]


def test_the_tenth_wrong_password_in_a_minute_is_throttled(site: Site) -> None:
    client = site.server.client()
    answers = [site.server.login(client, "nina", f"wrong-{n}").status_code for n in range(10)]
    assert answers == [401] * 9 + [429]
    # throttled now, even with the right password; another account is not
    assert site.server.login(client, "nina", USERS["nina"][2]).status_code == 429
    assert site.server.login(client, "sam", USERS["sam"][2]).status_code == 303
    outcomes = site.query(
        "select outcome, count(*) from eoy_runner.console_actions "
        "where username = 'nina' and action = 'login' group by outcome"
    )
    assert dict(outcomes) == {"failed": 9, "refused": 2}


def test_a_session_ends_after_30_idle_minutes_or_12_hours_whatever_happens(site: Site) -> None:
    """The limits are kept by the server, in the session's row: moving a session's times
    back, as the clock would, ends it."""
    keys = Keys(SECRET)

    def row_of(client: Any) -> str:
        return keys.session_id(client.cookies["eoy_session"])

    def move(client: Any, **times: datetime) -> None:
        sets = ", ".join(f"{column} = %s" for column in times)
        with connect(site.settings) as wh:
            wh.execute(
                f"update eoy_console.sessions set {sets} where session_hash = %s",
                [*times.values(), row_of(client)],
            )

    now = utcnow()
    idle = site.server.sign_in("sam")
    (created, expires), *_ = site.query(
        "select created_at, expires_at from eoy_console.sessions where session_hash = %s",
        [row_of(idle)],
    )
    assert expires - created == timedelta(hours=12)
    # 29 idle minutes: still signed in, and the request counts as the session's use
    move(idle, last_seen_at=now - timedelta(minutes=29))
    assert idle.get("/districts/south").status_code == 200
    (seen,), *_ = site.query(
        "select last_seen_at from eoy_console.sessions where session_hash = %s", [row_of(idle)]
    )
    assert seen >= now - timedelta(minutes=1)
    move(idle, last_seen_at=utcnow() - timedelta(minutes=31))
    assert idle.get("/districts/south").headers.get("location") == "/login"
    # 12 hours after signing in, the session ends though it was used a moment ago
    busy = site.server.sign_in("sam")
    started = utcnow() - timedelta(hours=12, minutes=1)
    move(busy, created_at=started, expires_at=started + timedelta(hours=12))
    assert busy.get("/districts/south").headers.get("location") == "/login"
    # a session of an hour, used a moment ago, goes on
    fresh = site.server.sign_in("sam")
    move(fresh, created_at=utcnow() - timedelta(hours=1))
    assert fresh.get("/districts/south").status_code == 200


def test_the_district_admin_and_the_csm_see_the_notices_that_went_out(site: Site) -> None:
    """`notices --send` beside the console: the district's administrator sees its notice
    (date, status, recipients), the CSM sees which districts were sent one and when;
    another district sees none."""
    with connect(site.settings) as wh:
        insert_rows(
            wh,
            "educators",
            [
                {
                    "educator_id": f"north-admin-{n}",
                    "district_id": "north",
                    "school_id": None,
                    "email": f"admin{n}@north.example",
                    "first_name": "Ada",
                    "last_name": f"Admin {n}",
                    "role": "administrator",
                    "last_login_at": datetime(2023, 5, 1),
                    "created_at": datetime(2020, 1, 1),
                }
                for n in (1, 2)
            ],
        )
    nora, sam, carla = (site.server.sign_in(n) for n in ("nora", "sam", "carla"))
    assert "No notice sent yet." in nora.get("/districts/north").text
    with local_smtp() as inbox:
        sent = site.cli(
            "notices", "--as-of", AS_OF, "--out", str(site.folder / "notices"), "--send",
            "--from", "csm@vendor.example", "--smtp-host", "127.0.0.1",
            "--smtp-port", str(inbox.port),
        )  # fmt: skip
        assert sent.returncode == 0, sent.stderr
    assert sorted(to for m in inbox.received for to in m.rcpt_tos) == [
        "admin1@north.example",
        "admin2@north.example",
    ]
    (when, day), *_ = site.query(
        "select sent_at, effective_reset_date from eoy_runner.notices_sent "
        "where district_id = 'north'"
    )
    page = nora.get("/districts/north").text
    notices = page.split('id="notices"')[1].split("</section>")[0]
    row = re.search(r"<tr><td>([^<]*)</td><td>([^<]*)</td>.*?<td class=\"n\">(\d+)</td>", notices)
    assert row, notices
    assert row.groups() == (f"{when:%Y-%m-%d %H:%M} UTC", day.isoformat(), "2")
    assert "No notice sent yet." in sam.get("/districts/south").text
    listed = carla.get("/districts").text
    last = {
        d: cells[-1]
        for d, cells in (
            (m.group(1), re.findall(r"<td[^>]*>(.*?)</td>", m.group(2), re.S))
            for m in re.finditer(r'<tr data-district="(\w+)">(.*?)</tr>', listed, re.S)
        )
    }
    assert last["north"] == f"{when:%Y-%m-%d %H:%M} UTC"
    assert last["south"] == "—"


def test_a_district_admin_downloads_its_copy_as_parquet(site: Site) -> None:
    """Before the reset: the live rows, the same in Parquet as in CSV."""
    nora = site.server.sign_in("nora")
    csv_copy = copy_of(nora.get("/districts/north/copy?format=csv"))
    parquet = nora.get("/districts/north/copy?format=parquet")
    assert parquet.status_code == 200 and parquet.headers["content-type"] == "application/zip"
    students = parquet_rows(parquet.content, "students", site.folder / "parquet-before")
    assert {r["student_id"] for r in students} == {"north-s0", "north-s1"}
    assert len(csv_copy["students.csv"].splitlines()) == len(students) + 1
    assert "warehouse" in zipfile.ZipFile(io.BytesIO(parquet.content)).read("README.txt").decode()


def test_the_operator_sees_the_run_in_progress_first(site: Site) -> None:
    """A run under way (its ledger rows as the runner writes them: the run, its last step)
    is listed first with that step, before runs that finished later than it began."""
    started = utcnow() - timedelta(minutes=10)
    with connect(site.settings) as wh:
        wh.execute(
            "insert into eoy_runner.reset_runs (district_id, school_year, status, started_at, "
            "finished_at, rows_deleted, error) values "
            "('west', 2022, 'running', %s, null, 0, null), "
            "('east', 2022, 'completed', %s, %s, 12, null)",
            [started, started - timedelta(minutes=20), utcnow() - timedelta(minutes=1)],
        )
        wh.execute(
            "insert into eoy_runner.reset_events (district_id, school_year, step, status, "
            "\"at\", detail) values ('west', 2022, 'snapshot', 'started', %s, '{}')",
            [started + timedelta(minutes=1)],
        )
    try:
        page = site.server.sign_in("otto").get("/runs?school_year=2022").text
        rows = re.findall(r'<tr data-district="(\w+)" data-status="(\w+)">(.*?)</tr>', page, re.S)
        assert [(d, s) for d, s, _ in rows] == [("west", "running"), ("east", "completed")]
        assert "snapshot" in rows[0][2] and "started" in rows[0][2]
        assert '<span class="badge running">1 running</span>' in page
    finally:
        with connect(site.settings) as wh:
            wh.execute("delete from eoy_runner.reset_events where school_year = 2022")
            wh.execute("delete from eoy_runner.reset_runs where school_year = 2022")


def test_the_console_answers_busy_while_a_command_holds_the_warehouse(site: Site) -> None:
    otto = site.server.sign_in("otto")
    if site.settings.target == "duckdb":
        holder = duckdb.connect(str(site.settings.duckdb_path))  # as a running command does
        try:
            busy = otto.get("/runs")
        finally:
            holder.close()
        assert busy.status_code == 503 and "in use by another process" in busy.text
        assert '<meta http-equiv="refresh"' in busy.text
    else:  # PostgreSQL: a command's open transaction is no obstacle
        with connect(site.settings) as wh, wh.transaction():
            wh.execute("select 1 from eoy_runner.reset_runs for update")
            assert otto.get("/runs").status_code == 200
    assert otto.get("/runs").status_code == 200


def test_an_approval_in_the_console_lets_run_plan_run(site: Site) -> None:
    """plan --out, approve in the browser, run --plan beside the running console; the
    operator sees the runs, and the district's copy comes from its snapshot after it."""
    nora = site.server.sign_in("nora")
    before = copy_of(nora.get("/districts/north/copy?format=csv"))
    assert "warehouse" in before["README.txt"] and len(before["students.csv"].splitlines()) == 3
    plan = site.folder / "plan.json"
    made = site.cli("plan", "--as-of", AS_OF, "--out", str(plan), "--json", EOY_OPERATOR="olga")
    assert made.returncode == 0, made.stderr
    sha = json.loads(plan.read_text())["plan_sha256"]
    run = ["run", "--as-of", AS_OF, "--plan", str(plan), "--json"]
    two = {"EOY_OPERATOR": "otto", "EOY_REQUIRE_SECOND_PERSON": "1"}
    assert "is not approved" in site.cli(*run, **two).stderr

    rita = site.server.sign_in("rita")
    plans = rita.get("/plans").text
    assert sha in plans and "olga" in plans and "nobody yet" in plans
    approved = rita.post(f"/plans/{sha}/approve", data={"csrf_token": csrf_of(plans)})
    assert (
        approved.status_code == 303
        and approved.headers["location"] == f"/plans?approved={sha[:12]}"
    )
    assert "You approved this plan" in rita.get(approved.headers["location"]).text
    assert site.query(
        "select approved_by from eoy_runner.plan_approvals where plan_sha256 = %s", [sha]
    ) == [("rita",)]
    unknown = rita.post("/plans/" + "f" * 64 + "/approve", data={"csrf_token": csrf_of(plans)})
    assert unknown.status_code == 404

    done = site.cli(*run, **two)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {d["district_id"]: d["status"] for d in result["districts"]} == {
        "north": "completed",
        "south": "completed",
        "evil": "completed",
    }
    with connect(site.settings) as wh:
        wh.execute(
            "insert into eoy_runner.reset_runs (district_id, school_year, status, started_at, "
            "finished_at, rows_deleted, error) values ('west', 2023, 'failed', "
            "current_timestamp, current_timestamp, 0, 'the snapshot root is full: free space')"
        )
    runs = site.server.sign_in("otto").get("/runs").text
    assert '<meta http-equiv="refresh" content="5">' in runs
    for district in ("north", "south", "evil"):
        assert f'data-district="{district}" data-status="completed"' in runs
    assert 'data-status="failed"' in runs and "the snapshot root is full: free space" in runs

    page = nora.get("/districts/north").text
    assert 'id="reset-done"' in page
    after = copy_of(nora.get("/districts/north/copy?format=csv"))
    assert "snapshot" in after["README.txt"]
    assert sorted(after["students.csv"].splitlines()) == sorted(before["students.csv"].splitlines())
    assert nora.get("/districts/south/copy?format=csv").status_code == 404
    assert nora.get("/districts/south/copy?format=parquet").status_code == 404
    copies = site.query(
        "select outcome from eoy_runner.console_actions "
        "where action = 'copy' and username = 'nora' order by action_id"
    )
    # the Parquet copy of an earlier test, then the two here
    assert [c[0] for c in copies] == ["ok", "ok", "ok", "ok"]


def test_the_copy_after_the_next_years_rostering_holds_no_next_year_row(site: Site) -> None:
    """North was reset; its 2024 rostering completes and brings a 2024 student: the console's
    2023 copy, CSV and Parquet, still comes from the snapshot and holds 2023's rows only."""
    nora = site.server.sign_in("nora")
    reset_copy = copy_of(nora.get("/districts/north/copy?format=csv&school_year=2023"))
    with connect(site.settings) as wh:
        insert_rows(
            wh,
            "students",
            [
                {
                    "student_id": NEXT_YEAR_STUDENT,
                    "district_id": "north",
                    "school_id": "north-sch",
                    "username": "new24north",
                    "first_name": "New",
                    "last_name": "Kid",
                    "grade_level": "K",
                    "created_at": datetime(2023, 8, 20, 6, 0),
                }
            ],
        )
        wh.execute(
            "insert into app.rostering_runs (district_id, school_year, completed_at) "
            "values ('north', 2024, %s)",
            [datetime(2023, 8, 20, 6, 0)],
        )
    after = copy_of(nora.get("/districts/north/copy?format=csv&school_year=2023"))
    assert "snapshot" in after["README.txt"]
    assert NEXT_YEAR_STUDENT not in after["students.csv"]
    assert after["students.csv"] == reset_copy["students.csv"]
    parquet = nora.get("/districts/north/copy?format=parquet&school_year=2023")
    assert parquet.status_code == 200, parquet.text[:300]
    students = parquet_rows(parquet.content, "students", site.folder / "parquet-after")
    assert {r["student_id"] for r in students} == {"north-s0", "north-s1"}
    assert site.query(
        "select count(*) from app.students where student_id = %s", [NEXT_YEAR_STUDENT]
    ) == [(1,)]


def test_a_district_admin_sees_its_certificate_and_no_other_districts(site: Site) -> None:
    """Once the reset's certificate is issued, the district's page lists it and serves its
    three files as the ledger issued them; they verify; no other district's is served."""
    nora, sam, carla = (site.server.sign_in(n) for n in ("nora", "sam", "carla"))
    assert 'id="certificates"' not in nora.get("/districts/north").text
    assert nora.get("/districts/north/certificate?file=json").status_code == 404
    keys = site.folder / "keys"
    assert site.cli("keygen", "--out", str(keys)).returncode == 0
    issued = {}
    for district in ("north", "south"):
        out = site.folder / f"certificate-{district}"
        done = site.cli(
            "certificate", "--district", district, "--school-year", "2023", "--out", str(out),
            EOY_SIGNING_KEY=str(keys / "signing.key"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        issued[district] = out
    sha = hashlib.sha256((issued["north"] / "certificate.json").read_bytes()).hexdigest()

    page = nora.get("/districts/north").text
    section = page.split('id="certificates"')[1].split("</section>")[0]
    assert sha in section and "Certificate of disposition of student data" in section
    assert 'data-certificate="copy_destroyed"' not in section
    links = dict(re.findall(r'id="certificate-disposition-(\w+)" href="([^"]+)"', section))
    assert set(links) == {"html", "json", "sig"}
    got = {}
    for name, href in links.items():
        response = nora.get(html.unescape(href))
        assert response.status_code == 200, (name, response.text[:300])
        got[name] = response
    assert got["json"].content == (issued["north"] / "certificate.json").read_bytes()
    assert got["sig"].content == (issued["north"] / "certificate.json.sig").read_bytes()
    assert got["html"].content == (issued["north"] / "certificate.html").read_bytes()
    assert got["json"].headers["content-disposition"].startswith("attachment;")
    assert got["html"].headers["content-type"].startswith("text/html")
    policy = got["html"].headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script" not in policy
    # what the district downloaded verifies with the vendor's public key
    kept = site.folder / "kept"
    kept.mkdir()
    (kept / "certificate.json").write_bytes(got["json"].content)
    (kept / "certificate.json.sig").write_bytes(got["sig"].content)
    checked = site.cli(
        "verify-certificate", str(kept / "certificate.json"),
        "--public-key", str(keys / "signing.pub"),
    )  # fmt: skip
    assert checked.returncode == 0 and checked.stdout.strip() == "valid", checked.stderr

    south_json = (issued["south"] / "certificate.json").read_bytes()
    cookie = session_cookie(nora)
    for path in [
        "/districts/south/certificate?file=json",
        "/districts/south/certificate?school_year=2023&kind=disposition&file=sig",
        "/districts/north/../south/certificate?file=json",
        "/districts/north%2F..%2Fsouth/certificate?file=json",
        "/districts/north/certificate/../../south/certificate?file=json",
        "/districts/north/certificate?file=../../south/certificate.json",
        "/districts/north/certificate?kind=copy_destroyed&file=json",
        "/districts/north/certificate?kind=../disposition&file=json",
    ]:
        status, body = site.server.raw("GET", path, cookie)
        assert status == 404 and '"id":"south"' not in body, (path, status)
    # another district's id in the query changes nothing: its own certificate
    changed = nora.get("/districts/north/certificate?file=json&district_id=south")
    assert changed.content == got["json"].content
    assert sam.get("/districts/south/certificate?file=json").content == south_json
    assert sam.get("/districts/north/certificate?file=json").status_code == 404
    assert carla.get("/districts/north/certificate?file=json").content == got["json"].content
    assert site.server.sign_in("otto").get("/districts/north/certificate").status_code == 403
    assert site.server.client().get("/districts/north/certificate").status_code == 303


def test_no_password_hash_secret_or_dsn_in_any_page_log_or_ledger_row(site: Site) -> None:
    """Last: it stops the console, to read its whole log."""
    tokens = []
    for name in USERS:
        if name in ("cleo", "nina"):
            continue
        client = site.server.sign_in(name)
        tokens.append(client.cookies["eoy_session"])
        client.get("/")
    log = site.server.stop()
    assert "Console of" in log and "GET /districts" in log
    texts = {"server log": log, **{f"page {n}": p for n, p in enumerate(site.server.pages)}}
    with connect(site.settings) as wh:
        for (table,) in wh.query(
            "select table_name from information_schema.tables where table_schema = 'eoy_runner'"
        ):
            texts[f"eoy_runner.{table}"] = repr(wh.query(f"select * from eoy_runner.{table}"))
        texts["sessions"] = repr(wh.query("select * from eoy_console.sessions"))
        texts["failures"] = repr(wh.query("select * from eoy_console.login_failures"))
        hashes = [h for (h,) in wh.query("select password_hash from eoy_console.users")]
    assert len(site.server.pages) > 50 and all(h.startswith("$argon2id$") for h in hashes)
    needles = {
        "secret": SECRET,
        "hash": "$argon2",
        **{f"password of {u}": v[2] for u, v in USERS.items()},
    }
    needles.update({f"session token {n}": t for n, t in enumerate(tokens)})
    needles.update({"a wrong password": "wrong-3"})
    if site.settings.pg_dsn:
        needles.update({"DSN password": DSN_PASSWORD, "DSN": site.settings.pg_dsn})
    for where, text in texts.items():
        for what, needle in needles.items():
            assert needle not in text, f"{what} in {where}"
