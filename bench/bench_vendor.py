"""The second schema (tests/vendor: `sis`, nothing like `app`) at 1,000 districts on
PostgreSQL: the whole reset through the vendor's own dbt project against a floor that runs
the same set-based ownership joins once and deletes.

The warehouse is loaded once into a template database (`init` in the vendor project, then
the generator of tests/vendor); every measurement starts from a fresh copy of it (`create
database … template …`), always at the same database name, so dbt's parse cache stays valid.
Each command runs in a child process of its own, timed from here (start-up included):

  plan   `eoy-reset --project-dir <vendor project> plan --json`, twice on one copy; the
         second (dbt's partial parse) is the one in the ratio
  ours   `run --yes --json` after a `plan` (untimed) on a fresh copy
  floor  after a `plan` (untimed: it builds who is due and the `rows:` models), in one
         transaction: each deleted table's owned rows found by the same joins the
         declaration says (through campuses, sections, parents, the two `rows:` models; a
         shared row only once all its owners are due), read once by binary COPY into
         nothing and deleted, children first. No fingerprints, no files, no ledger.

Ratio ours / (plan + floor), within one run; never a timed assertion.

    .venv/bin/python -m bench.bench_vendor    (EOY_BENCH_VENDOR_DISTRICTS=50 for a quick run)
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from bench.bench_reset import Measured, measure
from bench.common import postgres_server, write_section
from jobs.config import Settings
from tests.conftest import with_dbname
from tests.vendor import PROJECT, load
from tests.vendor.helpers import AS_OF, YEAR, ready_project, warehouse

SECTION = "Second schema (sis), PostgreSQL"
SEED = 1
LEARNERS = int(os.environ.get("EOY_BENCH_VENDOR_LEARNERS", "40"))

# Each deleted table, children first, and the join that finds the rows of due districts
# (`t` the table; temp tables `due`, `gone_learners`, `gone_notes` made first, since the
# `rows:` models read tables the floor deletes from).
OWNED = {
    "attempt_items": "join sis.attempts a on a.attempt_id = t.attempt_id "
    "join sis.sections s on (s.campus_id, s.section_code, s.term_code) = "
    "(a.campus_id, a.section_code, a.term_code) "
    "join sis.campuses c on c.campus_id = s.campus_id join due on due.id = c.org_unit_id",
    "attempts": "join sis.sections s on (s.campus_id, s.section_code, s.term_code) = "
    "(t.campus_id, t.section_code, t.term_code) "
    "join sis.campuses c on c.campus_id = s.campus_id join due on due.id = c.org_unit_id",
    "section_rosters": "join sis.sections s on (s.campus_id, s.section_code, s.term_code) = "
    "(t.campus_id, t.section_code, t.term_code) "
    "join sis.campuses c on c.campus_id = s.campus_id join due on due.id = c.org_unit_id",
    "daily_usage": "join due on due.id = t.org_unit_id",
    "notes": "join gone_notes g on g.note_id = t.note_id",
    "guardians": "join gone_learners g on g.learner_id = t.learner_id",
    "learner_enrolments": "join sis.campuses c on c.campus_id = t.campus_id "
    "join due on due.id = c.org_unit_id",
    "sections": "join sis.campuses c on c.campus_id = t.campus_id "
    "join due on due.id = c.org_unit_id",
    "learners": "join gone_learners g on g.learner_id = t.learner_id",
}
# a row of a `rows:` model goes once every owner is due
GONE = (
    "create temp table {name} on commit drop as select {key} from {model} "
    "group by {key} having bool_and(district_id in (select id from due))"
)


def models_schema(con: psycopg.Connection[Any]) -> str:
    """Where the vendor's profile put its models (the `rows:` views and the reset marts)."""
    row = con.execute(
        "select table_schema from information_schema.views where table_name = 'learner_districts'"
    ).fetchone()
    assert row, "the plan built no learner_districts model"
    return str(row[0])


def floor(dsn: str) -> dict[str, Any]:
    rows = 0
    with psycopg.connect(dsn) as con, con.cursor() as cur:
        schema = models_schema(con)
        cur.execute(
            sql.SQL(
                "create temp table due on commit drop as select distinct "
                "cast(district_id as integer) as id from {} where school_year = %s"
            ).format(sql.Identifier(schema, "due_districts")),
            [YEAR],
        )
        due = int(cur.execute("select count(*) from due").fetchone()[0])  # type: ignore[index]
        for name, key, model in (
            ("gone_learners", "learner_id", "learner_districts"),
            ("gone_notes", "note_id", "note_districts"),
        ):
            cur.execute(
                sql.SQL(GONE).format(
                    name=sql.Identifier(name),
                    key=sql.Identifier(key),
                    model=sql.Identifier(schema, model),
                )
            )
        for table, joins in OWNED.items():
            with cur.copy(_delete(table, joins)) as copy:
                for _ in copy:
                    pass
            rows += cur.rowcount
        con.commit()
    return {"due": due, "rows": rows}


def _delete(table: str, joins: str) -> str:
    """One statement: the owned rows found by the joins, deleted, and read as they go
    (DELETE … USING … RETURNING streamed by binary COPY)."""
    return (
        f"copy (delete from sis.{table} d using (select t.ctid as row_id from sis.{table} t "
        f"{joins}) owned where d.ctid = owned.row_id returning d.*) to stdout (format binary)"
    )


def eoy(settings: Settings, *args: str, must_pass: bool = True) -> Measured:
    return measure(
        settings, "jobs", "--project-dir", str(PROJECT), *args, "--json", must_pass=must_pass
    )


def bench(server: str, districts: int) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    template, case = f"eoy_bench_sis_tpl_{tag}", f"eoy_bench_sis_case_{tag}"
    scratch = Path(tempfile.mkdtemp(prefix="eoy-bench-sis-"))

    def admin(statement: str) -> None:
        with psycopg.connect(server, autocommit=True) as con:
            con.execute(statement)

    def settings(dbname: str, root: str) -> Settings:
        return Settings(
            target="postgres",
            pg_dsn=with_dbname(server, dbname),
            snapshot_root=scratch / root,
            duckdb_path=scratch / "unused.duckdb",
        )

    def copy(root: str) -> Settings:
        admin(f"drop database if exists {case} with (force)")
        admin(f"create database {case} template {template}")
        return settings(case, root)

    r: dict[str, Any] = {"districts": districts}
    try:
        admin(f"create database {template}")
        tpl = settings(template, "unused")
        eoy(tpl, "init")
        began = time.perf_counter()
        with warehouse(tpl) as wh:
            data = load(wh, districts, seed=SEED, learners_per_district=LEARNERS)
        r.update(load=time.perf_counter() - began, rows_loaded=sum(data.rows.values()))
        print(f"  loaded {r['rows_loaded']:,} rows in {r['load']:.1f} s", flush=True)

        one = copy("plan")
        first, second = eoy(one, "plan", "--as-of", AS_OF), eoy(one, "plan", "--as-of", AS_OF)
        r.update(plan_first=first.seconds, plan=second.seconds)
        r.update(due=second.doc["totals"]["districts"], rows_planned=second.doc["totals"]["rows"])
        print(f"  plan {first.seconds:.1f} s, again {second.seconds:.1f} s", flush=True)

        ours_case = copy("ours")
        eoy(ours_case, "plan", "--as-of", AS_OF)
        ours = eoy(ours_case, "run", "--as-of", AS_OF, "--yes", must_pass=False)
        if ours.returncode != 0 or ours.doc.get("failed"):
            raise SystemExit(f"run failed ({ours.returncode}): {ours.stderr.strip()[-1500:]}")
        phases = ours.doc.get("seconds_by_phase", {})
        r.update(
            ours=ours.seconds,
            rows=ours.doc["totals"]["rows"],
            ran=ours.doc["totals"]["districts"],
            build=phases.get("build_models"),
            district_phase=phases.get("districts"),
            ours_rss=ours.rss,
        )
        print(
            f"  ours {ours.seconds:.1f} s ({r['rows']:,} rows, phases {phases}),"
            f" {ours.busy or 0:.2f} cores busy",
            flush=True,
        )

        floor_case = copy("floor")
        eoy(floor_case, "plan", "--as-of", AS_OF)
        base = measure(floor_case, "bench.bench_vendor", "--child")
        r.update(floor=base.seconds, floor_rows=base.doc["rows"], floor_due=base.doc["due"])
        print(
            f"  floor {base.seconds:.1f} s ({base.doc['rows']:,} rows),"
            f" {base.busy or 0:.2f} cores busy",
            flush=True,
        )
        r["ratio"] = r["ours"] / (r["plan"] + r["floor"])
    finally:
        for name in (case, template):
            admin(f"drop database if exists {name} with (force)")
        shutil.rmtree(scratch, ignore_errors=True)  # the three copies' snapshots
    return r


def report(r: dict[str, Any]) -> None:
    note = (
        f"Schema `sis` of tests/vendor (integer ids; ownership through campuses, sections, "
        f"parents and two `rows:` models; learners of two districts) loaded with "
        f"{r['districts']:,} org units, {LEARNERS} learners each, seed {SEED}, reset as of "
        f"{AS_OF} through the vendor's dbt project (`--project-dir tests/vendor/project`); "
        "2 cores; python -m bench.bench_vendor. **ours**: `run --yes` after an untimed `plan`; "
        "**plan**: the second of two; **floor**: the same ownership joins run once, the owned "
        "rows read by binary COPY into nothing and deleted, children first, in one "
        "transaction. Seconds are wall time around each process (start-up included)."
    )
    table = (
        "| districts | rows loaded | due | rows deleted (floor) | ours | dbt build | "
        "districts phase | plan (first / second) | floor | ours / (plan + floor) |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {r['districts']:,} | {r['rows_loaded']:,} | {r['due']:,} | {r['rows']:,} "
        f"({r['floor_rows']:,}) | {r['ours']:.1f} s | {r['build'] or 0:.1f} s | "
        f"{r['district_phase'] or 0:.1f} s | {r['plan_first']:.1f} / {r['plan']:.1f} s | "
        f"{r['floor']:.1f} s | {r['ratio']:.2f}x |"
    )
    print(table, flush=True)
    write_section(SECTION, note, table)


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(floor(Settings.from_env().pg_dsn or "")))
        return 0
    districts = int(os.environ.get("EOY_BENCH_VENDOR_DISTRICTS", "1000"))
    scratch = Path(tempfile.gettempdir())
    ready_project(scratch / "eoy-bench-vendor-project.lock")
    with postgres_server() as server:
        print(f"== postgres, sis, {districts:,} districts", flush=True)
        result = bench(server, districts)
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
