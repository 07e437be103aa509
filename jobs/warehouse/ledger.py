"""The runner's ledger, schema eoy_runner (SPEC §6): one run row per district and school year,
and an append-only log of steps. Ids, counts, paths and hashes only: never student PII.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

from jobs.config import scrub
from jobs.warehouse.connection import Warehouse

RUN_COLUMNS = (
    "district_id",
    "school_year",
    "status",
    "effective_reset_date",
    "started_at",
    "finished_at",
    "snapshot_path",
    "manifest_sha256",
    "rows_deleted",
    "error",
)


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def record_event(
    wh: Warehouse,
    district_id: str,
    school_year: int | None,
    step: str,
    status: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one event to eoy_runner.reset_events."""
    cast = "%s::jsonb" if wh.target == "postgres" else "cast(%s as json)"
    wh.execute(
        'insert into eoy_runner.reset_events (district_id, school_year, step, status, "at", '
        f"detail) values (%s, %s, %s, %s, %s, {cast})",
        [
            district_id,
            school_year,
            step,
            status,
            utcnow(),
            json.dumps(detail or {}, sort_keys=True, default=str),
        ],
    )


def record_events(
    wh: Warehouse,
    district_id: str,
    school_year: int | None,
    steps: list[tuple[str, str, dict[str, Any]]],
) -> None:
    """Append several events (step, status, detail) in one statement, in order."""
    if not steps:
        return
    cast = "%s::jsonb" if wh.target == "postgres" else "cast(%s as json)"
    row = f"(%s, %s, %s, %s, %s, {cast})"
    params: list[Any] = []
    now = utcnow()
    for step, status, detail in steps:
        params += [
            district_id,
            school_year,
            step,
            status,
            now,
            json.dumps(detail, sort_keys=True, default=str),
        ]
    wh.execute(
        'insert into eoy_runner.reset_events (district_id, school_year, step, status, "at", '
        f"detail) values {', '.join([row] * len(steps))}",
        params,
    )


def get_run(wh: Warehouse, district_id: str, school_year: int) -> dict[str, Any] | None:
    rows = wh.query_dicts(
        f"select {', '.join(RUN_COLUMNS)} from eoy_runner.reset_runs "
        "where district_id = %s and school_year = %s",
        [district_id, school_year],
    )
    return rows[0] if rows else None


def start_run(
    wh: Warehouse,
    district_id: str,
    school_year: int,
    effective_reset_date: date,
    run: dict[str, Any] | None = None,
) -> None:
    """Mark the run `running`: a new run row, or a failed/restored one taken up again.
    `run` is the run row as the caller read it (None: there is none)."""
    now = utcnow()
    if run is None:
        wh.execute(
            "insert into eoy_runner.reset_runs (district_id, school_year, status, "
            "effective_reset_date, started_at, rows_deleted) values (%s, %s, 'running', %s, %s, 0)",
            [district_id, school_year, effective_reset_date, now],
        )
        return
    # a restored district run again starts a new cycle: nothing of it is deleted yet
    fresh = run["status"] == "restored"
    wh.execute(
        "update eoy_runner.reset_runs set status = 'running', effective_reset_date = %s, "
        "started_at = %s, finished_at = null, error = null"
        + (", rows_deleted = 0" if fresh else "")
        + " where district_id = %s and school_year = %s",
        [
            effective_reset_date,
            now if fresh or run["started_at"] is None else run["started_at"],
            district_id,
            school_year,
        ],
    )


def update_run(wh: Warehouse, district_id: str, school_year: int, **values: Any) -> None:
    unknown = set(values) - set(RUN_COLUMNS)
    if unknown:
        raise ValueError(f"not reset_runs columns: {sorted(unknown)}")
    sets = ", ".join(f"{k} = %s" for k in values)
    wh.execute(
        f"update eoy_runner.reset_runs set {sets} where district_id = %s and school_year = %s",
        [*values.values(), district_id, school_year],
    )


def fail_run(wh: Warehouse, district_id: str, school_year: int, step: str, error: str) -> None:
    """Record a failed step and mark the run failed with the reason (one line)."""
    error = scrub(error, wh.settings.pg_dsn)  # never a password, whatever an exception quoted
    record_event(wh, district_id, school_year, step, "failed", {"error": error})
    # never over a completed run (another runner may have finished it meanwhile)
    wh.execute(
        "update eoy_runner.reset_runs set status = 'failed', finished_at = %s, error = %s "
        "where district_id = %s and school_year = %s and status <> 'completed'",
        [utcnow(), error, district_id, school_year],
    )


def _detail(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return dict(json.loads(value))


def events(
    wh: Warehouse, district_id: str, school_year: int, step: str | None = None
) -> list[dict[str, Any]]:
    """The district's events for a school year, oldest first, detail parsed."""
    where = "district_id = %s and school_year = %s"
    params: list[Any] = [district_id, school_year]
    if step is not None:
        where += " and step = %s"
        params.append(step)
    rows = wh.query_dicts(
        'select event_id, step, status, "at", cast(detail as '
        + ("text" if wh.target == "postgres" else "varchar")
        + f") as detail from eoy_runner.reset_events where {where} order by event_id",
        params,
    )
    for row in rows:
        row["detail"] = _detail(row["detail"])
    return rows


def cycle_deletes(wh: Warehouse, district_id: str, school_year: int) -> list[dict[str, Any]]:
    """Committed deletes of the current cycle (since the last restore), oldest first.

    A delete's event is written in the delete's own transaction, so this list is exactly
    what the warehouse lost, even after a crash.
    """
    found: list[dict[str, Any]] = []
    for event in events(wh, district_id, school_year):
        if event["step"] == "restore" and event["status"] == "completed":
            found = []
        elif event["step"] == "delete" and event["status"] == "completed":
            found.append(event["detail"])
    return found


def all_delete_parts(wh: Warehouse, district_id: str, school_year: int) -> list[str]:
    """Every snapshot part ever deleted for the district and year (any cycle)."""
    return [
        str(e["detail"].get("part"))
        for e in events(wh, district_id, school_year, "delete")
        if e["status"] == "completed"
    ]
