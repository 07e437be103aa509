"""Least privilege on PostgreSQL: the runner cannot touch what the reset keeps, and the
analyst cannot read student rows (issue: reliability and security, item 5); each role does
its own job end to end, whichever came first, the roles or a build (issue: what a newcomer
trips over, item 2)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from jobs.config import Settings
from jobs.warehouse.connection import Warehouse
from jobs.warehouse.roles import create_roles
from tests.support import operator_data as od
from tests.support.operator_data import eoy, one_line

pytestmark = pytest.mark.postgres


@pytest.fixture
def target() -> str:
    return "postgres"


def as_role(dsn: str, role: str) -> psycopg.Connection:
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return psycopg.connect(
        urlunsplit((parts.scheme, f"{role}@{host}", parts.path, "", "")), autocommit=True
    )


@pytest.fixture
def roles_wh(wh: Warehouse, pg_server_wide: None) -> Warehouse:
    """The roles are the server's: no other test creates them meanwhile (pg_server_wide)."""
    wh.execute("insert into app.districts values ('d1', 'North', 'TX')")
    wh.execute("insert into app.schools values ('s1', 'd1', 'North High')")
    wh.execute(
        "insert into app.educators values ('e1', 'd1', 's1', 'e1@example.org', 'Ann', 'Lee', "
        "'teacher', null, '2022-08-01')"
    )
    wh.execute(
        "insert into app.students values ('st1', 'd1', 's1', 'u1', 'Zoë', 'Ng', '3', '2022-08-01')"
    )
    wh.execute(
        "insert into app.import_syncs values ('y1', 'd1', 'clever', 'active', null, null, null)"
    )
    assert create_roles(wh) == ["eoy_dbt", "eoy_runner", "eoy_analyst", "eoy_csm"]
    create_roles(wh)  # idempotent
    return wh


@pytest.mark.parametrize("table", ["districts", "schools", "educators"])
def test_runner_cannot_delete_retained_tables(roles_wh: Warehouse, table: str) -> None:
    with (
        as_role(roles_wh.settings.pg_dsn or "", "eoy_runner") as con,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        con.execute(f"delete from app.{table}")
    assert roles_wh.scalar(f"select count(*) from app.{table}") == 1


def test_runner_cannot_change_educators_or_sync_config(roles_wh: Warehouse) -> None:
    with as_role(roles_wh.settings.pg_dsn or "", "eoy_runner") as con:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("update app.educators set email = 'x@example.org'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("update app.import_syncs set provider = 'classlink'")
        con.execute("update app.import_syncs set status = 'paused', paused_at = now()")
        con.execute("delete from app.students where district_id = 'd1'")
    assert roles_wh.scalar("select status from app.import_syncs") == "paused"
    assert roles_wh.scalar("select count(*) from app.students") == 0


def test_runner_owns_the_ledger(roles_wh: Warehouse) -> None:
    with as_role(roles_wh.settings.pg_dsn or "", "eoy_runner") as con:
        con.execute(
            "insert into eoy_runner.reset_events (district_id, school_year, step, status) "
            "values ('d1', 2023, 'pause_syncs', 'completed')"
        )
        # `plan --out` keeps the plan it writes
        con.execute(
            "insert into eoy_runner.plans (plan_sha256, made_at, made_by, school_year, as_of, "
            "document) values ('abc', now(), 'olga', 2023, '2023-07-28', '{}')"
        )


def test_the_web_consoles_accounts_are_no_other_roles(roles_wh: Warehouse) -> None:
    """eoy_console (password hashes, sessions) is outside the ledger the other roles read."""
    for role in ("eoy_dbt", "eoy_runner", "eoy_analyst", "eoy_csm"):
        with (
            as_role(roles_wh.settings.pg_dsn or "", role) as con,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            con.execute("select password_hash from eoy_console.users")


def test_analyst_reads_audit_views_but_no_student_rows(roles_wh: Warehouse) -> None:
    with as_role(roles_wh.settings.pg_dsn or "", "eoy_dbt") as con:
        con.execute(
            "create view eoy_audit.audit_probe as "
            "select district_id, count(*) as students from app.students group by 1"
        )
    with as_role(roles_wh.settings.pg_dsn or "", "eoy_analyst") as con:
        assert con.execute("select students from eoy_audit.audit_probe").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("select * from app.students")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            con.execute("select * from app.educators")


def test_the_csm_records_requests_and_notices_but_deletes_nothing(roles_wh: Warehouse) -> None:
    with as_role(roles_wh.settings.pg_dsn or "", "eoy_csm") as con:
        con.execute(
            "insert into app.district_reset_requests (district_id, school_year, "
            "requested_reset_date) values ('d1', 2023, '2023-07-10')"
        )
        con.execute(
            "update app.district_reset_requests set requested_reset_date = '2023-07-11' "
            "where district_id = 'd1'"
        )
        con.execute(
            "insert into eoy_runner.reset_request_changes (district_id, school_year, "
            "changed_by, changed_at, anyway) values ('d1', 2023, 'csm', now(), false)"
        )
        con.execute(
            "insert into eoy_runner.notices_sent (district_id, school_year, "
            "effective_reset_date, schedule_status, recipients, message_id, sent_at) "
            "values ('d1', 2023, '2023-07-11', 'scheduled', 1, '<m@x>', now())"
        )
        for sql in (
            "delete from app.students",
            "delete from app.district_reset_requests",
            "update app.educators set role = 'administrator'",
            "delete from eoy_runner.notices_sent",
            "update eoy_runner.reset_request_changes set changed_by = 'someone else'",
            "update eoy_runner.reset_runs set status = 'completed'",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute(sql)
    assert roles_wh.scalar("select count(*) from app.students") == 1
    assert roles_wh.scalar(
        "select requested_reset_date::text from app.district_reset_requests"
    ) == ("2023-07-11")


def role_settings(settings: Settings, role: str) -> Settings:
    """The same warehouse, connected as `role` (the roles log in without a password here)."""
    parts = urlsplit(settings.pg_dsn or "")
    host = parts.netloc.rsplit("@", 1)[-1]
    return replace(
        settings, pg_dsn=urlunsplit((parts.scheme, f"{role}@{host}", parts.path, "", ""))
    )


@pytest.mark.parametrize("first", ["roles", "build"])
def test_each_role_does_its_job_end_to_end(
    settings: Settings, pg_server_wide: None, tmp_path: Path, first: str
) -> None:
    """After `init --roles`, whether dbt built before it (as the owner) or not: the runner
    plans and runs, the analyst queries and reports, the CSM records a date and writes the
    notices, and each one's builds leave the others able to do theirs."""
    od.fresh(settings)
    if first == "build":  # the owner built the models and the audit views first
        assert (
            eoy(
                settings, ["report", "--html", str(tmp_path / "r0.html"), "--as-of", "2023-07-28"]
            ).returncode
            == 0
        )
    assert eoy(settings, ["init", "--roles"]).returncode == 0
    runner, analyst, csm = (
        role_settings(settings, r) for r in ("eoy_runner", "eoy_analyst", "eoy_csm")
    )

    plan = tmp_path / "plan.json"
    for args in (
        ["plan", "--as-of", "2023-07-28", "--out", str(plan)],
        ["approve", str(plan), "--by", "reviewer"],
        ["run", "--as-of", "2023-07-28", "--plan", str(plan)],
    ):
        done = eoy(runner, args)
        assert done.returncode == 0, (args, done.stderr)
    assert "2 completed" in done.stdout

    def analyst_reads(as_of: str) -> None:
        asked = eoy(analyst, ["query", "time_from_reset_to_resumed_sync", "--json"])
        assert asked.returncode == 0, asked.stderr
        assert {r["district_id"] for r in json.loads(asked.stdout)["rows"]} == {"early", "default"}
        report = eoy(analyst, ["report", "--html", str(tmp_path / "r.html"), "--json"])
        assert report.returncode == 0, report.stderr
        assert json.loads(report.stdout)["as_of"] == as_of
        assert json.loads(report.stdout)["counts"]["completed"] == 2

    analyst_reads("2023-07-28")  # the views as the run's build left them
    # what the analyst may not do says which role does it, never "run init"
    for args, needle in (
        (["status"], "permission denied for schema eoy_runner"),
        (
            ["report", "--html", str(tmp_path / "r.html"), "--as-of", "2023-08-01"],
            "as of 2023-07-28",
        ),
    ):
        line = one_line(eoy(analyst, args), needle)
        assert "init`" not in line.replace("init --roles`", ""), line

    moved = eoy(csm, ["request-date", "--district", "later", "--date", "2023-08-16"])
    assert moved.returncode == 0, moved.stderr
    notices = eoy(csm, ["notices", "--as-of", "2023-08-01", "--out", str(tmp_path / "notices")])
    assert notices.returncode == 0, notices.stderr
    again = eoy(runner, ["plan", "--as-of", "2023-08-16"])
    assert again.returncode == 0 and "later" in again.stdout, again.stderr
    analyst_reads("2023-08-16")  # rebuilt by the runner's plan, as of its day
    with psycopg.connect(settings.pg_dsn or "") as con:
        owners = con.execute(
            "select distinct pg_get_userbyid(c.relowner) from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname in ('eoy', 'eoy_audit') and c.relkind in ('r', 'v')"
        ).fetchall()
    assert owners == [("eoy_dbt",)]
