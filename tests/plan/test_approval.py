"""`eoy-reset approve` and `run --plan`: a plan runs only once someone approved
exactly that plan in the ledger, and, with EOY_REQUIRE_SECOND_PERSON=1, only when someone
other than the person running it approved it. Through the command line, on both targets.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from jobs.config import Settings
from jobs.plan.planner import write_plan
from jobs.warehouse.connection import connect
from tests.support.crash_helpers import AS_OF, fresh, run_cli
from tests.support.runner_helpers import dump_app, dump_ledger

RUN_PLAN = ["run", "--as-of", AS_OF.isoformat(), "--json", "--plan"]


@pytest.fixture
def loaded(settings: Settings) -> Settings:
    """A small generated warehouse, no connection left open (the commands run as processes)."""
    fresh(settings)
    return settings


def state(settings: Settings) -> tuple[Any, ...]:
    with connect(settings) as wh:
        approvals = (
            wh.query(
                "select plan_sha256, approved_by from eoy_runner.plan_approvals "
                "order by plan_sha256, approved_by"
            )
            if wh.relation_exists("eoy_runner", "plan_approvals")
            else None
        )
        return dump_app(wh), dump_ledger(wh), approvals


def approvals(settings: Settings) -> list[tuple[str, str]]:
    with connect(settings) as wh:
        rows = wh.query(
            "select plan_sha256, approved_by from eoy_runner.plan_approvals "
            "order by approved_at, approved_by"
        )
    return [(str(h), str(b)) for h, b in rows]


def one_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode != 0, done.stdout
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("eoy-reset: ") and "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def make_plan_file(settings: Settings, path: Path) -> dict[str, Any]:
    done = run_cli(settings, ["plan", "--as-of", AS_OF.isoformat(), "--out", str(path), "--json"])
    assert done.returncode == 0, done.stderr
    plan: dict[str, Any] = json.loads(path.read_text())
    assert plan["due"], "the plan has no due district: it proves nothing"
    return plan


def approve(settings: Settings, path: Path, *more: str, **env: str) -> dict[str, Any]:
    done = run_cli(settings, ["approve", str(path), "--json", *more], **env)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def students(settings: Settings) -> int:
    with connect(settings) as wh:
        return int(wh.scalar("select count(*) from app.students"))


def pause_details(settings: Settings) -> list[dict[str, Any]]:
    """The detail of every completed pause_syncs event, the first step of a district's run."""
    with connect(settings) as wh:
        return [
            json.loads(str(d))
            for (d,) in wh.query(
                "select cast(detail as "
                + ("text" if wh.target == "postgres" else "varchar")
                + ") from eoy_runner.reset_events "
                "where step = 'pause_syncs' and status = 'completed' order by district_id"
            )
        ]


def edited_and_rehashed(path: Path, out: Path) -> None:
    """What anyone can do to a plan file: change it and recompute its unkeyed hash."""
    plan = json.loads(path.read_text())
    plan["due"][0]["rows"]["students"] += 1
    plan["due"][0]["rows_total"] += 1
    write_plan(plan, out)


def test_an_unapproved_or_edited_plan_is_refused_and_nothing_changes(
    loaded: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    plan = make_plan_file(loaded, path)
    before = state(loaded)

    done = run_cli(loaded, [*RUN_PLAN, str(path)])
    line = one_line(done, f"plan {path} is not approved", f"eoy-reset approve {path}")
    assert plan["plan_sha256"] not in line
    assert state(loaded) == before

    # approved, then edited with its hash recomputed: the edit is a plan nobody approved
    approve(loaded, path, "--by", "reviewer")
    edited = tmp_path / "edited.json"
    edited_and_rehashed(path, edited)
    one_line(run_cli(loaded, [*RUN_PLAN, str(edited)]), f"plan {edited} is not approved")
    # edited without a new hash: not even a plan
    text = path.read_text().replace('"students": ', '"students": 1', 1)
    tampered = tmp_path / "tampered.json"
    tampered.write_text(text)
    one_line(run_cli(loaded, [*RUN_PLAN, str(tampered)]), "was changed after it was written")
    one_line(run_cli(loaded, ["approve", str(tampered)]), "was changed after it was written")
    one_line(run_cli(loaded, ["approve", str(tmp_path / "none.json")]), "does not exist")

    app_before, ledger_before, _ = before
    app_now, ledger_now, _ = state(loaded)
    assert (app_now, ledger_now) == (app_before, ledger_before)
    assert approvals(loaded) == [(plan["plan_sha256"], "reviewer")]
    assert students(loaded) > 0


@pytest.mark.parametrize(
    "plan",
    [
        {"as_of": "2023-07-28", "school_year": 2023, "due": "everyone"},
        {"as_of": "2023-07-28", "school_year": 2023, "due": [{"rows": {"students": 3}}]},
        {"as_of": "2023-07-28", "due": []},
        {"as_of": "2023-07-28", "school_year": 2023, "due": [{"district_id": "d1", "rows": 3}]},
    ],
    ids=["due_not_a_list", "no_district_id", "no_school_year", "rows_not_counts"],
)
def test_approving_a_malformed_plan_records_nothing(
    loaded: Settings, tmp_path: Path, plan: dict[str, Any]
) -> None:
    path = write_plan(plan, tmp_path / "plan.json")  # a valid hash over a malformed body
    one_line(run_cli(loaded, ["approve", str(path), "--by", "reviewer"]), f"plan file {path}")
    assert approvals(loaded) == []


def test_an_approved_plan_runs_and_the_ledger_names_its_approval(
    loaded: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    plan = make_plan_file(loaded, path)
    due = [d["district_id"] for d in plan["due"]]

    doc = approve(loaded, path, EOY_OPERATOR="reviewer")
    assert doc["plan_sha256"] == plan["plan_sha256"]
    assert doc["approved_by"] == "reviewer" and doc["approved_at"]
    # it shows what is approved: districts and rows
    assert [d["district_id"] for d in doc["districts"]] == due
    assert [d["rows_total"] for d in doc["districts"]] == [d["rows_total"] for d in plan["due"]]
    assert doc["rows_total"] == plan["totals"]["rows"]
    text = run_cli(loaded, ["approve", str(path)], EOY_OPERATOR="reviewer")
    assert text.returncode == 0, text.stderr
    assert all(d in text.stdout for d in due) and "reviewer" in text.stdout

    done = run_cli(loaded, [*RUN_PLAN, str(path)], EOY_OPERATOR="operator")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    used = {"plan_sha256": plan["plan_sha256"], "approved_by": "reviewer"}
    assert result["approval"] == used
    assert sorted(d["district_id"] for d in result["districts"]) == sorted(due)
    assert {d["status"] for d in result["districts"]} == {"completed"}
    details = pause_details(loaded)
    with connect(loaded) as wh:
        left = wh.scalar(
            "select count(*) from app.students where district_id in ("
            + ", ".join(["%s"] * len(due))
            + ")",
            due,
        )
    assert left == 0
    assert len(details) == len(due)
    assert all(d["approval"] == used for d in details)


TWO = {"EOY_REQUIRE_SECOND_PERSON": "1"}


def test_two_person_rule_knows_people_by_what_they_cannot_type(
    loaded: Settings, tmp_path: Path
) -> None:
    """Under the rule an approval is recorded for the database role (PostgreSQL) or the OS
    account (DuckDB) that made it: `--by` and EOY_OPERATOR cannot forge a second person."""
    path = tmp_path / "plan.json"
    make_plan_file(loaded, path)
    before = state(loaded)
    one_line(
        run_cli(loaded, ["approve", str(path), "--by", "Not Root"], **TWO),
        "--by 'Not Root' is not who you are",
    )
    doc = approve(loaded, path, EOY_OPERATOR="Not Root", **TWO)  # recorded for who it is
    assert doc["approved_as"] in ("database role", "OS user")
    assert doc["approved_by"] != "Not Root"
    me = doc["approved_by"]
    assert approvals(loaded) == [(doc["plan_sha256"], me)]
    # the same person runs it, whatever name it gives: refused, nothing changes
    line = one_line(
        run_cli(loaded, [*RUN_PLAN, str(path)], EOY_OPERATOR="Someone Else", **TWO),
        f"approved only by {me}",
        "another person",
    )
    assert "EOY_REQUIRE_SECOND_PERSON" in line
    assert state(loaded)[:2] == before[:2]


def test_two_person_rule_refuses_a_run_without_an_approved_plan(
    loaded: Settings, tmp_path: Path
) -> None:
    before = state(loaded)
    run = ["run", "--as-of", AS_OF.isoformat(), "--yes"]
    one_line(run_cli(loaded, run, **TWO), "EOY_REQUIRE_SECOND_PERSON=1", "--plan")
    assert state(loaded) == before


def test_a_console_login_is_a_second_person(loaded: Settings, tmp_path: Path) -> None:
    """The web console's logged-in user approves: the operator at the terminal may run it."""
    import os

    from jobs.plan.approval import approve_plan

    path = tmp_path / "plan.json"
    plan = make_plan_file(loaded, path)
    os.environ.update(TWO)
    try:
        doc = approve_plan(loaded, path, login="carol")
    finally:
        os.environ.pop("EOY_REQUIRE_SECOND_PERSON")
    assert doc["approved_by"] == "carol" and doc["approved_as"] == "console login"
    done = run_cli(loaded, ["run", "--as-of", AS_OF.isoformat(), "--plan", str(path)], **TWO)
    assert done.returncode == 0, done.stderr
    assert f"Ran plan {plan['plan_sha256'][:12]}, approved by carol." in done.stdout
    used = {"plan_sha256": plan["plan_sha256"], "approved_by": "carol"}
    details = pause_details(loaded)
    assert len(details) == len(plan["due"]) and all(d["approval"] == used for d in details)


@pytest.mark.postgres
@pytest.mark.parametrize("target", ["postgres"], indirect=True)
def test_two_person_rule_with_two_database_roles(loaded: Settings, tmp_path: Path) -> None:
    """Another database role approves; the operator's role runs it."""
    import uuid

    import psycopg

    path = tmp_path / "plan.json"
    plan = make_plan_file(loaded, path)
    role = f"reviewer_{uuid.uuid4().hex[:8]}"
    dsn = loaded.pg_dsn or ""
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"create role {role} login superuser")
    try:
        reviewer = replace(loaded, pg_dsn=dsn.replace("postgres@", f"{role}@", 1))
        doc = approve(reviewer, path, **TWO)
        assert doc["approved_by"] == role and doc["approved_as"] == "database role"
        done = run_cli(loaded, ["run", "--as-of", AS_OF.isoformat(), "--plan", str(path)], **TWO)
        assert done.returncode == 0, done.stderr
        assert f"approved by {role}." in done.stdout
        due = [d["district_id"] for d in plan["due"]]
        with connect(loaded) as wh:
            left = wh.scalar("select count(*) from app.students where district_id = any(%s)", [due])
        assert left == 0
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"drop role if exists {role}")


def test_the_runner_cannot_widen_the_tolerance_and_the_plan_carries_it(
    loaded: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "plan.json"
    make_plan_file(loaded, path)
    approve(loaded, path, "--by", "reviewer")
    before = state(loaded)
    one_line(
        run_cli(loaded, [*RUN_PLAN, str(path)], EOY_PLAN_TOLERANCE="0.99"),
        "EOY_PLAN_TOLERANCE",
        "may not widen it",
    )
    assert state(loaded) == before
    strict = tmp_path / "strict.json"
    done = run_cli(
        loaded,
        ["plan", "--as-of", AS_OF.isoformat(), "--tolerance", "0.05", "--out", str(strict)],
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(strict.read_text())["tolerance"] == 0.05
    one_line(
        run_cli(loaded, ["plan", "--as-of", AS_OF.isoformat(), "--tolerance", "2"]),
        "--tolerance 2.0 must be a fraction",
    )


def test_an_expired_approval_or_another_warehouses_plan_is_refused(
    loaded: Settings, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = tmp_path / "plan.json"
    make_plan_file(loaded, path)
    approve(loaded, path, "--by", "reviewer")
    with connect(loaded) as wh:
        wh.execute("update eoy_runner.plan_approvals set approved_at = %s", [datetime(2020, 1, 1)])
    before = state(loaded)
    one_line(run_cli(loaded, [*RUN_PLAN, str(path)]), "last approved on 2020-01-01", "expire")
    assert state(loaded) == before

    # the same file on another warehouse: refused by approve and by run
    if loaded.target == "postgres":
        from tests.conftest import create_pg_database

        other = replace(loaded, pg_dsn=create_pg_database(request.getfixturevalue("pg_base_dsn")))
    else:
        other = replace(loaded, duckdb_path=tmp_path / "other.duckdb")
    fresh(other)
    for args in (["approve", str(path), "--by", "reviewer"], [*RUN_PLAN, str(path)]):
        one_line(run_cli(other, args), f"the plan {path} was made on", "make and approve a plan")


def test_a_bad_second_person_setting_or_approver_is_refused(
    loaded: Settings, tmp_path: Path
) -> None:
    plan = {"as_of": "2023-07-28", "school_year": 2023, "due": [], "warehouse": loaded.describe()}
    path = write_plan(plan, tmp_path / "p.json")
    one_line(run_cli(loaded, ["approve", str(path), "--by", " "]), "--by")
    one_line(run_cli(loaded, ["approve", str(path), "--by", "a\nb"]), "--by")
    assert approvals(loaded) == []
    approve(loaded, path, "--by", "bob")
    one_line(
        run_cli(loaded, [*RUN_PLAN, str(path)], EOY_REQUIRE_SECOND_PERSON="maybe"),
        "EOY_REQUIRE_SECOND_PERSON",
    )
