"""Schema `sis` on PostgreSQL and DuckDB, and `load(...)`: N districts of generated rows.

The districts are `org_units` (integer key). A campus belongs to one org unit, or to none
(`NULL_CAMPUS`, a summer programme run by nobody's district: whatever hangs off it is
unowned). Learners carry no district: they belong to the districts of the campuses they are
enrolled at (a dbt model, `learner_districts`), and every other district pair shares a
learner enrolled in both. Sections and their rosters reach a district through the campus;
attempts through their section; attempt items through their attempt (`ON DELETE CASCADE` on
PostgreSQL); guardians through their learner; notes through whatever `owner_kind` names.

DuckDB checks a foreign key eagerly and cannot delete a referenced row in the transaction
that deleted its children, and has no `ON DELETE CASCADE`: there the foreign keys between
deleted tables are left out; the ones to retained tables stay.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from jobs.warehouse.connection import Warehouse

SCHEMA = "sis"
PROJECT = Path(__file__).resolve().parent / "project"
DISTRICTS_TABLE = "org_units"
FIRST_DISTRICT = 101
NULL_CAMPUS = 1  # a campus whose org unit is null
YEAR = 2023
TERMS = (
    ("2023-FA", date(2022, 8, 22), date(2022, 12, 20)),
    ("2023-SP", date(2023, 1, 9), date(2023, 6, 9)),
)
PRODUCTS = ("math", "facts")

RETAINED = ("org_units", "campuses", "staff", "terms")
# children first: the order a reset deletes in
DELETED = (
    "attempt_items",
    "attempts",
    "section_rosters",
    "daily_usage",
    "notes",
    "guardians",
    "learner_enrolments",
    "sections",
    "learners",
)
# the key a row is named by in this module's bookkeeping (the warehouse's, or the declared one)
KEYS: dict[str, tuple[str, ...]] = {
    "attempt_items": ("attempt_id", "item_no"),
    "attempts": ("attempt_id",),
    "section_rosters": ("campus_id", "section_code", "term_code", "learner_id", "seat_no"),
    "daily_usage": ("org_unit_id", "campus_id", "learner_id", "product", "used_on"),
    "notes": ("note_id",),
    "guardians": ("guardian_id",),
    "learner_enrolments": ("learner_id", "campus_id", "school_year"),
    "sections": ("campus_id", "section_code", "term_code"),
    "learners": ("learner_id",),
}

# (column, pyarrow type, SQL type, constraint) per table, in load order; a foreign key is
# (columns, table, their columns, between deleted tables, on delete cascade)
_INT, _BIG, _SMALL = pa.int32(), pa.int64(), pa.int16()
_TEXT, _DATE, _TS, _BOOL, _REAL = (
    pa.string(),
    pa.date32(),
    pa.timestamp("us"),
    pa.bool_(),
    pa.float64(),
)
_SQL = {
    _INT: "integer",
    _BIG: "bigint",
    _SMALL: "smallint",
    _TEXT: "text",
    _DATE: "date",
    _TS: "timestamp",
    _BOOL: "boolean",
    _REAL: "double precision",
}


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, pa.DataType, bool], ...]  # name, type, nullable
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[tuple[tuple[str, ...], str, tuple[str, ...], bool, bool], ...] = ()


def _t(name: str, cols: str, pk: str = "", fks: Iterable[str] = ()) -> Table:
    """A table from a compact spec: `col:type[?]` (`?` nullable); foreign keys as
    `cols>table(cols)`, `!` after it when both are deleted tables, `*` for on delete cascade."""
    types = {
        "int": _INT,
        "big": _BIG,
        "small": _SMALL,
        "text": _TEXT,
        "date": _DATE,
        "ts": _TS,
        "bool": _BOOL,
        "real": _REAL,
    }
    columns = []
    for spec in cols.split():
        col, _, kind = spec.partition(":")
        columns.append((col, types[kind.rstrip("?")], kind.endswith("?")))
    keys = []
    for fk in fks:
        own, _, rest = fk.partition(">")
        ref, _, theirs = rest.partition("(")
        theirs, _, flags = theirs.partition(")")
        keys.append(
            (tuple(own.split(",")), ref, tuple(theirs.split(",")), "!" in flags, "*" in flags)
        )
    return Table(name, tuple(columns), tuple(pk.split()) if pk else (), tuple(keys))


TABLES = (
    _t("org_units", "org_unit_id:int name:text state:text?", "org_unit_id"),
    _t(
        "campuses",
        "campus_id:int org_unit_id:int? name:text",
        "campus_id",
        ["org_unit_id>org_units(org_unit_id)"],
    ),
    _t(
        "staff",
        "staff_id:int campus_id:int email:text full_name:text",
        "staff_id",
        ["campus_id>campuses(campus_id)"],
    ),
    _t("terms", "term_code:text school_year:int starts_on:date ends_on:date", "term_code"),
    _t(
        "learners", "learner_id:int given_name:text family_name:text birth_date:date?", "learner_id"
    ),
    _t(
        "learner_enrolments",
        "learner_id:int campus_id:int school_year:int entered_on:date",
        "learner_id campus_id school_year",
        ["learner_id>learners(learner_id)!", "campus_id>campuses(campus_id)"],
    ),
    _t(
        "guardians",
        "guardian_id:int learner_id:int full_name:text phone:text?",
        "guardian_id",
        ["learner_id>learners(learner_id)!"],
    ),
    _t(
        "sections",
        "campus_id:int section_code:text term_code:text staff_id:int? title:text",
        "campus_id section_code term_code",
        ["campus_id>campuses(campus_id)", "term_code>terms(term_code)", "staff_id>staff(staff_id)"],
    ),
    _t(
        "section_rosters",
        "campus_id:int section_code:text term_code:text learner_id:int seat_no:small "
        "joined_on:date?",
        "campus_id section_code term_code learner_id seat_no",
        [
            "campus_id,section_code,term_code>sections(campus_id,section_code,term_code)!",
            "learner_id>learners(learner_id)!",
        ],
    ),
    _t(
        "attempts",
        "attempt_id:big campus_id:int section_code:text term_code:text learner_id:int "
        "started_at:ts score:real?",
        "attempt_id",
        [
            "campus_id,section_code,term_code>sections(campus_id,section_code,term_code)!",
            "learner_id>learners(learner_id)!",
        ],
    ),
    _t(
        "attempt_items",
        "attempt_id:big item_no:small response:text? correct:bool",
        "attempt_id item_no",
        ["attempt_id>attempts(attempt_id)!*"],
    ),
    _t(
        "daily_usage",
        "org_unit_id:int? campus_id:int learner_id:int product:text used_on:date minutes:int",
        # a key column may be null here (an unowned row): a unique key, not a primary key
        "",
        [
            "org_unit_id>org_units(org_unit_id)",
            "campus_id>campuses(campus_id)",
            "learner_id>learners(learner_id)!",
        ],
    ),
    # no primary key in the warehouse: the declaration names the key
    _t("notes", "note_id:int owner_kind:text owner_id:int written_at:ts body:text"),
)
BY_NAME = {t.name: t for t in TABLES}
UNIQUE = {"daily_usage": KEYS["daily_usage"]}


def table_ddl(table: Table, target: str) -> list[str]:
    cols = [
        f"{name} {_SQL[kind]}{'' if null else ' not null'}" for name, kind, null in table.columns
    ]
    if table.primary_key:
        cols.append(f"primary key ({', '.join(table.primary_key)})")
    if table.name in UNIQUE:
        cols.append(f"unique ({', '.join(UNIQUE[table.name])})")
    for own, ref, theirs, between_deleted, cascade in table.foreign_keys:
        if target == "duckdb" and between_deleted:
            continue
        action = " on delete cascade" if cascade else ""
        cols.append(
            f"foreign key ({', '.join(own)}) references {SCHEMA}.{ref} ({', '.join(theirs)})"
            + action
        )
    body = ",\n    ".join(cols)
    statements = [f"create table {SCHEMA}.{table.name} (\n    {body}\n)"]
    if target == "postgres":
        # an unindexed foreign key makes each deleted parent row scan its children
        for own, _, _, _, _ in table.foreign_keys:
            if own != table.primary_key[: len(own)]:
                statements.append(
                    f"create index ix_{table.name}__{'_'.join(own)} "
                    f"on {SCHEMA}.{table.name} ({', '.join(own)})"
                )
    return statements


def create_schema(wh: Warehouse) -> None:
    """Schema `sis` and its tables, empty (the schema must not exist yet)."""
    with wh.transaction():
        wh.execute(f"create schema {SCHEMA}")
        for table in TABLES:
            for sql in table_ddl(table, wh.target):
                wh.execute(sql)


def district_ids(districts: int) -> list[int]:
    return list(range(FIRST_DISTRICT, FIRST_DISTRICT + districts))


@dataclass
class VendorData:
    """What load(...) wrote, for the tests to check a reset against.

    owned[table][district]: rows the district owns (alone or with others); unowned[table]:
    rows no district owns; shared[table]: key -> its owning districts, for rows of two."""

    districts: list[int]
    rows: dict[str, int] = field(default_factory=dict)
    owned: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    unowned: dict[str, int] = field(default_factory=dict)
    shared: dict[str, dict[tuple[Any, ...], frozenset[int]]] = field(default_factory=dict)


class _Rows:
    """Columns of each table as they are generated, and each row's owning districts."""

    def __init__(self, districts: list[int]) -> None:
        self.cols: dict[str, dict[str, list[Any]]] = {
            t.name: {c: [] for c, _, _ in t.columns} for t in TABLES
        }
        self.data = VendorData(districts)
        self.counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.loose: dict[str, int] = defaultdict(int)
        self.two: dict[str, dict[tuple[Any, ...], frozenset[int]]] = defaultdict(dict)

    def add(self, table: str, owners: frozenset[int] | None, **values: Any) -> None:
        for col, column in self.cols[table].items():
            column.append(values[col])
        if owners is None:
            return  # a retained table
        if not owners:
            self.loose[table] += 1
        for d in owners:
            self.counts[table][d] += 1
        if len(owners) > 1:
            self.two[table][tuple(values[c] for c in KEYS[table])] = owners

    def arrow(self, table: str) -> pa.Table:
        spec = BY_NAME[table]
        return pa.table(
            {c: pa.array(self.cols[table][c], type=kind) for c, kind, _ in spec.columns}
        )


def load(
    wh: Warehouse, districts: int, seed: int = 1, learners_per_district: int = 6
) -> VendorData:
    """Create schema `sis` and fill it: `districts` org units (ids 101, 102, …), two campuses
    each, `learners_per_district` learners each (their sections, rosters, attempts and
    items, guardians, usage and notes), every even district sharing a learner with the
    next one, and the unowned summer campus with its own learners. Same seed, same rows."""
    create_schema(wh)
    rng = random.Random(f"sis:{seed}")
    ids = district_ids(districts)
    out = _Rows(ids)
    next_id = {"learner": 1, "guardian": 1, "attempt": 10_000_000_000, "note": 1}

    def new(kind: str) -> int:
        next_id[kind] += 1
        return next_id[kind] - 1

    for code, starts, ends in TERMS:
        out.add("terms", None, term_code=code, school_year=YEAR, starts_on=starts, ends_on=ends)
    campuses: dict[int, list[int]] = {}
    for d in ids:
        out.add(
            "org_units",
            None,
            org_unit_id=d,
            name=f"Org unit {d}",
            state=rng.choice(["CA", "TX", "NY"]),
        )
        campuses[d] = [d * 10 + 1, d * 10 + 2]
    campuses[0] = [NULL_CAMPUS]
    for d, ours in campuses.items():
        for c in ours:
            out.add("campuses", None, campus_id=c, org_unit_id=d or None, name=f"Campus {c}")
            out.add(
                "staff",
                None,
                staff_id=c * 10 + 1,
                campus_id=c,
                email=f"staff{c}@example.org",
                full_name=f"Staff {c}",
            )
            for section in ("MATH-A", "MATH-B"):
                for term, _, _ in TERMS:
                    out.add(
                        "sections",
                        frozenset([d]) if d else frozenset(),
                        campus_id=c,
                        section_code=section,
                        term_code=term,
                        staff_id=c * 10 + 1,
                        title=f"{section} {term}",
                    )
        owner = frozenset([d]) if d else frozenset()
        if d:
            _note(out, new("note"), "org_unit", d, owner, rng)
        _note(out, new("note"), "campus", ours[0], owner, rng)

    # learners: each at one campus of its district; the last of each even district also at
    # the next district's first campus (a shared learner); three at the summer campus only
    enrolled: list[tuple[int, list[tuple[int, int]]]] = []  # learner, [(campus, district)]
    for n, d in enumerate(ids):
        for k in range(learners_per_district):
            places = [(campuses[d][k % 2], d)]
            if n % 2 == 0 and n + 1 < len(ids) and k == learners_per_district - 1:
                places.append((campuses[ids[n + 1]][0], ids[n + 1]))
            enrolled.append((new("learner"), places))
    for _ in range(3):
        enrolled.append((new("learner"), [(NULL_CAMPUS, 0)]))

    for learner, places in enrolled:
        owners = frozenset(d for _, d in places if d)
        _learner(out, learner, places, owners, rng, new)

    data = out.data
    for table in TABLES:
        frame = out.arrow(table.name)
        if frame.num_rows:
            wh.load_arrow(SCHEMA, table.name, frame)
        data.rows[table.name] = frame.num_rows
    for table in DELETED:
        data.owned[table] = dict(out.counts[table])
        data.unowned[table] = out.loose[table]
        data.shared[table] = dict(out.two[table])
    return data


def _note(
    out: _Rows, note_id: int, kind: str, owner_id: int, owners: frozenset[int], rng: random.Random
) -> None:
    out.add(
        "notes",
        owners,
        note_id=note_id,
        owner_kind=kind,
        owner_id=owner_id,
        written_at=datetime(2023, 3, 1) + timedelta(minutes=rng.randrange(100_000)),
        body=f"note {note_id} on {kind} {owner_id}",
    )


def _learner(
    out: _Rows,
    learner: int,
    places: list[tuple[int, int]],
    owners: frozenset[int],
    rng: random.Random,
    new: Any,
) -> None:
    """One learner and everything that hangs off it."""
    out.add(
        "learners",
        owners,
        learner_id=learner,
        given_name=f"Given{learner}",
        family_name=f"Family{learner}",
        birth_date=None if learner % 7 == 0 else date(2010, 1, 1) + timedelta(days=learner % 1500),
    )
    for _ in range(1 + learner % 2):
        out.add(
            "guardians",
            owners,
            guardian_id=new("guardian"),
            learner_id=learner,
            full_name=f"Guardian of {learner}",
            phone=None if learner % 3 else "555-0100",
        )
    if learner % 2 or len(owners) > 1:  # a shared learner's note is shared too
        _note(out, new("note"), "learner", learner, owners, rng)
    for campus, d in places:
        here = frozenset([d]) if d else frozenset()
        out.add(
            "learner_enrolments",
            here,
            learner_id=learner,
            campus_id=campus,
            school_year=YEAR,
            entered_on=date(2022, 8, 22),
        )
        for product in PRODUCTS:
            for day in range(2):
                out.add(
                    "daily_usage",
                    here,
                    org_unit_id=d or None,
                    campus_id=campus,
                    learner_id=learner,
                    product=product,
                    used_on=date(2023, 2, 1) + timedelta(days=day * 7),
                    minutes=rng.randrange(5, 60),
                )
        for seat, (section, term) in enumerate(
            [("MATH-A", TERMS[0][0]), ("MATH-B" if learner % 2 else "MATH-A", TERMS[1][0])]
        ):
            out.add(
                "section_rosters",
                here,
                campus_id=campus,
                section_code=section,
                term_code=term,
                learner_id=learner,
                seat_no=seat + 1,
                joined_on=None if seat else date(2022, 8, 22),
            )
            for _ in range(rng.randrange(1, 3)):
                attempt = new("attempt")
                out.add(
                    "attempts",
                    here,
                    attempt_id=attempt,
                    campus_id=campus,
                    section_code=section,
                    term_code=term,
                    learner_id=learner,
                    started_at=datetime(2023, 2, 1, 9) + timedelta(minutes=rng.randrange(200_000)),
                    score=None if attempt % 5 == 0 else round(rng.uniform(0, 100), 2),
                )
                for item in range(rng.randrange(2, 5)):
                    out.add(
                        "attempt_items",
                        here,
                        attempt_id=attempt,
                        item_no=item + 1,
                        response=None if item == 3 else str(rng.randrange(10)),
                        correct=rng.random() < 0.6,
                    )
