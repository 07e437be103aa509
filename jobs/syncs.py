"""Import syncs around a reset (SPEC §6: pause_syncs, resume_syncs) and the run status.

Syncs are paused on the reset date, so no import brings last year's roster back, and resumed
once rostering of the new school year has completed.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from jobs.config import Settings
from jobs.ledger import record_event, utcnow
from jobs.locks import command_lock
from jobs.warehouse import Warehouse, connect


def pause_syncs(wh: Warehouse, district_id: str) -> int:
    """Pause the district's active syncs (idempotent); how many were paused."""
    paused = wh.execute(
        "update app.import_syncs set status = 'paused', paused_at = %s "
        "where district_id = %s and status = 'active'",
        [utcnow(), district_id],
    )
    return max(paused, 0)


def resume_syncs(settings: Settings) -> dict[str, Any]:
    """Syncs back on for reset districts whose new school year has been rostered."""
    resumed: list[str] = []
    with command_lock(settings), connect(settings) as wh:
        pending = wh.query(
            "select distinct r.district_id, r.school_year from eoy_runner.reset_runs r "
            "join app.rostering_runs n on n.district_id = r.district_id "
            "and n.school_year = r.school_year + 1 "
            "join app.import_syncs s on s.district_id = r.district_id and s.status = 'paused' "
            "where r.status = 'completed' order by r.district_id, r.school_year"
        )
        for district, year in pending:
            with wh.transaction():
                n = wh.execute(
                    "update app.import_syncs set status = 'active', resumed_at = %s "
                    "where district_id = %s and status = 'paused'",
                    [utcnow(), district],
                )
                record_event(
                    wh,
                    district,
                    int(year),
                    "resume_syncs",
                    "completed",
                    {"syncs_resumed": n, "rostered_school_year": int(year) + 1},
                )
            if district not in resumed:
                resumed.append(district)
    return {"resumed": resumed}


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
                "from app.import_syncs group by district_id"
            )
        }
    districts: list[dict[str, Any]] = []
    for run in runs:
        event = last.get(run["district_id"], {})
        sync = syncs.get(run["district_id"], {})
        districts.append(
            {
                **{
                    k: (str(v) if k.endswith(("_at", "_date")) and v else v) for k, v in run.items()
                },
                "last_step": event.get("step"),
                "last_step_status": event.get("status"),
                "syncs_paused": int(sync.get("paused") or 0),
                "syncs": int(sync.get("syncs") or 0),
            }
        )
    by_status: dict[str, int] = {}
    for d in districts:
        by_status[d["status"]] = by_status.get(d["status"], 0) + 1
    return {"school_year": school_year, "districts": districts, "by_status": by_status}
