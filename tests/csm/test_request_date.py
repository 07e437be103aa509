"""`eoy-reset request-date` (issue 14): the CSM records a district's request, sees at once the
reset date the plan will use, and a request the rules would not honour is refused, changing
nothing, unless --anyway. Every change is kept: who, when, old and new values.

On both targets. School year 2023: default 2023-07-28, earliest 2023-06-19.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from jobs.config import Settings
from jobs.csm.requests import RequestError, RequestRefused, request_date
from jobs.plan import make_plan
from jobs.plan.dbt import PolicyError
from jobs.report.html import build_audit_models
from jobs.warehouse import Warehouse, connect
from tests.support.crash_helpers import run_cli
from tests.support.reset_data import insert_rows

DISTRICTS = ("d1", "d2", "d3", "d4", "d5")


@pytest.fixture
def csm(settings: Settings, wh: Warehouse) -> Settings:
    insert_rows(
        wh,
        "districts",
        [{"district_id": d, "name": f"District {d}", "state": "OR"} for d in DISTRICTS],
    )
    wh.close()  # the commands open the warehouse themselves (DuckDB: one owner at a time)
    return settings


def state(settings: Settings) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    with connect(settings) as wh:
        return {
            "requests": sorted(wh.query("select * from app.district_reset_requests")),
            "changes": sorted(
                wh.query(
                    "select change_id, district_id, changed_by from "
                    "eoy_runner.reset_request_changes"
                )
            ),
        }


def schedule(settings: Settings) -> list[tuple[Any, ...]]:
    with connect(settings) as wh:
        return sorted(
            wh.query(
                "select district_id, effective_reset_date, date_source, status, issues "
                "from eoy.reset_schedule where school_year = 2023"
            )
        )


def schedule_row(settings: Settings, district_id: str) -> dict[str, Any]:
    with connect(settings) as wh:
        return wh.query_dicts(
            "select effective_reset_date, date_source, status, issues from eoy.reset_schedule "
            "where district_id = %s and school_year = 2023",
            [district_id],
        )[0]


def test_each_rule_gives_the_date_the_plan_uses(csm: Settings) -> None:
    """the reset-date rules 1-4 through request-date: the date printed is reset_schedule's, and the
    plan made next shows the same date, source and issues."""
    cases = {
        # rule 2: a valid request is the date
        "d1": dict(
            requested=date(2023, 6, 26),
            school_year_end=date(2023, 6, 9),
            rostering_start=date(2023, 8, 20),
        ),
        # rule 1 (a request too early falls back to the default), recorded anyway
        "d2": dict(requested=date(2023, 6, 18), anyway=True),
        # rule 3: a request during the summer session moves to the day after it
        "d3": dict(
            requested=date(2023, 7, 3),
            school_year_end=date(2023, 6, 2),
            summer_session_end=date(2023, 8, 4),
            rostering_start=date(2023, 8, 28),
            anyway=True,
        ),
        # rule 4: moved past the session onto the rostering start: blocked
        "d4": dict(
            requested=date(2023, 8, 1),
            summer_session_end=date(2023, 8, 15),
            rostering_start=date(2023, 8, 16),
            anyway=True,
        ),
    }
    expected = {
        "d1": (date(2023, 6, 26), "requested", "scheduled", []),
        "d2": (date(2023, 7, 28), "default", "scheduled", ["request_too_early"]),
        "d3": (
            date(2023, 8, 5),
            "after_session_end",
            "scheduled",
            ["request_during_session"],
        ),
        "d4": (
            date(2023, 8, 16),
            "after_session_end",
            "blocked",
            ["request_during_session", "conflicts_with_rostering"],
        ),
    }
    for district, args in cases.items():
        requested = args.pop("requested")
        doc = request_date(csm, district, requested, by="alice", **args)
        got = (doc["effective_reset_date"], doc["date_source"], doc["status"], doc["issues"])
        assert got == expected[district], district
        assert doc["changed"] and doc["recorded_by"] == "alice"
        assert doc["anyway"] is (district != "d1")
        row = schedule_row(csm, district)  # the mart the plan reads, rebuilt on the new row
        assert row["effective_reset_date"] == doc["effective_reset_date"]
        assert row["issues"] == ",".join(doc["issues"])
    assert (doc["accepted_from"], doc["accepted_until"]) == (date(2023, 8, 16), date(2023, 8, 15))

    plan = make_plan(csm, date(2023, 8, 10), 2023)
    due = {d["district_id"]: d for d in plan["due"]}
    assert due["d1"]["effective_reset_date"] == "2023-06-26"
    assert due["d1"]["date_source"] == "requested"
    assert due["d2"]["issues"] == ["request_too_early"]
    assert due["d3"]["effective_reset_date"] == "2023-08-05"
    assert due["d3"]["date_source"] == "after_session_end"
    blocked = {b["district_id"]: b for b in plan["blocked"]}
    assert blocked["d4"]["effective_reset_date"] == "2023-08-16"
    issues = {r["district_id"]: r["issues"] for r in plan["request_issues"]}
    assert issues["d3"] == ["request_during_session"]


REFUSALS = {
    "too early": (
        dict(requested=date(2023, 6, 1)),
        "2023-06-01 is before the policy's earliest reset date 2023-06-19; "
        "dates accepted: 2023-06-19 or later",
    ),
    "not before rostering": (
        dict(requested=date(2023, 8, 21), rostering_start=date(2023, 8, 21)),
        "2023-08-21 is not before rostering for the new school year starts (2023-08-21); "
        "dates accepted: 2023-06-19 to 2023-08-20",
    ),
    "during the school year": (
        dict(requested=date(2023, 6, 20), school_year_end=date(2023, 6, 23)),
        "2023-06-20 falls during the school year or summer session (it ends 2023-06-23), so "
        "the reset would move to 2023-06-24; dates accepted: 2023-06-24 or later",
    ),
    "during the summer session": (
        dict(
            requested=date(2023, 7, 10),
            school_year_end=date(2023, 6, 2),
            summer_session_end=date(2023, 7, 21),
            rostering_start=date(2023, 8, 14),
        ),
        "2023-07-10 falls during the school year or summer session (it ends 2023-07-21), so "
        "the reset would move to 2023-07-22; dates accepted: 2023-07-22 to 2023-08-13",
    ),
    "no date left": (
        dict(
            requested=date(2023, 8, 1),
            summer_session_end=date(2023, 8, 15),
            rostering_start=date(2023, 8, 16),
        ),
        "no date is accepted: the session ends 2023-08-15 and rostering starts 2023-08-16; "
        "record a later rostering start (--rostering-start) first",
    ),
}


def test_each_refusal_says_why_and_changes_nothing(csm: Settings) -> None:
    # an earlier valid request of the district stays exactly as it was
    request_date(csm, "d5", date(2023, 7, 14), by="alice")
    before, planned = state(csm), schedule(csm)
    for case, (args, said) in REFUSALS.items():
        args = dict(args)
        requested = args.pop("requested")
        with pytest.raises(RequestRefused) as refused:
            request_date(csm, "d5", requested, by="bob", **args)
        message = str(refused.value)
        assert "\n" not in message, case
        assert message.startswith("request refused for district 'd5', school year 2023: ")
        assert said in message, case
        assert message.endswith("nothing was recorded (--anyway records it as asked)")
        assert state(csm) == before, case
        assert schedule(csm) == planned, case


def test_a_refusal_on_the_command_line_is_one_line(csm: Settings) -> None:
    before = state(csm)
    done = run_cli(csm, ["request-date", "--district", "d1", "--date", "2023-06-01"])
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "before the policy's earliest reset date 2023-06-19" in lines[0]
    assert "Traceback" not in done.stderr
    assert state(csm) == before

    done = run_cli(
        csm,
        ["request-date", "--district", "d1", "--date", "2023-06-01", "--anyway", "--json"],
        EOY_OPERATOR="carol",
    )
    assert done.returncode == 0, done.stderr
    assert '"date_source": "default"' in done.stdout and '"recorded_by": "carol"' in done.stdout
    assert '"anyway": true' in done.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--district", "nowhere", "--date", "2023-07-01"], "no district 'nowhere'"),
        (["--district", "d1", "--date", "2031-07-01"], "no reset policy for school year 2031"),
        (["--district", "d1", "--date", "2023-02-30"], "--date 2023-02-30: no such day"),
        (["--district", "d1", "--date", "2023-07-01", "--rostering-start", "soon"], "not a date"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    csm: Settings, args: list[str], said: str
) -> None:
    before = state(csm)
    done = run_cli(csm, ["request-date", *args])
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and said in done.stderr, done.stderr
    assert state(csm) == before


def test_the_history_keeps_every_change(csm: Settings) -> None:
    steps = [
        ("alice", dict(requested=date(2023, 7, 10), rostering_start=date(2023, 8, 21))),
        ("bob", dict(requested=date(2023, 7, 17))),  # the rostering start stays
        ("bob", dict(requested=date(2023, 7, 17))),  # the same again: not a change
        ("carol", dict(requested=date(2023, 7, 17), rostering_start=None)),  # cleared
        ("dave", dict(requested=date(2023, 6, 5), anyway=True)),
    ]
    docs = []
    for who, args in steps:
        args = dict(args)
        requested = args.pop("requested")
        docs.append(request_date(csm, "d2", requested, by=who, **args))
    assert [d["changed"] for d in docs] == [True, True, False, True, True]
    assert docs[1]["request"]["rostering_start_date"] == date(2023, 8, 21)
    assert docs[2]["recorded_by"] is None

    with connect(csm) as wh:
        history = wh.query_dicts(
            "select * from eoy_runner.reset_request_changes where district_id = 'd2' "
            "order by change_id"
        )
        row = wh.query_dicts("select * from app.district_reset_requests")[0]
    assert [h["changed_by"] for h in history] == ["alice", "bob", "carol", "dave"]
    assert [(h["old_requested_reset_date"], h["new_requested_reset_date"]) for h in history] == [
        (None, date(2023, 7, 10)),
        (date(2023, 7, 10), date(2023, 7, 17)),
        (date(2023, 7, 17), date(2023, 7, 17)),
        (date(2023, 7, 17), date(2023, 6, 5)),
    ]
    assert [(h["old_rostering_start_date"], h["new_rostering_start_date"]) for h in history] == [
        (None, date(2023, 8, 21)),
        (date(2023, 8, 21), date(2023, 8, 21)),
        (date(2023, 8, 21), None),
        (None, None),
    ]
    assert [h["anyway"] for h in history] == [False, False, False, True]
    assert [h["effective_reset_date"] for h in history] == [
        date(2023, 7, 10),
        date(2023, 7, 17),
        date(2023, 7, 17),
        date(2023, 7, 28),
    ]
    assert history[-1]["issues"] == "request_too_early"
    times = [h["changed_at"] for h in history]
    assert times == sorted(times) and times[0] is not None
    assert row["requested_reset_date"] == date(2023, 6, 5) and row["rostering_start_date"] is None

    # what the audit shows
    build_audit_models(csm, date(2023, 6, 1), 2023)
    with connect(csm) as wh:
        audit = wh.query_dicts(
            "select changed_by, new_requested_reset_date, is_recorded_anyway, district_name "
            "from eoy_audit.audit_reset_date_changes order by change_id"
        )
    assert [(a["changed_by"], a["new_requested_reset_date"]) for a in audit] == [
        (h["changed_by"], h["new_requested_reset_date"]) for h in history
    ]
    assert audit[-1]["is_recorded_anyway"] and audit[0]["district_name"] == "District d2"


def test_dates_not_given_keep_what_is_recorded_and_none_clears(
    csm: Settings, tmp_path: Path
) -> None:
    done = run_cli(
        csm,
        [
            "request-date",
            "--district",
            "d3",
            "--date",
            "2023-07-24",
            "--school-year-end",
            "2023-06-09",
            "--summer-session-end",
            "2023-07-20",
        ],
    )
    assert done.returncode == 0, done.stderr
    done = run_cli(
        csm,
        ["request-date", "--district", "d3", "--date", "2023-07-21", "--by", "bob"],
    )
    assert done.returncode == 0, done.stderr
    assert "reset on 2023-07-21" in done.stdout and "Recorded by bob." in done.stdout
    done = run_cli(
        csm,
        [
            "request-date",
            "--district",
            "d3",
            "--date",
            "2023-07-05",
            "--summer-session-end",
            "none",
            "--by",
            "bob",
        ],
    )
    assert done.returncode == 0, done.stderr
    with connect(csm) as wh:
        row = wh.query_dicts("select * from app.district_reset_requests")[0]
    assert row["school_year_end_date"] == date(2023, 6, 9)
    assert row["summer_session_end_date"] is None
    assert row["requested_reset_date"] == date(2023, 7, 5)
    assert schedule_row(csm, "d3")["effective_reset_date"] == date(2023, 7, 5)


def test_a_district_reset_already_is_said_so(csm: Settings) -> None:
    with connect(csm) as wh:
        insert_rows(
            wh,
            "eoy_runner.reset_runs",
            [
                {
                    "district_id": "d4",
                    "school_year": 2023,
                    "status": "completed",
                    "effective_reset_date": date(2023, 7, 28),
                }
            ],
        )
    doc = request_date(csm, "d4", date(2023, 7, 3), by="alice")
    assert doc["run_status"] == "completed" and doc["changed"]
    assert request_date(csm, "d5", date(2023, 7, 3), by="alice")["run_status"] is None


def test_errors_name_the_problem(csm: Settings) -> None:
    with pytest.raises(RequestError, match="no district 'd9'"):
        request_date(csm, "d9", date(2023, 7, 1), by="alice")
    with pytest.raises(RequestError, match="--by must be a person's name on one line"):
        request_date(csm, "d1", date(2023, 7, 1), by="alice\nbob")
    with pytest.raises(PolicyError, match="school year 2030"):
        request_date(csm, "d1", date(2023, 7, 1), school_year=2030, by="alice")


def test_a_request_checks_with_the_kept_sql_only_while_project_and_policy_are_unchanged(
    csm: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After one request, the next needs no build before its check: the windows' SQL dbt
    compiled is kept. A policy table that differs from the seed file, or a project the SQL was
    not compiled from, makes the build come first again, so the check never runs on a policy
    or rules other than the seed's and the project's."""
    import jobs.csm.requests as requests

    builds: list[str] = []
    build = requests.build_request_models

    def counted(settings: Settings) -> Any:
        builds.append("before the check")
        return build(settings)

    monkeypatch.setattr(requests, "build_request_models", counted)
    request_date(csm, "d1", date(2023, 7, 10), by="ann")
    assert builds == ["before the check"]  # nothing kept yet
    assert request_date(csm, "d1", date(2023, 7, 11), by="ann")["effective_reset_date"] == (
        date(2023, 7, 11)
    )
    assert builds == ["before the check"]  # the kept SQL checked it

    # a policy table that is not the seed file's: an earliest date after the one asked for
    with connect(csm) as wh:
        wh.execute(
            "update eoy.reset_policy set earliest_reset_date = date '2023-07-20' "
            "where school_year = 2023"
        )
    done = request_date(csm, "d1", date(2023, 7, 12), by="ann")
    assert builds == ["before the check"] * 2  # seeded again, then checked
    assert (done["effective_reset_date"], done["refused_reason"]) == (date(2023, 7, 12), None)

    # SQL kept for another project (its digest is not the project's): built again
    kept = requests.dbt_work_dir(csm) / requests.WINDOWS_KEPT
    body = kept.read_text(encoding="utf-8").partition("\n")[2]
    kept.write_text("-- " + "0" * 64 + "\n" + "select 1 as wrong", encoding="utf-8")
    done = request_date(csm, "d1", date(2023, 7, 13), by="ann")
    assert builds == ["before the check"] * 3
    assert done["effective_reset_date"] == date(2023, 7, 13)
    assert kept.read_text(encoding="utf-8").partition("\n")[2] == body
    assert schedule_row(csm, "d1")["effective_reset_date"] == date(2023, 7, 13)
