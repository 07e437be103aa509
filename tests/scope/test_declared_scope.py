"""The declared scope: read from the sources' meta.eoy_reset, checked against the warehouse's
catalog, refused in one line naming what is wrong, followed through keys to each row's
districts (unowned rows counted and kept, shared rows kept until their last owner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from jobs.config import Settings
from jobs.scope import Scope, ScopeError, demo_scope, load_scope, scope_from_manifest
from jobs.scope.current import forget_scope
from jobs.scope.sql import (
    counts_sql,
    delete_sql,
    fixed_owners_sql,
    owners_fixed,
    select_sql,
    sweep_sql,
    unowned_sql,
)
from jobs.warehouse.connection import Warehouse, connect
from tests.support.crash_helpers import cli_env
from tests.support.in_process import run_in_process

ROOT = Path(__file__).resolve().parents[2]

# A small school network nothing like the demo's: integer ids, no district column on the
# student tables (a learner reaches its organisation through its site), a composite key, a
# child declared through its parent (`of:`), and badges whose owners only a model can say.
DDL = [
    "create schema sch",
    "create schema sch_m",
    "create table sch.org (org_id integer primary key, name text)",
    "create table sch.site (site_id integer primary key, org_id integer)",
    "create table sch.learner (learner_id integer primary key, site_id integer, nick text)",
    "create table sch.score (learner_id integer, n integer, pts double precision, "
    "primary key (learner_id, n), foreign key (learner_id) references sch.learner (learner_id))",
    "create table sch.badge (badge_id integer primary key, label text)",
    "create table sch_m.badge_owners (badge_id integer, district_id integer)",
    "insert into sch.org values (1, 'one'), (2, 'two'), (3, 'three')",
    "insert into sch.site values (10, 1), (20, 2), (30, null)",
    "insert into sch.learner values (100, 10, 'a'), (101, 10, 'b'), (200, 20, 'c'), (300, 30, 'd')",
    "insert into sch.score values (100, 1, 1.5), (100, 2, 2.5), (200, 1, 3.0), (300, 1, 4.0)",
    "insert into sch.badge values (7, 'shared'), (8, 'only two')",
    "insert into sch_m.badge_owners values (7, 1), (7, 2), (8, 2)",
]

DECLARED: dict[str, Any] = {
    "org": {"role": "districts", "key": "org_id"},
    "site": {"action": "retain"},
    "learner": {
        "action": "delete",
        "district": {"via": [{"table": "site", "on": {"site_id": "site_id"}}], "column": "org_id"},
    },
    "score": {"action": "delete", "of": {"table": "learner", "on": {"learner_id": "learner_id"}}},
    "badge": {"action": "delete", "rows": "badge_owners"},
}


def manifest(tables: dict[str, Any], models: dict[str, str] | None = None) -> dict[str, Any]:
    """The part of dbt's manifest.json the scope reads, for source `sch` in scope."""
    models = {"badge_owners": "sch_m.badge_owners"} if models is None else models
    return {
        "metadata": {"project_name": "vendor"},
        "sources": {
            f"source.vendor.sch.{name}": {
                "package_name": "vendor",
                "source_name": "sch",
                "schema": "sch",
                "name": name,
                "identifier": name,
                "source_meta": {"eoy_reset": {"scope": True}},
                "meta": {} if meta is None else {"eoy_reset": meta},
            }
            for name, meta in tables.items()
        },
        "nodes": {
            f"model.vendor.{name}": {
                "resource_type": "model",
                "name": name,
                "package_name": "vendor",
                "relation_name": relation,
            }
            for name, relation in models.items()
        },
    }


@pytest.fixture
def school(wh: Warehouse) -> Warehouse:
    for sql in DDL:
        wh.execute(sql)
    return wh


def refusal(wh: Warehouse, tables: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(ScopeError) as caught:
        scope_from_manifest(wh, manifest(tables, **kw))
    line = str(caught.value)
    assert "\n" not in line
    return line


def test_the_scope_loads_with_its_order(school: Warehouse) -> None:
    scope = scope_from_manifest(school, manifest(DECLARED))
    assert scope.deleted == ("learner", "score", "badge")
    assert scope.retained == ("org", "site")
    assert scope.districts.key == ("org_id",)
    # the composite key comes from the warehouse; the child goes before its parent
    assert scope.tables["score"].key == ("learner_id", "n")
    assert scope.delete_order.index("score") < scope.delete_order.index("learner")
    assert scope.insert_order.index("learner") < scope.insert_order.index("score")
    assert scope.roles_said()["syncs"] == "none declared; kept in eoy_runner.import_syncs"


def owners(wh: Warehouse, scope: Scope, table: str) -> dict[str, int]:
    return {str(d): int(n) for d, n in wh.query(counts_sql(scope, scope.tables[table]))}


def test_rows_reach_their_districts_through_keys(school: Warehouse) -> None:
    scope = scope_from_manifest(school, manifest(DECLARED))
    assert owners(school, scope, "learner") == {"1": 2, "2": 1}
    assert owners(school, scope, "score") == {"1": 2, "2": 1}
    assert owners(school, scope, "badge") == {"1": 1, "2": 2}
    # the learner of the site with no district, and its score, belong to no one
    assert school.scalar(unowned_sql(scope, scope.tables["learner"])) == 1
    assert school.scalar(unowned_sql(scope, scope.tables["score"])) == 1
    assert school.scalar(unowned_sql(scope, scope.tables["badge"])) == 0
    rows = school.query(select_sql(scope, scope.tables["score"], ["1"], "o.learner_id, o.n"))
    assert sorted(rows) == [(100, 1, "1"), (100, 2, "1")]


def test_a_delete_takes_owned_rows_only_and_shared_ones_with_their_last_owner(
    school: Warehouse,
) -> None:
    scope = scope_from_manifest(school, manifest(DECLARED))
    for table in scope.delete_order:
        school.execute(delete_sql(scope, scope.tables[table], ["1"], 2023))
    assert school.query("select learner_id from sch.learner order by 1") == [(200,), (300,)]
    assert school.query("select learner_id, n from sch.score order by 1, 2") == [(200, 1), (300, 1)]
    # badge 7 is district 2's too, and district 2 is not reset yet: it stays
    assert school.query("select badge_id from sch.badge order by 1") == [(7,), (8,)]
    school.execute(
        "insert into eoy_runner.reset_runs (district_id, school_year, status) "
        "values ('1', 2023, 'completed')"
    )
    for table in scope.delete_order:
        school.execute(delete_sql(scope, scope.tables[table], ["2"], 2023))
    assert school.query("select badge_id from sch.badge") == []
    # what no district owns is never deleted
    assert school.query("select learner_id from sch.learner") == [(300,)]
    assert school.query("select learner_id from sch.score") == [(300,)]


def test_two_owners_in_one_batch_take_the_shared_row(school: Warehouse) -> None:
    scope = scope_from_manifest(school, manifest(DECLARED))
    school.execute(delete_sql(scope, scope.tables["badge"], ["1", "2"], 2023))
    assert school.query("select badge_id from sch.badge") == []


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"ddl": "create table sch.extra (x integer)"}, "table sch.extra is in schema sch"),
        ({"site": None}, "table sch.site has no meta.eoy_reset declaration"),
        ({"learner": {**DECLARED["learner"], "key": ["nope"]}}, "key column sch.learner.nope"),
        (
            {"learner": {"action": "delete", "district": "org_id"}},
            "district column sch.learner.org_id does not exist",
        ),
        (
            {
                "learner": {
                    "action": "delete",
                    "district": {
                        "via": [{"table": "campus", "on": {"site_id": "id"}}],
                        "column": "x",
                    },
                }
            },
            "joins table sch.campus, which does not exist",
        ),
        (
            {
                "learner": {
                    **DECLARED["learner"],
                    "district": {**DECLARED["learner"]["district"], "column": "org"},
                }
            },
            "district column sch.site.org does not exist",
        ),
        ({"badge": {"action": "delete", "rows": "no_such_model"}}, "model no_such_model"),
        (
            {
                "org2": {"role": "districts", "key": "org_id"},
                "ddl": "create table sch.org2 (org_id integer)",
            },
            "two districts tables",
        ),
        (
            {
                "learner": {
                    "action": "delete",
                    "of": {"table": "score", "on": {"learner_id": "learner_id"}},
                },
            },
            "a cycle of deletes: sch.learner → sch.score → sch.learner",
        ),
        ({"score": {"action": "retain"}}, "foreign key"),
        (
            {"badge": {"action": "delete"}},
            "table sch.badge: a deleted table says how a row reaches",
        ),
    ],
)
def test_each_refusal_is_one_line_naming_what_is_wrong(
    school: Warehouse, change: dict[str, Any], said: str
) -> None:
    change = dict(change)
    if "ddl" in change:
        school.execute(change.pop("ddl"))
    tables = {**DECLARED, **change}
    line = refusal(school, tables)
    assert said in line, line


def test_a_foreign_key_into_a_deleted_table_names_the_key(school: Warehouse) -> None:
    school.execute("create schema other")
    school.execute(
        "create table other.certificate (id integer primary key, learner_id integer "
        "references sch.learner (learner_id))"
    ) if school.target == "postgres" else school.execute(
        "create table sch.certificate (id integer primary key, learner_id integer "
        "references sch.learner (learner_id))"
    )
    tables = dict(DECLARED)
    if school.target == "duckdb":
        tables["certificate"] = {"action": "retain"}
    line = refusal(school, tables)
    assert "foreign key" in line and "certificate" in line and "sch.learner" in line, line
    assert "is not declared delete" in line


@pytest.mark.parametrize("target", ["duckdb"])
def test_the_demo_declaration_loads_from_the_project(settings: Settings, wh: Warehouse) -> None:
    scope = load_scope(settings, wh)
    assert scope.deleted == (
        "students",
        "classrooms",
        "classroom_enrollments",
        "assessments",
        "progress",
        "pathways",
        "usage_sessions",
    )
    assert scope.delete_order[-1] == "students"
    assert scope.districts.qualified == "app.districts"
    assert scope.role_relation("syncs") == "app.import_syncs"
    assert scope.tables["classroom_enrollments"].key == ("classroom_id", "student_id")
    # the scope a function sees before a command loaded one is the same
    demo = demo_scope()
    assert (demo.deleted, demo.retained) == (scope.deleted, scope.retained)
    assert (demo.delete_order, demo.insert_order) == (scope.delete_order, scope.insert_order)
    for label, table in scope.tables.items():
        assert demo.tables[label].columns == table.columns, label
        assert demo.tables[label].key == table.key, label


VENDOR_SOURCES = """version: 2
sources:
  - name: sch
    schema: sch
    meta:
      eoy_reset: {scope: true}
    tables:
      - name: org
        meta: {eoy_reset: {role: districts, key: org_id}}
      - name: site
        meta: {eoy_reset: {action: retain}}
      - name: learner
        meta:
          eoy_reset:
            action: delete
            district: {via: [{table: site, on: {site_id: site_id}}], column: org_id}
      - name: score
        meta:
          eoy_reset: {action: delete, of: {table: learner, on: {learner_id: learner_id}}}
"""


VENDOR_PROFILES = """vendor:
  target: "{{ env_var('EOY_TARGET') }}"
  outputs:
    duckdb:
      type: duckdb
      path: "{{ env_var('EOY_DUCKDB_PATH') }}"
      schema: eoy
      threads: 1
    postgres:
      type: postgres
      host: "{{ env_var('EOY_PG_HOST', 'localhost') }}"
      port: "{{ env_var('EOY_PG_PORT', '5432') | int }}"
      user: "{{ env_var('EOY_PG_USER', 'postgres') }}"
      password: "{{ env_var('EOY_PG_PASSWORD', '') }}"
      dbname: "{{ env_var('EOY_PG_DBNAME', 'postgres') }}"
      schema: eoy
      threads: 1
"""


def vendor_project(folder: Path, sources: str = VENDOR_SOURCES) -> Path:
    """A vendor's dbt project that installs eoy-reset as a package and declares `sources`
    (`sch` unless given)."""
    (folder / "models").mkdir(parents=True)
    (folder / "dbt_project.yml").write_text(
        'name: vendor\nversion: "1.0.0"\nconfig-version: 2\nprofile: vendor\n'
        'model-paths: ["models"]\n'
    )
    (folder / "packages.yml").write_text(f"packages:\n  - local: {ROOT}\n")
    (folder / "profiles.yml").write_text(VENDOR_PROFILES)
    (folder / "models" / "_sources.yml").write_text(sources)
    return folder


def vendor_env(
    settings: Settings,
    wh: Warehouse,
    tmp_path: Path,
    ddl: list[str],
    sources: str = VENDOR_SOURCES,
) -> dict[str, str]:
    """The warehouse made by ddl (then closed: the commands open it), a vendor project that
    declares sources, and the environment of a command run in it."""
    for sql in ddl:
        wh.execute(sql)
    wh.close()
    project = vendor_project(tmp_path / "vendor", sources)
    return cli_env(settings, EOY_PROJECT_DIR=str(project))


def planned(env: dict[str, str]) -> dict[str, Any]:
    """`plan --as-of 2023-08-01 --json` in that environment, passed."""
    plan = run_in_process(["plan", "--as-of", "2023-08-01", "--json"], env, ROOT)
    assert plan.returncode == 0, plan.stderr
    return dict(json.loads(plan.stdout))


@pytest.mark.parametrize("target", ["duckdb"])
def test_a_vendor_project_plans_runs_and_refuses_a_table_left_out(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    """plan and run in a vendor's project (integer ids, a path, of:); a table added to its
    schema and forgotten in the scope stops both, in one line, before anything changes."""
    env = vendor_env(settings, wh, tmp_path, [sql for sql in DDL if "badge" not in sql])
    try:
        doc = planned(env)
        assert doc["totals"]["rows_by_table"] == {"learner": 3, "score": 3}
        assert doc["unowned"] == {"learner": 1, "score": 1}
        assert doc["roles"]["syncs"] == "none declared; kept in eoy_runner.import_syncs"
        with connect(settings) as again:
            again.execute("create table sch.extra (x integer)")
        for args in (["plan", "--as-of", "2023-08-01"], ["run", "--as-of", "2023-08-01", "--yes"]):
            refused = run_in_process(args, env, ROOT)
            assert refused.returncode != 0
            line = refused.stderr.strip()
            assert "\n" not in line and "table sch.extra is in schema sch" in line, line
        with connect(settings) as again:
            assert again.scalar("select count(*) from sch.learner") == 4
    finally:
        forget_scope()


# Two declared schemas, each with a table `note` (kept: sch's checked whole, sch2's by its
# district column) and a table `learner` (deleted).
TWO_SCHEMAS_DDL = [
    "create schema sch",
    "create schema sch2",
    "create table sch.org (org_id integer primary key, name text)",
    "create table sch.note (note_id integer primary key, district_id integer)",
    "create table sch2.note (note_id integer primary key, org_ref integer)",
    "create table sch.learner (learner_id integer primary key, org_id integer)",
    "create table sch2.learner (learner_id integer primary key, org_id integer)",
    "insert into sch.org values (1, 'one'), (2, 'two')",
    "insert into sch.note values (1, 1), (2, 2)",
    "insert into sch2.note values (1, 1), (2, 1), (3, 2)",
    "insert into sch.learner values (10, 1), (20, 2)",
    "insert into sch2.learner values (11, 1), (12, 1), (13, 1), (21, 2)",
]


def in_scope(name: str, tables: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A source of schema `name` in the reset's scope, declaring tables (JSON is YAML)."""
    return {
        "name": name,
        "schema": name,
        "meta": {"eoy_reset": {"scope": True}},
        "tables": [{"name": t, "meta": {"eoy_reset": meta}} for t, meta in tables.items()],
    }


LEARNER = {"action": "delete", "district": "org_id"}
TWO_SCHEMAS_SOURCES = json.dumps(
    {
        "version": 2,
        "sources": [
            in_scope(
                "sch",
                {
                    "org": {"role": "districts", "key": "org_id"},
                    "note": {"action": "retain"},
                    "learner": LEARNER,
                },
            ),
            in_scope(
                "sch2",
                {"note": {"action": "retain", "district": "org_ref"}, "learner": LEARNER},
            ),
        ],
    }
)


def test_two_schemas_tables_of_one_name_are_counted_and_checked_apart(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    """A table name two declared schemas share is `schema.table` everywhere: in the plan's
    counts, the ledger's, and the audit marts' (a retained row lost from one of them is a
    violation named by its schema, of its district when the table has a district column, of
    every district when the runner checks it whole)."""
    env = vendor_env(settings, wh, tmp_path, TWO_SCHEMAS_DDL, TWO_SCHEMAS_SOURCES)
    try:
        doc = planned(env)
        assert doc["totals"]["rows_by_table"] == {"sch.learner": 2, "sch2.learner": 4}
        done = run_in_process(["run", "--as-of", "2023-08-01", "--yes", "--json"], env, ROOT)
        assert done.returncode == 0, done.stderr
        report = tmp_path / "report.html"
        shown = run_in_process(
            ["report", "--html", str(report), "--school-year", "2023", "--json"], env, ROOT
        )
        assert shown.returncode == 0, shown.stderr
        # a clean reset: every retained table as the runner left it (the audit marts are
        # views: what follows reads the rows as they are then)
        assert json.loads(shown.stdout)["counts"]["retention_violations"] == 0
        with connect(settings) as again:
            again.execute("delete from sch2.note where note_id = 2")
            again.execute("delete from sch.note where note_id = 2")
            marts = again.scalar(
                "select table_schema from information_schema.tables "
                "where table_name = 'audit_retention_violations'"
            )
            violations = again.query(
                "select district_id, table_name, expected_rows, actual_rows "
                f"from {marts}.audit_retention_violations order by 1, 2"
            )
            deleted = again.query(
                "select district_id, table_name, sum(rows_deleted) "
                f"from {marts}.audit_deleted_rows group by 1, 2 order by 1, 2"
            )
        assert violations == [
            ("1", "sch.note", 2, 1),
            ("1", "sch2.note", 2, 1),
            ("2", "sch.note", 2, 1),
        ]
        assert deleted == [
            ("1", "sch.learner", 1),
            ("1", "sch2.learner", 3),
            ("2", "sch.learner", 1),
            ("2", "sch2.learner", 1),
        ]
    finally:
        forget_scope()


@pytest.mark.parametrize("target", ["duckdb"])
def test_an_exact_number_goes_to_the_snapshot_and_back_digit_for_digit(
    settings: Settings, wh: Warehouse, tmp_path: Path
) -> None:
    """A vendor's numeric column holds more significant digits than a double: the snapshot
    keeps its text, and the restore puts back the very number."""
    exact = "12345678901234567.891"
    score = ", foreign key (learner_id) references sch.learner (learner_id)"
    for sql in DDL:  # DuckDB cannot delete a parent in the transaction that deleted its child
        if "badge" not in sql:
            wh.execute(sql.replace("pts double precision", "pts numeric(20, 3)").replace(score, ""))
    wh.execute(f"update sch.score set pts = {exact} where learner_id = 100 and n = 2")
    wh.close()
    project = vendor_project(tmp_path / "vendor")
    env = cli_env(settings, EOY_PROJECT_DIR=str(project))
    try:
        done = run_in_process(["run", "--as-of", "2023-08-01", "--yes", "--json"], env, ROOT)
        assert done.returncode == 0, done.stderr
        folder = Path(settings.snapshot_root) / "2023" / "1"
        kept = pq.read_table(folder / "score.parquet").to_pylist()
        assert {"learner_id": 100, "n": 2, "pts": exact} in kept
        verified = run_in_process(["verify-snapshot", str(folder)], env, ROOT)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        back = run_in_process(["restore", "--district", "1", "--school-year", "2023"], env, ROOT)
        assert back.returncode == 0, back.stderr
        with connect(settings) as again:
            got = again.scalar(
                "select cast(pts as text) from sch.score where learner_id = 100 and n = 2"
            )
            assert got == exact
    finally:
        forget_scope()


def test_two_batches_in_flight_leave_a_shared_row_the_end_of_the_run_takes(
    school: Warehouse,
) -> None:
    scope = scope_from_manifest(school, manifest(DECLARED))
    badge = scope.tables["badge"]
    # each batch decides while the other's district is not yet completed: both keep badge 7
    school.execute(delete_sql(scope, badge, ["1"], 2023))
    school.execute(delete_sql(scope, badge, ["2"], 2023))
    assert school.query("select badge_id from sch.badge") == [(7,)]
    school.execute(
        "insert into eoy_runner.reset_runs (district_id, school_year, status) "
        "values ('1', 2023, 'completed')"
    )
    school.execute(sweep_sql(scope, badge, 2023))  # one owner still to go: it stays
    assert school.query("select badge_id from sch.badge") == [(7,)]
    school.execute(
        "insert into eoy_runner.reset_runs (district_id, school_year, status) "
        "values ('2', 2023, 'completed')"
    )
    school.execute(sweep_sql(scope, badge, 2023))
    assert school.query("select badge_id from sch.badge") == []


def test_a_pass_decides_on_a_shared_row_once_though_its_other_owner_completes_meanwhile(
    school: Warehouse,
) -> None:
    """Badge 7 is district 1's and district 2's; its note reaches it through the badge
    (`of:`, no foreign key to stop a wrong delete). District 1's pass deletes the note's
    table first and keeps badge 7's note for district 2; district 2's batch then commits
    beside it, before the pass reaches the badges. The pass keeps badge 7 too, as it
    decided for its child: the end of the run takes both. Deciding again with the ledger
    as it is now, it would delete the badge and leave its note to no owner, for ever."""
    school.execute("create table sch.badge_note (badge_id integer, n integer, txt text)")
    school.execute("insert into sch.badge_note values (7, 1, 'of both'), (8, 1, 'of two')")
    declared = {
        **DECLARED,
        "badge_note": {
            "action": "delete",
            "key": ["badge_id", "n"],
            "of": {"table": "badge", "on": {"badge_id": "badge_id"}},
        },
    }
    scope = scope_from_manifest(school, manifest(declared))
    assert scope.delete_order.index("badge_note") < scope.delete_order.index("badge")
    with school.transaction():
        for statement in fixed_owners_sql(scope, ["1"], school.target, 2023):
            school.execute(statement)
        with owners_fixed(scope):
            school.execute(delete_sql(scope, scope.tables["badge_note"], ["1"], 2023))
            school.execute(
                "insert into eoy_runner.reset_runs (district_id, school_year, status) "
                "values ('2', 2023, 'completed')"
            )
            school.execute(delete_sql(scope, scope.tables["badge"], ["1"], 2023))
        assert school.query("select badge_id from sch.badge order by 1") == [(7,), (8,)]
        assert school.query("select badge_id from sch.badge_note order by 1") == [(7,), (8,)]
    school.execute(
        "insert into eoy_runner.reset_runs (district_id, school_year, status) "
        "values ('1', 2023, 'completed')"
    )
    for table in ("badge_note", "badge"):  # children first
        school.execute(sweep_sql(scope, scope.tables[table], 2023))
    # every owner completed (badge 8, district 2's alone, stood for its batch's delete)
    assert school.query("select badge_id from sch.badge") == []
    assert school.query("select badge_id from sch.badge_note") == []
