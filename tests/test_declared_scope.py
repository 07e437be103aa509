"""The declared scope: read from the sources' meta.eoy_reset, checked against the warehouse's
catalog, refused in one line naming what is wrong, followed through keys to each row's
districts (unowned rows counted and kept, shared rows kept until their last owner)."""

from __future__ import annotations

from typing import Any

import pytest

from jobs.config import Settings
from jobs.scope import Scope, ScopeError, demo_scope, load_scope, scope_from_manifest
from jobs.scope.sql import counts_sql, delete_sql, select_sql, unowned_sql
from jobs.warehouse.connection import Warehouse

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
