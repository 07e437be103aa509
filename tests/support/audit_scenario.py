"""A scripted reset for the audit tests, without the runner: districts, students and ledger
rows inserted by hand, the reset district's student rows deleted by SQL.

School year 2023 (default reset date 2023-07-28), audited as of 2023-08-01.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from jobs.warehouse.connection import Warehouse

AS_OF = date(2023, 8, 1)
SCHOOL_YEAR = 2023

DONE = "d_done"  # reset completed on 2023-07-28, syncs resumed 2023-07-31
OVERDUE = "d<script>alert('x')</script>&\"o"  # due, never started; a hostile id on purpose
FAILED = "d_failed"  # requested 2023-07-10, the run failed
BLOCKED = "d_blocked"  # summer session past rostering start: blocked
UPCOMING = "d_upcoming"  # summer session ends 2023-08-09: reset 2023-08-10
LATER = "d_later"  # summer session ends 2023-09-30: reset 2023-10-01, outside the window
RESTORED = "d_restored"  # reset then restored on request
DISTRICTS = (DONE, OVERDUE, FAILED, BLOCKED, UPCOMING, LATER, RESTORED)

RESET_AT = datetime(2023, 7, 28, 8, 0, 0)
RESUMED_AT = datetime(2023, 7, 31, 9, 0, 0)
SNAPSHOT = "snapshots/2023/d_done"
SHA = "ab" * 32

# What DONE had before its reset, per table (and per product for the delete event).
DONE_DELETED = {
    "students": 2,
    "classrooms": 2,
    "classroom_enrollments": 2,
    "assessments": 3,
    "progress": 2,
    "pathways": 1,
    "usage_sessions": 2,
}
DONE_PRODUCTS = {
    "classrooms": {"imagine_math": 1, "imagine_math_facts": 1},
    "assessments": {"imagine_math": 2, "imagine_math_facts": 1},
    "progress": {"imagine_math": 2},
    "pathways": {"imagine_math": 1},
    # usage_sessions left out on purpose: its count shows with product null
}
RETAINED = (
    "districts",
    "schools",
    "educators",
    "import_syncs",
    "district_reset_requests",
    "rostering_runs",
)
IM, IMF = "imagine_math", "imagine_math_facts"


def insert(wh: Warehouse, table: str, rows: list[tuple[Any, ...]]) -> None:
    for row in rows:
        marks = ", ".join(["%s"] * len(row))
        wh.execute(f"insert into app.{table} values ({marks})", list(row))


def student_rows(wh: Warehouse, d: str, old: datetime) -> None:
    """Two students with a year of math: the rows a reset deletes (2/2/2/3/2/1/2)."""
    s = f"{d}-s"
    insert(
        wh,
        "students",
        [
            (f"{d}-st1", d, s, f"user-{d}-1", "Ann", "Lee", "3", old),
            (f"{d}-st2", d, s, f"user-{d}-2", "Bo", "Diaz", "K", old),
        ],
    )
    insert(
        wh,
        "classrooms",
        [
            (f"{d}-c1", d, s, None, IM, "Math 3", old),
            (f"{d}-c2", d, s, None, IMF, "Facts K", old),
        ],
    )
    insert(wh, "classroom_enrollments", [(f"{d}-c1", f"{d}-st1", d), (f"{d}-c2", f"{d}-st2", d)])
    insert(
        wh,
        "assessments",
        [
            (f"{d}-a1", d, f"{d}-st1", IM, "benchmark", old, 1400),
            (f"{d}-a2", d, f"{d}-st1", IM, "benchmark", old, 1450),
            (f"{d}-a3", d, f"{d}-st2", IMF, "placement", old, 300),
        ],
    )
    insert(
        wh,
        "progress",
        [
            (f"{d}-p1", d, f"{d}-st1", IM, "L1", "completed", old, 0.9),
            (f"{d}-p2", d, f"{d}-st1", IM, "L2", "in_progress", None, None),
        ],
    )
    insert(wh, "pathways", [(f"{d}-pw1", d, f"{d}-st1", IM, "Grade 3", "3_plus", old)])
    insert(
        wh,
        "usage_sessions",
        [
            (f"{d}-u1", d, f"{d}-st1", IM, old, 25),
            (f"{d}-u2", d, f"{d}-st2", IMF, old, 10),
        ],
    )


def retained_as_recorded(wh: Warehouse) -> dict[str, int]:
    """The counts the runner's check_retention records now: the district's own row of the
    districts table (by its key), every other retained table whole (the demo declares no
    `district:` on a retained table)."""
    return {
        t: 1 if t == "districts" else int(wh.scalar(f"select count(*) from app.{t}"))
        for t in RETAINED
    }


def event(
    wh: Warehouse, d: str, step: str, status: str, at: datetime, detail: dict | None = None
) -> None:
    wh.execute(
        'insert into eoy_runner.reset_events (district_id, school_year, step, status, "at", '
        "detail) values (%s, %s, %s, %s, %s, %s)",
        [d, SCHOOL_YEAR, step, status, at, json.dumps(detail) if detail is not None else None],
    )


def run(wh: Warehouse, d: str, year: int, status: str, **cols: Any) -> None:
    names = ["district_id", "school_year", "status", *cols]
    marks = ", ".join(["%s"] * len(names))
    wh.execute(
        f"insert into eoy_runner.reset_runs ({', '.join(names)}) values ({marks})",
        [d, year, status, *cols.values()],
    )


def script_reset(wh: Warehouse) -> None:
    """Load the scenario; leave the warehouse as the runner would after DONE's reset."""
    old = datetime(2023, 3, 1, 10, 0, 0)
    for d in DISTRICTS:
        insert(wh, "districts", [(d, f"District {d}", "TX")])
        insert(wh, "schools", [(f"{d}-s", d, f"School of {d}")])
    insert(
        wh,
        "educators",
        [
            (
                f"{DONE}-e1",
                DONE,
                f"{DONE}-s",
                "a@x.org",
                "A",
                "A",
                "teacher",
                datetime(2023, 5, 1),
                old,
            ),
            (f"{DONE}-e2", DONE, None, "b@x.org", "B", "B", "administrator", None, old),
            (
                f"{DONE}-e3",
                DONE,
                f"{DONE}-s",
                "c@x.org",
                "C",
                "C",
                "teacher",
                datetime(2022, 1, 1),
                old,
            ),
            ("e-overdue", OVERDUE, None, "d@x.org", "D", "D", "teacher", None, old),
        ],
    )
    insert(
        wh,
        "district_reset_requests",
        [
            (FAILED, SCHOOL_YEAR, date(2023, 7, 10), date(2023, 6, 9), None, None),
            (BLOCKED, SCHOOL_YEAR, None, date(2023, 6, 2), date(2023, 8, 15), date(2023, 8, 10)),
            (UPCOMING, SCHOOL_YEAR, None, date(2023, 6, 2), date(2023, 8, 9), None),
            (LATER, SCHOOL_YEAR, None, date(2023, 6, 2), date(2023, 9, 30), None),
        ],
    )
    insert(
        wh,
        "import_syncs",
        [
            (f"{DONE}-sync", DONE, "clever", "active", RESET_AT, RESUMED_AT, RESUMED_AT),
            ("sync-overdue", OVERDUE, "classlink", "active", None, None, None),
            (f"{UPCOMING}-sync1", UPCOMING, "clever", "active", None, None, None),
            (f"{UPCOMING}-sync2", UPCOMING, "oneroster_sftp", "active", None, None, None),
        ],
    )
    for d in (DONE, OVERDUE, FAILED, RESTORED):
        student_rows(wh, d, old)

    # DONE: the whole reset, as the runner records it
    run(
        wh,
        DONE,
        SCHOOL_YEAR,
        "completed",
        effective_reset_date=date(2023, 7, 28),
        started_at=RESET_AT,
        finished_at=datetime(2023, 7, 28, 8, 5),
        snapshot_path=SNAPSHOT,
        manifest_sha256=SHA,
        rows_deleted=sum(DONE_DELETED.values()),
    )
    # an earlier cycle, deleted then restored the day before: not counted any more
    event(wh, DONE, "delete", "completed", datetime(2023, 7, 27, 9), {"rows": {"students": 7}})
    event(wh, DONE, "restore", "completed", datetime(2023, 7, 27, 10), {"rows_total": 7})
    for minute, step in enumerate(("pause_syncs", "export", "verify", "delete")):
        at = datetime(2023, 7, 28, 8, minute, 1)
        event(wh, DONE, step, "started", at)
        event(wh, DONE, step, "completed", at.replace(second=30), {"part": "main"})
    # the main part's delete above says nothing; the runner's shape: the main part, then a
    # delta for one usage session that arrived after the snapshot
    main = {**DONE_DELETED, "usage_sessions": DONE_DELETED["usage_sessions"] - 1}
    event(
        wh,
        DONE,
        "delete",
        "completed",
        datetime(2023, 7, 28, 8, 3, 40),
        {"part": "main", "rows": main, "products": DONE_PRODUCTS},
    )
    event(wh, DONE, "delete", "skipped", datetime(2023, 7, 28, 8, 3, 45), {"rows": main})
    delta = dict.fromkeys(DONE_DELETED, 0) | {"usage_sessions": 1}
    event(
        wh,
        DONE,
        "delete",
        "completed",
        datetime(2023, 7, 28, 8, 3, 50),
        {"part": "delta-1", "rows": delta},
    )
    event(
        wh,
        DONE,
        "check_retention",
        "completed",
        datetime(2023, 7, 28, 8, 4),
        {"retained": {t: [n, 12345] for t, n in retained_as_recorded(wh).items()}, "remaining": 0},
    )
    event(wh, DONE, "complete", "completed", datetime(2023, 7, 28, 8, 5))
    event(wh, DONE, "resume_syncs", "completed", RESUMED_AT)
    for table in (
        "classroom_enrollments",
        "assessments",
        "progress",
        "pathways",
        "usage_sessions",
        "classrooms",
        "students",
    ):
        wh.execute(f"delete from app.{table} where district_id = %s", [DONE])
    # an earlier year, before the policy seed starts: history without a schedule row
    run(
        wh,
        DONE,
        2022,
        "completed",
        effective_reset_date=date(2022, 7, 29),
        started_at=datetime(2022, 7, 29, 8),
        finished_at=datetime(2022, 7, 29, 8, 3),
        rows_deleted=5,
    )
    # the new school year's rostering after the reset: not a violation
    insert(
        wh,
        "students",
        [(f"{DONE}-new1", DONE, f"{DONE}-s", "new1", "Cy", "Ng", "4", datetime(2023, 7, 31, 10))],
    )
    insert(
        wh, "assessments", [(f"{DONE}-new-a", DONE, f"{DONE}-new1", IM, "placement", None, None)]
    )
    insert(wh, "rostering_runs", [(DONE, 2024, RESUMED_AT)])

    # FAILED: the delete rolled back, nothing went
    run(
        wh,
        FAILED,
        SCHOOL_YEAR,
        "failed",
        effective_reset_date=date(2023, 7, 10),
        started_at=datetime(2023, 7, 10, 8),
        error="snapshot of assessments did not verify",
    )
    event(wh, FAILED, "verify", "failed", datetime(2023, 7, 10, 8, 2))

    # RESTORED: deleted, then put back from the snapshot
    run(
        wh,
        RESTORED,
        SCHOOL_YEAR,
        "restored",
        effective_reset_date=date(2023, 7, 28),
        started_at=RESET_AT,
        finished_at=datetime(2023, 7, 28, 9),
        rows_deleted=14,
    )
    event(
        wh,
        RESTORED,
        "delete",
        "completed",
        RESET_AT,
        {"tables": {t: n for t, n in DONE_DELETED.items()}},
    )
    event(wh, RESTORED, "restore", "completed", datetime(2023, 7, 29, 12))
