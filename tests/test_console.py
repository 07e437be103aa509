"""The web console over HTTP (SPEC §8b, issue: the people around the reset get a web console),
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

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from jobs.config import PROJECT_DIR
from jobs.warehouse.connection import connect
from tests import fork_server
from tests.conftest import TARGETS
from tests.console_helpers import (
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
from tests.crash_helpers import cli_env


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
    assert [c[0] for c in copies] == ["ok", "ok"]


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
