"""Import syncs around a reset (pause_syncs, resume_syncs) and the run status.

Syncs are paused on the reset date, so no import brings last year's roster back, and resumed
once rostering of the new school year has completed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from jobs.config import Settings
from jobs.output import count_by, totals
from jobs.scope import current_scope
from jobs.scope.built import built_parts, built_relation
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.ledger import (
    record_event,
    refusals,
    restored_runs,
    take_up_again,
    utcnow,
)
from jobs.warehouse.locks import command_lock, release_district_lock, try_district_lock


def _syncs() -> str:
    """The table of the scope's syncs role (the demo's, or eoy-reset's own)."""
    return current_scope().role_relation("syncs")


def pause_syncs(wh: Warehouse, district_id: str) -> int:
    """Pause the district's active syncs (idempotent); how many were paused."""
    paused = wh.execute(
        f"update {_syncs()} set status = 'paused', paused_at = %s "
        "where district_id = %s and status = 'active'",
        [utcnow(), district_id],
    )
    return max(paused, 0)


def pause_syncs_of(wh: Warehouse, districts: list[str]) -> dict[str, int]:
    """pause_syncs for several districts in one statement: how many each paused."""
    marks = ", ".join(["%s"] * len(districts))
    paused = dict.fromkeys(districts, 0)
    for (district,) in wh.query(
        f"update {_syncs()} set status = 'paused', paused_at = %s "
        f"where district_id in ({marks}) and status = 'active' returning district_id",
        [utcnow(), *districts],
    ):
        paused[district] += 1
    return paused


def resume_syncs(settings: Settings) -> dict[str, Any]:
    """Syncs back on for districts whose latest reset completed and whose next school year
    has been rostered; every other district with paused syncs is listed as waiting, with why.

    Only the latest reset of a district counts: a completed reset of an earlier
    year never lets a later reset's pause go while that reset is running, failed or restored.
    """
    districts: list[dict[str, Any]] = []  # each paused one: resumed, or still paused and why
    with command_lock(settings), connect(settings) as wh:
        paused = [
            r[0]
            for r in wh.query(
                f"select distinct district_id from {_syncs()} where status = 'paused' "
                "order by district_id"
            )
        ]
        for district in paused:
            latest = _latest_reset(wh, district)
            if latest is None:
                continue  # paused by hand, not by a reset: not ours to turn back on
            year = int(latest[0])
            if not try_district_lock(wh, district, year):
                why: tuple[int, str] | None = (
                    year,
                    "being worked on by another eoy-reset process (a run, restore or roster "
                    "import)",
                )
            else:
                try:
                    why = _resume_one(wh, district)
                finally:
                    release_district_lock(wh, district, year)
            status = "resumed" if why is None else "paused"
            year, reason = why if why is not None else (year, None)
            districts.append(
                {"district_id": district, "school_year": year, "status": status, "why": reason}
            )
    waiting = [
        {k: d[k] for k in ("district_id", "school_year", "why")}
        for d in districts
        if d["status"] == "paused"
    ]
    resumed = [d["district_id"] for d in districts if d["status"] == "resumed"]
    return {
        "resumed": resumed,
        "waiting": waiting,
        "districts": districts,
        "totals": totals(
            len(districts), 0, count_by(districts), resumed=len(resumed), waiting=len(waiting)
        ),
    }


def _latest_reset(wh: Warehouse, district: str) -> tuple[int, str, date | None] | None:
    """The district's reset of the highest school year in the ledger: (school_year, status,
    reset date)."""
    rows = wh.query(
        "select school_year, status, effective_reset_date from eoy_runner.reset_runs "
        "where district_id = %s order by school_year desc limit 1",
        [district],
    )
    return (int(rows[0][0]), str(rows[0][1]), rows[0][2]) if rows else None


def restored_districts(settings: Settings, school_year: int) -> list[dict[str, Any]]:
    """The districts of the school year an operator restored, each with what resets it again."""
    with connect(settings) as wh:
        return [
            {"district_id": r["district_id"], "advice": r["advice"]}
            for r in restored_runs(wh, school_year)
        ]


def _resume_one(wh: Warehouse, district: str) -> tuple[int, str] | None:
    """Resume the district's syncs if its latest reset allows; else (school year, why not)."""
    with wh.transaction():
        latest = _latest_reset(wh, district)  # again, under the district's lock
        if latest is None:
            return None
        year, status, reset_date = latest
        if status == "restored":
            return year, (
                f"its reset of school year {year} was restored, so its syncs stay paused; "
                + take_up_again(district, year, reset_date)
            )
        if status != "completed":
            return year, (
                f"its reset of school year {year} is {status}, not completed: "
                "finish it (run the same command again) before syncs resume"
            )
        rostered = wh.scalar(
            f"select count(*) from {current_scope().role_relation('rostering')} "
            "where district_id = %s and school_year = %s",
            [district, year + 1],
        )
        if not rostered:
            return year, (
                f"its reset of school year {year} completed; waiting for rostering of "
                f"school year {year + 1} (a row in {current_scope().role_relation('rostering')})"
            )
        n = wh.execute(
            f"update {_syncs()} set status = 'active', resumed_at = %s "
            "where district_id = %s and status = 'paused'",
            [utcnow(), district],
        )
        record_event(
            wh,
            district,
            year,
            "resume_syncs",
            "completed",
            {"syncs_resumed": n, "rostered_school_year": year + 1},
        )
    return None


def reset_status(settings: Settings, school_year: int | None = None) -> dict[str, Any]:
    """Per district of a school year (default: the latest in the ledger): the run's state."""
    with connect(settings) as wh:
        if school_year is None:
            school_year = wh.scalar("select max(school_year) from eoy_runner.reset_runs")
            school_year = int(school_year) if school_year is not None else date.today().year
        runs = wh.query_dicts(
            "select district_id, status, effective_reset_date, started_at, finished_at, "
            "rows_deleted, snapshot_path, manifest_sha256, error from eoy_runner.reset_runs "
            "where school_year = %s order by district_id",
            [school_year],
        )
        last = {
            r["district_id"]: r
            for r in wh.query_dicts(
                "select e.district_id, e.step, e.status from eoy_runner.reset_events e "
                "join (select district_id, max(event_id) as event_id "
                "from eoy_runner.reset_events where school_year = %s group by district_id) m "
                "on m.event_id = e.event_id",
                [school_year],
            )
        }
        syncs = {
            r["district_id"]: r
            for r in wh.query_dicts(
                "select district_id, count(*) as syncs, "
                "sum(case when status = 'paused' then 1 else 0 end) as paused "
                f"from {_syncs()} group by district_id"
            )
        }
        districts: list[dict[str, Any]] = []
        for run in runs:
            event = last.get(run["district_id"], {})
            sync = syncs.get(run["district_id"], {})
            districts.append(
                {
                    **{
                        k: (str(v) if k.endswith(("_at", "_date")) and v else v)
                        for k, v in run.items()
                    },
                    "last_step": event.get("step"),
                    "last_step_status": event.get("status"),
                    "syncs_paused": int(sync.get("paused") or 0),
                    "syncs": int(sync.get("syncs") or 0),
                }
            )
        attention = _attention(wh, school_year, districts)
        holds = wh.query_dicts(
            "select district_id, held_at, reason from eoy_runner.legal_holds order by district_id"
        )
    by_status: dict[str, int] = {}
    for d in districts:
        by_status[d["status"]] = by_status.get(d["status"], 0) + 1
    return {
        "school_year": school_year,
        "districts": districts,
        "by_status": by_status,
        "attention": attention,
        "legal_holds": holds,
    }


def _attention(
    wh: Warehouse, school_year: int, districts: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The districts of the school year that need someone, each with its state and why: a
    reset not completed (failed, running or stopped, restored), a district `run --plan`
    refused, and from the schedule as dbt last built it, blocked districts and districts due
    by today that no run has started."""
    runs = {d["district_id"]: d for d in districts}
    found: dict[str, dict[str, Any]] = {}
    for d in districts:
        if d["status"] == "failed":
            why = d["error"] or "failed"
        elif d["status"] == "running":
            why = (
                f"last step {d['last_step'] or 'none'}: unless a run is under way, it stopped; "
                "run the same command again to finish it"
            )
        elif d["status"] == "restored":
            why = take_up_again(d["district_id"], school_year, _day(d))
        else:
            continue
        found[d["district_id"]] = {"district_id": d["district_id"], "status": d["status"]}
        found[d["district_id"]]["why"] = why
    for district, (at, why) in refusals(wh, school_year).items():
        run = runs.get(district)
        if run is None or (run["status"] != "completed" and str(run["started_at"]) < str(at)):
            found[district] = {"district_id": district, "status": "refused", "why": why}
    if wh.relation_exists(*built_parts("reset_schedule")):
        for row in wh.query_dicts(
            "select district_id, effective_reset_date, status, issues "
            f"from {built_relation('reset_schedule')} "
            "where school_year = %s order by district_id",
            [school_year],
        ):
            district = row["district_id"]
            if district in runs or district in found:
                continue
            if row["status"] == "blocked":
                issues = row["issues"] or "conflicts_with_rostering"
                why = f"blocked ({issues}): a CSM must act"
            elif row["effective_reset_date"] <= date.today():
                why = f"due since {row['effective_reset_date']}, no run has started it"
                row["status"] = "not_started"
            else:
                continue
            found[district] = {"district_id": district, "status": row["status"], "why": why}
    return sorted(found.values(), key=lambda e: (ATTENTION.index(e["status"]), e["district_id"]))


# The order in which `status` lists what needs attention: what went wrong first.
ATTENTION = ("failed", "running", "refused", "blocked", "not_started", "restored")


def _day(run: dict[str, Any]) -> date | None:
    value = run.get("effective_reset_date")
    return date.fromisoformat(str(value)[:10]) if value else None
