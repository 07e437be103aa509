"""The runner's ledger, schema eoy_runner: one run row per district and school year,
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
    record_events_of(wh, school_year, [(district_id, *step) for step in steps])


def record_events_of(
    wh: Warehouse, school_year: int | None, events: list[tuple[str, str, str, dict[str, Any]]]
) -> None:
    """Append events (district, step, status, detail) of several districts in one statement,
    in order."""
    if not events:
        return
    cast = "%s::jsonb" if wh.target == "postgres" else "cast(%s as json)"
    row = f"(%s, %s, %s, %s, %s, {cast})"
    params: list[Any] = []
    now = utcnow()
    for district_id, step, status, detail in events:
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
        f"detail) values {', '.join([row] * len(events))}",
        params,
    )


def get_run(wh: Warehouse, district_id: str, school_year: int) -> dict[str, Any] | None:
    return get_runs(wh, [district_id], school_year).get(district_id)


def get_runs(wh: Warehouse, districts: list[str], school_year: int) -> dict[str, dict[str, Any]]:
    """get_run of each of the districts, in one query: the run rows there are, by district."""
    if not districts:
        return {}
    rows = wh.query_dicts(
        f"select {', '.join(RUN_COLUMNS)} from eoy_runner.reset_runs "
        f"where school_year = %s and district_id in ({', '.join(['%s'] * len(districts))})",
        [school_year, *districts],
    )
    return {str(row["district_id"]): row for row in rows}


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


def start_runs(wh: Warehouse, school_year: int, runs: list[tuple[str, date]]) -> None:
    """`running` run rows for districts that have none: (district, effective reset date)."""
    if not runs:
        return
    now = utcnow()
    wh.execute(
        "insert into eoy_runner.reset_runs (district_id, school_year, status, "
        "effective_reset_date, started_at, rows_deleted) values "
        + ", ".join(["(%s, %s, 'running', %s, %s, 0)"] * len(runs)),
        [v for district, day in runs for v in (district, school_year, day, now)],
    )


def update_run(wh: Warehouse, district_id: str, school_year: int, **values: Any) -> None:
    update_runs(wh, school_year, {district_id: values})


# the run columns' types, for values bound in a VALUES list (both targets)
RUN_TYPES = {
    "status": "varchar",
    "effective_reset_date": "date",
    "started_at": "timestamp",
    "finished_at": "timestamp",
    "snapshot_path": "varchar",
    "manifest_sha256": "varchar",
    "rows_deleted": "bigint",
    "error": "varchar",
}


def update_runs(wh: Warehouse, school_year: int, values: dict[str, dict[str, Any]]) -> None:
    """Set each district's run row to its values (the same columns for every district), in
    one statement."""
    if not values:
        return
    columns = list(next(iter(values.values())))
    unknown = {c for c in columns if c not in RUN_TYPES}
    if unknown or any(list(v) != columns for v in values.values()):
        raise ValueError(f"not the same reset_runs columns for every district: {columns}")
    row = "(cast(%s as varchar), " + ", ".join(f"cast(%s as {RUN_TYPES[c]})" for c in columns) + ")"
    wh.execute(
        f"update eoy_runner.reset_runs set {', '.join(f'{c} = v.{c}' for c in columns)} "
        f"from (values {', '.join([row] * len(values))}) as v (district_id, {', '.join(columns)}) "
        "where reset_runs.district_id = v.district_id and reset_runs.school_year = %s",
        [x for district, v in values.items() for x in (district, *v.values())] + [school_year],
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


def committed_deletes(
    wh: Warehouse, school_year: int, manifest_sha256s: list[str]
) -> list[dict[str, Any]]:
    """The committed delete events of the school year whose part has one of these manifests
    (a delete's event commits with the delete: present exactly when the delete committed)."""
    if not manifest_sha256s:
        return []
    if wh.target == "postgres":
        text, sha = "cast(detail as text)", "detail ->> 'manifest_sha256'"
    else:
        text, sha = "cast(detail as varchar)", "json_extract_string(detail, 'manifest_sha256')"
    marks = ", ".join(["%s"] * len(manifest_sha256s))
    rows = wh.query(
        f"select {text} from eoy_runner.reset_events where step = 'delete' "
        f"and status = 'completed' and school_year = %s and {sha} in ({marks})",
        [school_year, *manifest_sha256s],
    )
    return [_detail(detail) for (detail,) in rows]


def all_delete_parts(wh: Warehouse, district_id: str, school_year: int) -> list[str]:
    """Every snapshot part ever deleted for the district and year (any cycle)."""
    return [
        str(e["detail"].get("part"))
        for e in events(wh, district_id, school_year, "delete")
        if e["status"] == "completed"
    ]


# ---------------------------------------------------------------------------------------
# restored districts
# ---------------------------------------------------------------------------------------
def take_up_again(district_id: str, school_year: int, reset_date: date | None) -> str:
    """What resets a restored district again, said alike by every command that meets one:
    a plan or a run leaves it alone until an operator names it."""
    from jobs.output import command_line

    day = reset_date.isoformat() if reset_date is not None else "YYYY-MM-DD"
    args = ["run", "--as-of", day]
    if reset_date is None or reset_date.year != school_year:
        args += ["--school-year", str(school_year)]
    return (
        "no plan or run resets it again by itself, only "
        f"`{command_line([*args, '--district', district_id])}`"
    )


def restored_runs(wh: Warehouse, school_year: int) -> list[dict[str, Any]]:
    """The districts of the school year whose reset an operator restored, each with `advice`
    (take_up_again)."""
    rows = wh.query_dicts(
        "select district_id, effective_reset_date, finished_at from eoy_runner.reset_runs "
        "where school_year = %s and status = 'restored' order by district_id",
        [school_year],
    )
    for row in rows:
        row["advice"] = take_up_again(row["district_id"], school_year, row["effective_reset_date"])
    return rows


# ---------------------------------------------------------------------------------------
# districts a run refused
# ---------------------------------------------------------------------------------------
# The event of a district that `run --plan` refused before anything changed (rows moved
# since the plan, or not in it): `status` names it until a run completes the district.
REFUSED = ("plan_check", "refused")


def record_refusals(wh: Warehouse, school_year: int, refused: dict[str, str]) -> None:
    """One event per district the run refused, with why."""
    step, status = REFUSED
    record_events_of(
        wh, school_year, [(d, step, status, {"reason": why}) for d, why in refused.items()]
    )


def refusals(wh: Warehouse, school_year: int) -> dict[str, tuple[datetime, str]]:
    """The latest refusal of each district for the school year: (when, why)."""
    step, status = REFUSED
    found: dict[str, tuple[datetime, str]] = {}
    for row in wh.query_dicts(
        'select district_id, "at", cast(detail as '
        + ("text" if wh.target == "postgres" else "varchar")
        + ") as detail from eoy_runner.reset_events "
        "where school_year = %s and step = %s and status = %s order by event_id",
        [school_year, step, status],
    ):
        found[row["district_id"]] = (row["at"], str(_detail(row["detail"]).get("reason", "")))
    return found
