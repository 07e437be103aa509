"""Small hand-made districts for the reset models: the worked examples of the reset-date rules,
ledger cases, and a few rows of every app table. Shared by test_schedule.py and test_plan.py.

School year 2023 (D 2023-07-28, E 2023-06-19), planned as of 2023-07-28.
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jobs.warehouse.connection import Warehouse

AS_OF = date(2023, 7, 28)
YEAR = 2023
POLICY_YEARS = (2023, 2024, 2025, 2026, 2027)
EXAMPLES_CSV = Path(__file__).resolve().parents[1] / "data" / "reset_schedule_examples.csv"


def read_examples() -> list[dict[str, str]]:
    """The worked examples, each with a district id ex1..ex8."""
    with EXAMPLES_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for n, row in enumerate(rows, 1):
        row["district_id"] = f"ex{n}"
    return rows


def _d(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def insert_rows(wh: Warehouse, table: str, rows: list[dict[str, Any]]) -> None:
    """One multi-row insert into app.<table> (or a qualified name)."""
    if not rows:
        return
    cols = list(rows[0])
    one = "(" + ", ".join(["%s"] * len(cols)) + ")"
    name = table if "." in table else f"app.{table}"
    wh.execute(
        f"insert into {name} ({', '.join(cols)}) values " + ", ".join([one] * len(rows)),
        [row[c] for row in rows for c in cols],
    )


def request(
    district_id: str,
    requested: date | None = None,
    end: date | None = None,
    summer: date | None = None,
    rostering: date | None = None,
    school_year: int = YEAR,
) -> dict[str, Any]:
    return {
        "district_id": district_id,
        "school_year": school_year,
        "requested_reset_date": requested,
        "school_year_end_date": end,
        "summer_session_end_date": summer,
        "rostering_start_date": rostering,
    }


# Ledger cases: district -> (request row or None, run status, run's effective date, run year)
LEDGER_CASES: dict[str, tuple[dict[str, Any] | None, str | None, date | None, int]] = {
    "done": (None, "completed", date(2023, 7, 28), YEAR),
    "restored_same": (None, "restored", date(2023, 7, 28), YEAR),
    "restored_moved": (
        request("restored_moved", date(2023, 7, 3)),
        "restored",
        date(2023, 7, 28),
        YEAR,
    ),
    "failed": (None, "failed", date(2023, 7, 28), YEAR),
    "done_2022": (None, "completed", date(2022, 7, 29), 2022),
    "later": (request("later", date(2023, 7, 29)), None, None, YEAR),
}

# Due as of AS_OF for YEAR: examples scheduled on or before the day, plus ledger cases.
EXPECTED_DUE = {
    "ex1": (date(2023, 7, 28), "default"),
    "ex2": (date(2023, 6, 26), "requested"),
    "ex3": (date(2023, 7, 28), "default"),
    "ex5": (date(2023, 7, 1), "after_session_end"),
    "ex7": (date(2023, 7, 28), "default"),
    "restored_moved": (date(2023, 7, 3), "requested"),
    "failed": (date(2023, 7, 28), "default"),
    "done_2022": (date(2023, 7, 28), "default"),
}
EXPECTED_BLOCKED = {"ex6", "ex8"}

# Student data of ex1 (due) and of `later` (not due: must never be counted).
EX1_ROWS = {
    "students": 3,
    "classrooms": 1,
    "classroom_enrollments": 2,
    "assessments": 2,
    "progress": 4,
    "pathways": 1,
    "usage_sessions": 3,
    "districts": 1,
    "schools": 1,
    "educators": 3,
    "import_syncs": 1,
    "district_reset_requests": 0,
    "rostering_runs": 1,
}
# Educators of ex1 idle more than 365 days before 2023-07-28, or never logged in.
EX1_INACTIVE = {"ex1_e_idle": "inactive", "ex1_e_never": "never_logged_in"}


def load_districts(wh: Warehouse) -> None:
    """Districts and request rows of the examples and the ledger cases, plus ledger runs."""
    examples = read_examples()
    ids = [e["district_id"] for e in examples] + list(LEDGER_CASES)
    insert_rows(
        wh, "districts", [{"district_id": d, "name": f"District {d}", "state": "TX"} for d in ids]
    )
    requests = [
        request(
            e["district_id"],
            _d(e["requested_reset_date"]),
            _d(e["school_year_end_date"]),
            _d(e["summer_session_end_date"]),
            _d(e["rostering_start_date"]),
        )
        for e in examples
        if e["has_request_row"] == "true"
    ]
    requests += [case[0] for case in LEDGER_CASES.values() if case[0] is not None]
    insert_rows(wh, "district_reset_requests", requests)
    insert_rows(
        wh,
        "eoy_runner.reset_runs",
        [
            {
                "district_id": d,
                "school_year": year,
                "status": status,
                "effective_reset_date": effective,
            }
            for d, (_, status, effective, year) in LEDGER_CASES.items()
            if status is not None
        ],
    )


def load_student_data(wh: Warehouse, district_id: str, n_students: int) -> None:
    """A school, educators, a classroom and student rows for one district."""
    p = district_id
    insert_rows(wh, "schools", [{"school_id": f"{p}_s1", "district_id": p, "name": "Elm"}])
    t = datetime(2023, 1, 1)
    insert_rows(
        wh,
        "educators",
        [
            {
                "educator_id": f"{p}_e_active",
                "district_id": p,
                "school_id": f"{p}_s1",
                "email": "a@example.org",
                "first_name": "A",
                "last_name": "B",
                "role": "teacher",
                "last_login_at": datetime(2023, 6, 1, 9),
                "created_at": t,
            },
            {
                "educator_id": f"{p}_e_idle",
                "district_id": p,
                "school_id": f"{p}_s1",
                "email": "c@example.org",
                "first_name": "C",
                "last_name": "D",
                "role": "teacher",
                "last_login_at": datetime(2022, 7, 27, 9),
                "created_at": t,
            },
            {
                "educator_id": f"{p}_e_never",
                "district_id": p,
                "school_id": None,
                "email": "e@example.org",
                "first_name": "E",
                "last_name": "F",
                "role": "administrator",
                "last_login_at": None,
                "created_at": t,
            },
        ],
    )
    students = [f"{p}_st{i}" for i in range(n_students)]
    insert_rows(
        wh,
        "students",
        [
            {
                "student_id": s,
                "district_id": p,
                "school_id": f"{p}_s1",
                "username": s,
                "first_name": "S",
                "last_name": "T",
                "grade_level": "3",
                "created_at": t,
            }
            for s in students
        ],
    )
    insert_rows(
        wh,
        "classrooms",
        [
            {
                "classroom_id": f"{p}_c1",
                "district_id": p,
                "school_id": f"{p}_s1",
                "educator_id": f"{p}_e_active",
                "product": "imagine_math",
                "name": "Math",
                "created_at": t,
            }
        ],
    )
    insert_rows(
        wh,
        "classroom_enrollments",
        [{"classroom_id": f"{p}_c1", "student_id": s, "district_id": p} for s in students[:2]],
    )
    insert_rows(
        wh,
        "assessments",
        [
            {
                "assessment_id": f"{p}_a{i}",
                "district_id": p,
                "student_id": students[0],
                "product": "imagine_math",
                "assessment_type": "benchmark",
                "taken_at": t,
                "scaled_score": 500 + i,
            }
            for i in range(2)
        ],
    )
    insert_rows(
        wh,
        "progress",
        [
            {
                "progress_id": f"{p}_p{i}",
                "district_id": p,
                "student_id": students[i % 2],
                "product": "imagine_math",
                "lesson_id": f"l{i}",
                "status": "completed",
                "completed_at": t,
                "score": 0.5,
            }
            for i in range(4)
        ],
    )
    insert_rows(
        wh,
        "pathways",
        [
            {
                "pathway_id": f"{p}_w1",
                "district_id": p,
                "student_id": students[0],
                "product": "imagine_math",
                "pathway_name": "Grade 3",
                "grade_band": "3_plus",
                "assigned_at": t,
            }
        ],
    )
    insert_rows(
        wh,
        "usage_sessions",
        [
            {
                "session_id": f"{p}_u{i}",
                "district_id": p,
                "student_id": students[i % len(students)],
                "product": "imagine_math_facts",
                "started_at": t,
                "minutes": 10,
            }
            for i in range(3)
        ],
    )
    insert_rows(
        wh,
        "import_syncs",
        [
            {
                "sync_id": f"{p}_sync",
                "district_id": p,
                "provider": "clever",
                "status": "active",
                "paused_at": None,
                "resumed_at": None,
                "last_run_at": t,
            }
        ],
    )
    insert_rows(
        wh,
        "rostering_runs",
        # the rostering that opened the year: one for the next year would close it
        [{"district_id": p, "school_year": 2023, "completed_at": datetime(2022, 8, 20)}],
    )


def load_all(wh: Warehouse) -> None:
    load_districts(wh)
    load_student_data(wh, "ex1", EX1_ROWS["students"])
    load_student_data(wh, "later", 2)
