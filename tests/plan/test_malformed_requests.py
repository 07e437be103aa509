"""Malformed calendars in district_reset_requests (end before start, dates decades away)
never make a district due early and never break the plan (issue: reliability, item 4)."""

from __future__ import annotations

from datetime import date

from jobs.config import Settings
from jobs.plan.planner import make_plan
from jobs.warehouse.connection import Warehouse
from tests.support.reset_data import insert_rows


def test_malformed_requests_are_planned_by_the_rules(settings: Settings, wh: Warehouse) -> None:
    insert_rows(
        wh,
        "districts",
        [{"district_id": d, "name": d, "state": "CA"} for d in ("far", "backwards", "ancient")],
    )
    insert_rows(
        wh,
        "district_reset_requests",
        [
            # a request decades away: valid by the rules, so due only then
            {
                "district_id": "far",
                "school_year": 2023,
                "requested_reset_date": date(2063, 7, 1),
                "school_year_end_date": None,
                "summer_session_end_date": None,
                "rostering_start_date": None,
            },
            # rostering before the school year ends, summer before the year: never reset early
            {
                "district_id": "backwards",
                "school_year": 2023,
                "requested_reset_date": date(2023, 6, 20),
                "school_year_end_date": date(2023, 8, 30),
                "summer_session_end_date": date(2023, 5, 1),
                "rostering_start_date": date(2023, 8, 1),
            },
            # dates decades in the past: too early, so the default date
            {
                "district_id": "ancient",
                "school_year": 2023,
                "requested_reset_date": date(1990, 1, 1),
                "school_year_end_date": date(1989, 6, 1),
                "summer_session_end_date": None,
                "rostering_start_date": None,
            },
        ],
    )
    plan = make_plan(settings, date(2023, 7, 28), 2023)
    due = {d["district_id"]: d for d in plan["due"]}
    blocked = {d["district_id"]: d for d in plan["blocked"]}
    assert "far" not in due and "far" not in blocked
    assert "backwards" in blocked  # session end pushes past rostering: a CSM must act
    assert "request_too_early" in due["ancient"]["issues"]
    assert due["ancient"]["effective_reset_date"] == "2023-07-28"
