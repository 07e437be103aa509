"""Helpers of the runner tests: an independent oracle of the reset-date rules, table dumps,
small districts."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from jobs.config import PROJECT_DIR, Settings
from jobs.snapshot.store import open_store
from jobs.warehouse.connection import Warehouse
from jobs.warehouse.contract import APP_TABLES, DELETED_TABLES, TABLES

SYNC_STATE = ("status", "paused_at", "resumed_at")


def policy(school_year: int) -> tuple[date, date]:
    """(default, earliest) reset date, read from the seed without dbt."""
    with (PROJECT_DIR / "seeds" / "reset_policy.csv").open() as fh:
        for row in csv.DictReader(fh):
            if int(row["school_year"]) == school_year:
                return (
                    date.fromisoformat(row["default_reset_date"]),
                    date.fromisoformat(row["earliest_reset_date"]),
                )
    raise KeyError(school_year)


def expected_schedule(school_year: int, request: tuple[Any, ...] | None) -> tuple[date, str]:
    """The reset-date rules 1-4 written out plainly: (effective date, status)."""
    default, earliest = policy(school_year)
    if request is None:
        requested = year_end = summer_end = rostering = None
    else:
        requested, year_end, summer_end, rostering = request
    candidate = default
    if (
        requested is not None
        and requested >= earliest
        and (rostering is None or requested < rostering)
    ):
        candidate = requested
    ends = [d for d in (year_end, summer_end) if d is not None]
    last = max(ends) if ends else None
    effective = last + timedelta(days=1) if last is not None and candidate <= last else candidate
    blocked = rostering is not None and effective >= rostering
    return effective, "blocked" if blocked else "scheduled"


def requests_of(wh: Warehouse, school_year: int) -> dict[str, tuple[Any, ...] | None]:
    """Every district with its request row (None: no response)."""
    out: dict[str, tuple[Any, ...] | None] = {
        r[0]: None for r in wh.query("select district_id from app.districts")
    }
    for row in wh.query(
        "select district_id, requested_reset_date, school_year_end_date, "
        "summer_session_end_date, rostering_start_date from app.district_reset_requests "
        "where school_year = %s",
        [school_year],
    ):
        out[row[0]] = tuple(row[1:])
    return out


def expected_due(wh: Warehouse, school_year: int, as_of: date) -> set[str]:
    """The districts due by the plain rules: scheduled, on or before the day, and the year
    not closed by the next year's rostering."""
    closed = {
        str(r[0])
        for r in wh.query(
            "select district_id from app.rostering_runs where school_year = %s",
            [school_year + 1],
        )
    }
    due = set()
    for district, request in requests_of(wh, school_year).items():
        effective, status = expected_schedule(school_year, request)
        if status == "scheduled" and effective <= as_of and district not in closed:
            due.add(district)
    return due


def _key(row: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in row)


def dump_table(
    wh: Warehouse, table: str, where: str = "1 = 1", params: list[Any] | None = None
) -> list[tuple[Any, ...]]:
    cols = ", ".join(TABLES[table].column_names)
    rows = wh.query(f"select {cols} from app.{table} where {where}", params or [])
    return sorted((tuple(r) for r in rows), key=_key)


def without_sync_state(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """import_syncs rows without status, paused_at and resumed_at: the sync configuration."""
    keep = [i for i, c in enumerate(TABLES["import_syncs"].column_names) if c not in SYNC_STATE]
    return [tuple(r[i] for i in keep) for r in rows]


def dump_app(wh: Warehouse, ignore_sync_state: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    out = {t.name: dump_table(wh, t.name) for t in APP_TABLES}
    if ignore_sync_state:
        out["import_syncs"] = without_sync_state(out["import_syncs"])
    return out


def assert_syncs_paused(
    before: list[tuple[Any, ...]], now: list[tuple[Any, ...]], paused: set[str], since: datetime
) -> None:
    """import_syncs, full rows: the active syncs of the `paused` districts are now paused at
    or after `since` (UTC), every other column kept; every other sync is exactly as it was."""
    cols = TABLES["import_syncs"].column_names
    status, paused_at = cols.index("status"), cols.index("paused_at")
    district = cols.index("district_id")
    assert len(now) == len(before), "syncs were added or removed"
    for old, new in zip(before, now, strict=True):
        assert new[0] == old[0], (old, new)
        if old[district] not in paused or old[status] != "active":
            assert new == old, f"sync {old[0]} of district {old[district]} changed"
            continue
        assert new[status] == "paused", f"sync {old[0]} of due district {old[district]} is on"
        assert new[paused_at] is not None and new[paused_at] >= since, (old, new)
        assert [v for i, v in enumerate(new) if i not in (status, paused_at)] == [
            v for i, v in enumerate(old) if i not in (status, paused_at)
        ], (old, new)


def of_district(rows: list[tuple[Any, ...]], table: str, district: str) -> list[tuple[Any, ...]]:
    i = TABLES[table].column_names.index("district_id")
    return [r for r in rows if r[i] == district]


def without(rows: list[tuple[Any, ...]], table: str, districts: set[str]) -> list[tuple[Any, ...]]:
    i = TABLES[table].column_names.index("district_id")
    return [r for r in rows if r[i] not in districts]


def dump_ledger(wh: Warehouse) -> tuple[list[tuple[Any, ...]], int]:
    runs = wh.query("select * from eoy_runner.reset_runs order by district_id, school_year")
    events = int(wh.scalar("select count(*) from eoy_runner.reset_events"))
    return sorted((tuple(r) for r in runs), key=_key), events


def parquet_rows(path: Path) -> list[tuple[Any, ...]]:
    data = pq.read_table(path).to_pylist()
    return sorted((tuple(r.values()) for r in data), key=_key)


def insert(wh: Warehouse, table: str, rows: list[tuple[Any, ...]]) -> None:
    cols = ", ".join(TABLES[table].column_names)
    marks = ", ".join(["%s"] * len(TABLES[table].columns))
    for row in rows:
        wh.execute(f"insert into app.{table} ({cols}) values ({marks})", list(row))


def small_district(wh: Warehouse, d: str, students: int = 2) -> None:
    """One school, one teacher, a sync, `students` students with one row in every table."""
    t = datetime(2022, 9, 1, 8, 30, 15, 123456)
    insert(wh, "districts", [(d, f"District {d}", "CA")])
    insert(wh, "schools", [(f"{d}-sch", d, "School")])
    insert(
        wh,
        "educators",
        [(f"{d}-ed", d, f"{d}-sch", f"t@{d}.example", "Tea", "Cher", "teacher", t, t)],
    )
    insert(wh, "import_syncs", [(f"{d}-sync", d, "clever", "active", None, None, t)])
    insert(wh, "classrooms", [(f"{d}-c", d, f"{d}-sch", f"{d}-ed", "imagine_math", "Math", t)])
    for i in range(students):
        s = f"{d}-s{i}"
        insert(wh, "students", [(s, d, f"{d}-sch", f"user{i}{d}", "Kid", "Doe", "3", t)])
        insert(wh, "classroom_enrollments", [(f"{d}-c", s, d)])
        insert(wh, "assessments", [(f"{s}-a", d, s, "imagine_math", "benchmark", t, 1400 + i)])
        insert(wh, "progress", [(f"{s}-p", d, s, "imagine_math", "L1", "done", t, 0.1 + i / 3)])
        insert(wh, "pathways", [(f"{s}-w", d, s, "imagine_math", "Path", "3_plus", t)])
        insert(wh, "usage_sessions", [(f"{s}-u", d, s, "imagine_math_facts", t, 17)])


def student_rows(wh: Warehouse, district: str) -> int:
    return sum(
        int(wh.scalar(f"select count(*) from app.{t} where district_id = %s", [district]))
        for t in DELETED_TABLES
    )


@contextmanager
def local_part(
    settings: Settings, district: str, school_year: int, part: str = "main"
) -> Iterator[Path]:
    """A part of the district's snapshot as a local folder: the folder itself, or the
    objects of an s3:// root read into a temporary folder."""
    store = open_store(settings)
    with store.local(store.location(school_year, district, part)) as folder:
        yield folder


def part_location(settings: Settings, district: str, school_year: int, part: str = "main") -> str:
    return open_store(settings).location(school_year, district, part)
