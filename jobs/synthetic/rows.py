"""Synthetic rows of every app table, shaped like a real customer base; pure (no warehouse).

Numbers come from numpy PCG64 streams derived from the seed: one for district sizes, one for
the reset calendar, one per chunk of districts (chunks are cut from the sizes alone), so the
same districts, seed and size give the same rows whatever the target. Columns are built
vectorised with pyarrow compute, typed exactly as the contract says (jobs/contract.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.synthetic import names as words
from jobs.warehouse.contract import (
    DATE,
    FLOAT,
    GRADE_BANDS,
    GRADE_LEVELS,
    INT,
    PRODUCTS,
    PROVIDERS,
    TABLES,
    TEXT,
    TIMESTAMP,
)

# -- shape of the customer base ---------------------------------------------------------
# chunks: at most this many districts, and students unless one district alone is larger
CHUNK_DISTRICTS, CHUNK_STUDENTS = 50, 25_000
MEDIAN_STUDENTS = 113  # lognormal district sizes: mean ~250, a few of several thousand
SIZE_SIGMA = 1.3
MIN_STUDENTS, MAX_STUDENTS = 5, 25_000
STUDENTS_PER_SCHOOL = 150
STUDENTS_PER_TEACHER = 22
FACTS_SHARE = 0.5  # teachers with a Math Facts classroom; students enrolled in one
INACTIVE_EDUCATORS = 0.12
PROGRESS_PER_STUDENT = 20  # with ~3.4 assessments, 15 sessions, 1.5 pathways: ~40 rows
SESSIONS_PER_STUDENT = 15
# PK, K, 1..12: Imagine Math is mostly used in K-8
GRADE_WEIGHTS = np.array([0.02, 0.08] + [0.10] * 5 + [0.09] * 3 + [0.0325] * 4)
MATH_PATHWAYS = (
    "Pre-K Pathway",
    "Kindergarten Pathway",
    *(f"Grade {g} Pathway" for g in range(1, 13)),
)
ASSESSMENT_TYPES = ("beginning_of_year", "middle_of_year", "end_of_year")

ARROW_TYPES = {
    TEXT: pa.string(),
    INT: pa.int32(),
    FLOAT: pa.float64(),
    DATE: pa.date32(),
    TIMESTAMP: pa.timestamp("us"),
}
DAY_US = 86_400_000_000
EPOCH = datetime(1970, 1, 1)

# the calendar cases of the reset-date rules -> share of districts; the first N districts take
# one case each, in this order, so every rule is exercised whenever there are at least this many.
CALENDAR_CASES: dict[str, float] = {
    "valid_request": 0.20,
    "no_response": 0.40,
    "request_too_early": 0.05,
    "request_on_or_after_rostering": 0.04,
    "summer_session_past_default": 0.07,
    "request_during_session": 0.06,
    "session_end_into_rostering": 0.03,
    "default_on_rostering": 0.03,
    "school_end_only": 0.12,
}

CalendarRow = tuple[date | None, date | None, date | None, date | None]


@dataclass(frozen=True)
class Policy:
    """A row of seeds/reset_policy.csv."""

    school_year: int
    default_reset_date: date
    earliest_reset_date: date


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64([seed, *stream]))


def district_sizes(
    districts: int, seed: int, students_per_district: int | None = None
) -> np.ndarray:
    """Students per district: long-tailed (lognormal) unless fixed."""
    if students_per_district is not None:
        return np.full(districts, students_per_district, dtype=np.int64)
    raw = _rng(seed, 0).lognormal(np.log(MEDIAN_STUDENTS), SIZE_SIGMA, districts)
    return np.clip(np.rint(raw), MIN_STUDENTS, MAX_STUDENTS).astype(np.int64)


def chunk_bounds(sizes: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) district ranges generated together: a pure function of the sizes, so the
    rows never depend on memory or target, and one chunk's rows stay bounded (~1M)."""
    bounds, start, students = [], 0, 0
    for i, n in enumerate(sizes.tolist()):
        if i > start and (i - start == CHUNK_DISTRICTS or students + n > CHUNK_STUDENTS):
            bounds.append((start, i))
            start, students = i, 0
        students += n
    bounds.append((start, len(sizes)))
    return bounds


def calendar_cases(districts: int, seed: int) -> list[str]:
    """Which case of the reset-date rules each district's reset request plays."""
    names = list(CALENDAR_CASES)
    drawn = _rng(seed, 1).choice(len(names), size=districts, p=list(CALENDAR_CASES.values()))
    fixed = min(districts, len(names))
    drawn[:fixed] = np.arange(fixed)
    return [names[i] for i in drawn]


def calendar_row(
    case: str, policy: Policy, rng: np.random.Generator, edge: bool
) -> CalendarRow | None:
    """(requested, school_year_end, summer_session_end, rostering_start) for one case.

    With `edge`, every offset takes its boundary value (R = E, R = S, L = candidate, S = D …).
    """
    d, e = policy.default_reset_date, policy.earliest_reset_date

    def days(lo: int, hi: int) -> timedelta:
        return timedelta(days=lo if edge else int(rng.integers(lo, hi + 1)))

    if case == "no_response":
        return None
    if case == "school_end_only":
        return None, d - days(1, 40), None, d + days(14, 40)
    if case == "valid_request":
        return e + days(0, 50), e - days(1, 14), None, d + days(14, 40)
    if case == "request_too_early":
        r = e - days(1, 20)
        return r, r - days(1, 7), None, d + days(14, 40)
    if case == "request_on_or_after_rostering":
        s = d + days(10, 30)
        return s + days(0, 5), e - days(1, 14), None, s
    if case == "summer_session_past_default":
        summer = d + days(0, 14)
        return None, e - days(1, 14), summer, summer + days(14, 30)
    if case == "request_during_session":
        if not edge and rng.random() < 0.5:  # a summer session still running on R
            r = e + days(0, 20)
            return r, e - days(1, 10), r + days(0, 20), d + days(25, 40)
        school_end = e + days(0, 20)
        return max(e, school_end - days(0, 4)), school_end, None, d + days(14, 30)
    if case == "session_end_into_rostering":
        summer = d + days(0, 14)
        return None, e - days(1, 14), summer, summer + timedelta(days=1) - days(0, 3)
    if case == "default_on_rostering":
        return None, e - days(1, 14), None, d - days(0, 10)
    raise ValueError(f"unknown calendar case {case}")


def reset_calendar(districts: int, seed: int, policy: Policy) -> list[CalendarRow | None]:
    """One district_reset_requests row (or None: no response) per district."""
    rng = _rng(seed, 2)
    return [
        calendar_row(case, policy, rng, edge=i < len(CALENDAR_CASES))
        for i, case in enumerate(calendar_cases(districts, seed))
    ]


# -- vectorised column helpers ----------------------------------------------------------
def _us(moment: datetime | date) -> int:
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    return (moment - EPOCH) // timedelta(microseconds=1)


def _between(rng: np.random.Generator, n: int, start: datetime, end: datetime) -> np.ndarray:
    lo, hi = _us(start), _us(end)
    return lo + (rng.random(n) * (hi - lo)).astype(np.int64)


def _numbered(group: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """1-based running number of each row within its group; rows sorted by group."""
    starts = np.cumsum(counts) - counts
    return np.arange(len(group)) - starts[group] + 1


def _pick(choices: Sequence[str], index: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(choices, pa.string()).take(pa.array(index, mask=null))


def _digits(number: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(number), pa.string()), width, "0")


def _ids(prefix: pa.Array, tag: str, number: np.ndarray, width: int) -> pa.Array:
    """`d00001` + `-stu` + `000042`."""
    return pc.binary_join_element_wise(prefix, _digits(number, width), tag)


def _ts(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return pa.array(values, type=pa.timestamp("us"), mask=null)


def _table(table: str, /, **columns: Any) -> pa.Table:
    """An Arrow table with exactly the contract's columns and types, in order."""
    spec = TABLES[table]
    schema = pa.schema([(col, ARROW_TYPES[logical]) for col, logical in spec.columns])
    arrays = []
    for field in schema:
        value = columns[field.name]
        if not isinstance(value, pa.Array):
            value = pa.array(value, type=field.type)
        arrays.append(value if value.type == field.type else value.cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


# -- one chunk of districts -------------------------------------------------------------
@dataclass(frozen=True)
class Chunk:
    first: int  # 0-based index of the chunk's first district
    sizes: np.ndarray  # students per district
    calendar: list[CalendarRow | None]
    width: int  # digits of the district number


def district_id(index: int, width: int) -> str:
    return f"d{index + 1:0{width}d}"


def build_chunk(chunk: Chunk, seed: int, policy: Policy) -> dict[str, pa.Table]:
    """Every app table's rows for one chunk of districts, in foreign-key order."""
    rng = _rng(seed, 3, chunk.first)
    y = policy.school_year
    sizes = chunk.sizes
    nd = len(sizes)
    ids = pa.array([district_id(chunk.first + i, chunk.width) for i in range(nd)], pa.string())
    out: dict[str, pa.Table] = {}

    out["districts"] = _table(
        "districts",
        district_id=ids,
        name=pc.binary_join_element_wise(
            _pick(words.PLACES, rng.integers(len(words.PLACES), size=nd)),
            _pick(words.DISTRICT_KINDS, rng.integers(len(words.DISTRICT_KINDS), size=nd)),
            " ",
        ),
        state=_pick(words.STATES, rng.integers(len(words.STATES), size=nd)),
    )

    # schools: one per ~150 students
    n_sch = np.clip(
        np.ceil(sizes / STUDENTS_PER_SCHOOL * rng.uniform(0.7, 1.3, nd)), 1, 150
    ).astype(np.int64)
    sch_d = np.repeat(np.arange(nd), n_sch)
    sch_start = np.cumsum(n_sch) - n_sch
    sch_ids = _ids(ids.take(pa.array(sch_d)), "-sch", _numbered(sch_d, n_sch), 3)
    out["schools"] = _table(
        "schools",
        school_id=sch_ids,
        district_id=ids.take(pa.array(sch_d)),
        name=pc.binary_join_element_wise(
            _pick(words.SCHOOL_PATRONS, rng.integers(len(words.SCHOOL_PATRONS), size=len(sch_d))),
            _pick(words.SCHOOL_KINDS, rng.integers(len(words.SCHOOL_KINDS), size=len(sch_d))),
            " ",
        ),
    )

    edu = _educators(rng, out, ids, sizes, n_sch, sch_start, sch_ids, policy)
    stu = _students(rng, out, ids, sizes, n_sch, sch_start, sch_ids, y)
    _classrooms(rng, out, ids, sch_ids, edu, stu, y)
    _academics(rng, out, stu, y)

    # import syncs: big districts roster from two systems
    n_sync = 1 + (sizes > 5000).astype(np.int64)
    sync_d = np.repeat(np.arange(nd), n_sync)
    sync_no = _numbered(sync_d, n_sync)
    provider = (rng.integers(len(PROVIDERS), size=nd)[sync_d] + sync_no - 1) % len(PROVIDERS)
    n = len(sync_d)
    out["import_syncs"] = _table(
        "import_syncs",
        sync_id=_ids(ids.take(pa.array(sync_d)), "-sync", sync_no, 1),
        district_id=ids.take(pa.array(sync_d)),
        provider=_pick(PROVIDERS, provider),
        status=pa.array(["active"] * n, pa.string()),
        paused_at=pa.nulls(n, pa.timestamp("us")),
        resumed_at=pa.nulls(n, pa.timestamp("us")),
        last_run_at=_ts(_between(rng, n, datetime(y, 6, 1, 2), datetime(y, 6, 20, 3))),
    )

    responded = [i for i, row in enumerate(chunk.calendar) if row is not None]
    rows = [chunk.calendar[i] for i in responded]
    out["district_reset_requests"] = _table(
        "district_reset_requests",
        district_id=ids.take(pa.array(responded, pa.int64())),
        school_year=[y] * len(rows),
        **{
            col: [r[k] for r in rows if r is not None]
            for k, col in enumerate(
                (
                    "requested_reset_date",
                    "school_year_end_date",
                    "summer_session_end_date",
                    "rostering_start_date",
                )
            )
        },
    )
    out["rostering_runs"] = _table(
        "rostering_runs", district_id=pa.array([], pa.string()), school_year=[], completed_at=[]
    )
    return out


def _educators(
    rng: np.random.Generator,
    out: dict[str, pa.Table],
    ids: pa.Array,
    sizes: np.ndarray,
    n_sch: np.ndarray,
    sch_start: np.ndarray,
    sch_ids: pa.Array,
    policy: Policy,
) -> dict[str, Any]:
    """Per district: teachers (at least one per school), a principal per school, and
    district staff without a school; some inactive (never logged in, or over a year ago)."""
    y = policy.school_year
    n_teach = np.maximum(n_sch, np.rint(sizes / STUDENTS_PER_TEACHER).astype(np.int64))
    n_staff = 1 + np.minimum(sizes // 3000, 4)
    n_edu = n_teach + n_sch + n_staff
    d = np.repeat(np.arange(len(sizes)), n_edu)
    no = _numbered(d, n_edu)
    rank = no - 1
    teacher = rank < n_teach[d]
    staff = rank >= (n_teach + n_sch)[d]
    local = np.where(
        teacher,
        np.where(rank < n_sch[d], rank, rng.integers(0, n_sch[d])),
        np.where(staff, 0, rank - n_teach[d]),
    )
    school = sch_start[d] + local
    n = len(d)
    first = rng.integers(len(words.FIRST_NAMES), size=n)
    last = rng.integers(len(words.LAST_NAMES), size=n)
    first_slug = [words.ascii_slug(w) or "educator" for w in words.FIRST_NAMES]
    last_slug = [words.ascii_slug(w) or "staff" for w in words.LAST_NAMES]
    district = ids.take(pa.array(d))
    local_part = pc.binary_join_element_wise(
        _pick(first_slug, first),
        _pick(last_slug, last),
        _digits(no, 4),
        ".",
    )
    email = pc.binary_join_element_wise(
        local_part, pc.binary_join_element_wise(district, "example.org", "."), "@"
    )
    # inactive logins are over 365 days before the earliest possible reset date
    inactive = rng.random(n) < INACTIVE_EDUCATORS
    never = inactive & (rng.random(n) < 0.5)
    login = np.where(
        inactive,
        _us(policy.earliest_reset_date) - (rng.uniform(366, 1100, n) * DAY_US).astype(np.int64),
        _between(rng, n, datetime(y, 1, 5), datetime(y, 6, 12)),
    )
    created = np.minimum(
        _us(datetime(y - 1, 8, 1)) - (rng.uniform(0, 2000, n) * DAY_US).astype(np.int64),
        login - (rng.uniform(1, 400, n) * DAY_US).astype(np.int64),
    )
    edu_ids = _ids(district, "-edu", no, 4)
    out["educators"] = _table(
        "educators",
        educator_id=edu_ids,
        district_id=district,
        school_id=sch_ids.take(pa.array(school, mask=staff)),
        email=email,
        first_name=_pick(words.FIRST_NAMES, first),
        last_name=_pick(words.LAST_NAMES, last),
        role=_pick(("teacher", "administrator"), (~teacher).astype(np.int64)),
        last_login_at=_ts(login, never),
        created_at=_ts(created),
    )
    return {"d": d, "teacher": teacher, "school": school, "last": last, "ids": edu_ids}


def _students(
    rng: np.random.Generator,
    out: dict[str, pa.Table],
    ids: pa.Array,
    sizes: np.ndarray,
    n_sch: np.ndarray,
    sch_start: np.ndarray,
    sch_ids: pa.Array,
    y: int,
) -> dict[str, Any]:
    d = np.repeat(np.arange(len(sizes)), sizes)
    n = len(d)
    no = _numbered(d, sizes)
    school = sch_start[d] + rng.integers(0, n_sch[d])
    grade = rng.choice(len(GRADE_LEVELS), size=n, p=GRADE_WEIGHTS / GRADE_WEIGHTS.sum())
    created = np.where(
        rng.random(n) < 0.85,
        _between(rng, n, datetime(y - 1, 8, 1), datetime(y - 1, 9, 30)),
        _between(rng, n, datetime(y - 1, 10, 1), datetime(y, 4, 30)),  # mid-year arrivals
    )
    district = ids.take(pa.array(d))
    stu_ids = _ids(district, "-stu", no, 6)
    out["students"] = _table(
        "students",
        student_id=stu_ids,
        district_id=district,
        school_id=sch_ids.take(pa.array(school)),
        username=pc.binary_join_element_wise(  # stu000042.d00001: plainly synthetic
            pc.binary_join_element_wise("stu", _digits(no, 6), ""), district, "."
        ),
        first_name=_pick(words.FIRST_NAMES, rng.integers(len(words.FIRST_NAMES), size=n)),
        last_name=_pick(words.LAST_NAMES, rng.integers(len(words.LAST_NAMES), size=n)),
        grade_level=_pick(GRADE_LEVELS, grade),
        created_at=_ts(created),
    )
    return {"d": d, "school": school, "grade": grade, "ids": stu_ids, "district": district}


def _enroll(
    rng: np.random.Generator,
    student_school: np.ndarray,
    wanted: np.ndarray,
    class_school: np.ndarray,
    class_mask: np.ndarray,
    n_schools: int,
) -> tuple[np.ndarray, np.ndarray]:
    """For each wanted student, a random classroom (among class_mask) of the student's school;
    students whose school has none are left out."""
    pool = np.flatnonzero(class_mask)
    pool = pool[np.argsort(class_school[pool], kind="stable")]
    counts = np.bincount(class_school[pool], minlength=n_schools)
    starts = np.cumsum(counts) - counts
    students = np.flatnonzero(wanted & (counts[student_school] > 0))
    home = student_school[students]
    offset = (rng.random(len(students)) * counts[home]).astype(np.int64)
    return students, pool[starts[home] + offset]


def _classrooms(
    rng: np.random.Generator,
    out: dict[str, pa.Table],
    ids: pa.Array,
    sch_ids: pa.Array,
    edu: dict[str, Any],
    stu: dict[str, Any],
    y: int,
) -> None:
    """An Imagine Math classroom per teacher, a Math Facts one for about half of them; every
    student in a math classroom of their school, about half also in a Math Facts one."""
    teachers = np.flatnonzero(edu["teacher"])
    facts = teachers[rng.random(len(teachers)) < FACTS_SHARE]
    owner = np.concatenate([teachers, facts])
    product = np.concatenate([np.zeros(len(teachers), np.int64), np.ones(len(facts), np.int64)])
    order = np.argsort(edu["d"][owner], kind="stable")
    owner, product = owner[order], product[order]
    d = edu["d"][owner]
    school = edu["school"][owner]
    n = len(owner)
    district = ids.take(pa.array(d))
    cls_ids = _ids(district, "-cls", _numbered(d, np.bincount(d, minlength=len(ids))), 5)
    out["classrooms"] = _table(
        "classrooms",
        classroom_id=cls_ids,
        district_id=district,
        school_id=sch_ids.take(pa.array(school)),
        educator_id=edu["ids"].take(pa.array(owner)),
        product=_pick(PRODUCTS, product),
        name=pc.binary_join_element_wise(
            _pick(words.LAST_NAMES, edu["last"][owner]),
            _pick(("Imagine Math", "Imagine Math Facts"), product),
            " — ",
        ),
        created_at=_ts(_between(rng, n, datetime(y - 1, 8, 1), datetime(y - 1, 9, 15))),
    )
    n_students = len(stu["d"])
    wants_facts = rng.random(n_students) < FACTS_SHARE
    everyone = np.ones(n_students, dtype=bool)
    s_math, c_math = _enroll(rng, stu["school"], everyone, school, product == 0, len(sch_ids))
    s_facts, c_facts = _enroll(rng, stu["school"], wants_facts, school, product == 1, len(sch_ids))
    stu["facts"] = np.zeros(n_students, dtype=bool)
    stu["facts"][s_facts] = True
    s = np.concatenate([s_math, s_facts])
    c = np.concatenate([c_math, c_facts])
    order = np.argsort(s, kind="stable")
    s, c = pa.array(s[order]), pa.array(c[order])
    out["classroom_enrollments"] = _table(
        "classroom_enrollments",
        classroom_id=cls_ids.take(c),
        student_id=stu["ids"].take(s),
        district_id=stu["district"].take(s),
    )


def _keys(stu: dict[str, Any], rows: np.ndarray, tag: str, product: np.ndarray) -> dict[str, Any]:
    """Id, district_id, student_id and product of academic rows; rows sorted by student."""
    d = stu["d"][rows]
    district = stu["district"].take(pa.array(rows))
    number = _numbered(d, np.bincount(d, minlength=int(stu["d"].max(initial=0)) + 1))
    return {
        "id": _ids(district, tag, number, 8),
        "district_id": district,
        "student_id": stu["ids"].take(pa.array(rows)),
        "product": _pick(PRODUCTS, product),
    }


def _academics(
    rng: np.random.Generator, out: dict[str, pa.Table], stu: dict[str, Any], y: int
) -> None:
    """Assessments, progress, pathways and usage sessions: the bulk of the rows."""
    n = len(stu["d"])
    grade, facts = stu["grade"], stu["facts"]
    engagement = rng.gamma(2.0, 0.5, n)  # some students use the product far more than others

    # beginning/middle/end of year in Imagine Math; beginning/end in Math Facts
    chance = np.empty((n, 5))
    chance[:, :3] = (0.92, 0.88, 0.90)
    chance[:, 3:] = 0.7 * facts[:, None]
    a_s, slot = np.nonzero(rng.random((n, 5)) < chance)
    a_type = np.array([0, 1, 2, 0, 2])[slot]
    windows = [
        (datetime(y - 1, 8, 20), datetime(y - 1, 9, 30)),
        (datetime(y - 1, 12, 1), datetime(y, 1, 31)),
        (datetime(y, 4, 15), datetime(y, 5, 31)),
    ]
    lo = np.array([_us(a) for a, _ in windows])
    span = np.array([_us(b) - _us(a) for a, b in windows])
    m = len(a_s)
    score = 250 + 85 * (grade[a_s] - 1) + 40 * a_type + rng.normal(0, 70, m)  # Quantile-like
    k = _keys(stu, a_s, "-asm", (slot >= 3).astype(np.int64))
    out["assessments"] = _table(
        "assessments",
        assessment_id=k["id"],
        district_id=k["district_id"],
        student_id=k["student_id"],
        product=k["product"],
        assessment_type=_pick(ASSESSMENT_TYPES, a_type),
        taken_at=_ts(lo[a_type] + (rng.random(m) * span[a_type]).astype(np.int64)),
        scaled_score=np.clip(np.rint(score), 0, 1600).astype(np.int32),
    )

    p_s = np.repeat(np.arange(n), rng.poisson(PROGRESS_PER_STUDENT * engagement))
    m = len(p_s)
    p_prod = (facts[p_s] & (rng.random(m) < 0.35)).astype(np.int64)
    open_ = rng.random(m) >= 0.85  # lessons still in progress have no completion yet
    k = _keys(stu, p_s, "-prg", p_prod)
    out["progress"] = _table(
        "progress",
        progress_id=k["id"],
        district_id=k["district_id"],
        student_id=k["student_id"],
        product=k["product"],
        lesson_id=pc.binary_join_element_wise(
            _pick(("im-lesson", "imf-lesson"), p_prod), _digits(rng.integers(1, 401, m), 4), "-"
        ),
        status=_pick(("completed", "in_progress"), open_.astype(np.int64)),
        completed_at=_ts(_between(rng, m, datetime(y - 1, 8, 20), datetime(y, 6, 9)), open_),
        score=pa.array(np.round(rng.beta(5.0, 1.5, m) * 100, 1), mask=open_),
    )

    facts_students = np.flatnonzero(facts)
    w_s = np.concatenate([np.arange(n), facts_students])
    w_prod = np.concatenate([np.zeros(n, np.int64), np.ones(len(facts_students), np.int64)])
    order = np.argsort(w_s, kind="stable")
    w_s, w_prod = w_s[order], w_prod[order]
    m = len(w_s)
    name = np.where(
        w_prod == 0,
        grade[w_s],
        len(MATH_PATHWAYS) + rng.integers(len(words.FACTS_PATHWAYS), size=m),
    )
    k = _keys(stu, w_s, "-pth", w_prod)
    out["pathways"] = _table(
        "pathways",
        pathway_id=k["id"],
        district_id=k["district_id"],
        student_id=k["student_id"],
        product=k["product"],
        pathway_name=_pick(MATH_PATHWAYS + words.FACTS_PATHWAYS, name),
        grade_band=_pick(GRADE_BANDS, (grade[w_s] > 3).astype(np.int64)),  # PK, K, 1, 2
        assigned_at=_ts(_between(rng, m, datetime(y - 1, 8, 20), datetime(y - 1, 9, 30))),
    )

    u_s = np.repeat(np.arange(n), rng.poisson(SESSIONS_PER_STUDENT * engagement))
    m = len(u_s)
    first_day = date(y - 1, 8, 21)
    first_day += timedelta(days=-first_day.weekday() % 7)  # a Monday
    day = rng.integers(0, (date(y, 6, 9) - first_day).days, m)
    day -= np.select([day % 7 == 5, day % 7 == 6], [1, 2], 0)  # weekends -> Friday
    started = (
        _us(first_day)
        + day * DAY_US
        + 8 * 3600 * 10**6
        + rng.integers(0, int(7.5 * 3600 * 10**6), m)
    )
    k = _keys(stu, u_s, "-use", (facts[u_s] & (rng.random(m) < 0.4)).astype(np.int64))
    out["usage_sessions"] = _table(
        "usage_sessions",
        session_id=k["id"],
        district_id=k["district_id"],
        student_id=k["student_id"],
        product=k["product"],
        started_at=_ts(started),
        minutes=np.clip(np.rint(rng.gamma(3.0, 7.0, m)), 1, 90).astype(np.int32),
    )
