"""Audit models (schema eoy_audit) after a scripted reset, on both targets: each model returns
exactly the expected rows, carries no student data, and the retention test fails when a
student row is planted back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest

from jobs.config import Settings
from jobs.plan.dbt import DbtError, dbt_work_dir, run_dbt
from jobs.report.html import SCHEMA, build_audit_models
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.schema import init_warehouse
from tests.conftest import TARGETS, make_settings
from tests.support.audit_scenario import (
    AS_OF,
    BLOCKED,
    DONE,
    FAILED,
    IM,
    IMF,
    LATER,
    OVERDUE,
    RESTORED,
    RESUMED_AT,
    SCHOOL_YEAR,
    SHA,
    SNAPSHOT,
    UPCOMING,
    insert,
    script_reset,
)

AUDIT_MODELS = (
    "audit_reset_status",
    "audit_deleted_rows",
    "audit_overdue_districts",
    "audit_retention_violations",
    "audit_inactive_educators",
    "audit_upcoming_resets",
    "audit_certificates",
)
VARS = {"as_of_date": AS_OF.isoformat(), "school_year": SCHOOL_YEAR}


@pytest.fixture(scope="module", params=TARGETS)
def audited(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Warehouse]]:
    """One scripted reset per target, audit models built once for the module."""
    made = make_settings(str(request.param), tmp_path_factory.mktemp("audit"), request)
    settings = next(made)
    wh = connect(settings, create=True, require_init=False)
    try:
        init_warehouse(wh)
        script_reset(wh)
        build_audit_models(settings, AS_OF, SCHOOL_YEAR)
        yield settings, wh
    finally:
        wh.close()
        made.close()


def rows(wh: Warehouse, model: str, columns: str) -> set[tuple[Any, ...]]:
    return {tuple(r) for r in wh.query(f"select {columns} from {SCHEMA}.{model}")}


def test_reset_status(audited: tuple[Settings, Warehouse]) -> None:
    _, wh = audited
    got = rows(
        wh,
        "audit_reset_status",
        "district_id, school_year, effective_reset_date, date_source, status, is_due, "
        "rows_deleted, schedule_issues",
    )
    d = date
    assert got == {
        (DONE, 2023, d(2023, 7, 28), "default", "completed", False, 14, ""),
        (DONE, 2022, None, None, "completed", False, 5, ""),
        (OVERDUE, 2023, d(2023, 7, 28), "default", "not_started", True, None, ""),
        (FAILED, 2023, d(2023, 7, 10), "requested", "failed", True, None, ""),
        (
            BLOCKED,
            2023,
            d(2023, 8, 16),
            "after_session_end",
            "blocked",
            False,
            None,
            "conflicts_with_rostering",
        ),
        (UPCOMING, 2023, d(2023, 8, 10), "after_session_end", "not_started", False, None, ""),
        (LATER, 2023, d(2023, 10, 1), "after_session_end", "not_started", False, None, ""),
        (RESTORED, 2023, d(2023, 7, 28), "default", "restored", False, 14, ""),
    }
    done = wh.query_dicts(
        f"select * from {SCHEMA}.audit_reset_status where district_id = %s and school_year = %s",
        [DONE, SCHOOL_YEAR],
    )[0]
    assert done["snapshot_path"] == SNAPSHOT and done["manifest_sha256"] == SHA
    assert done["syncs_paused_at"] == datetime(2023, 7, 28, 8, 0, 30)
    assert done["syncs_resumed_at"] == RESUMED_AT
    assert (done["last_step"], done["last_step_status"]) == ("resume_syncs", "completed")
    assert done["run_finished_at"] == datetime(2023, 7, 28, 8, 5)


def test_deleted_rows(audited: tuple[Settings, Warehouse]) -> None:
    _, wh = audited
    got = rows(
        wh, "audit_deleted_rows", "district_id, table_name, product, rows_deleted, run_status"
    )
    c, r = "completed", "restored"
    assert got == {
        (DONE, "students", None, 2, c),
        (DONE, "classrooms", IM, 1, c),
        (DONE, "classrooms", IMF, 1, c),
        (DONE, "classroom_enrollments", None, 2, c),
        (DONE, "assessments", IM, 2, c),
        (DONE, "assessments", IMF, 1, c),
        (DONE, "progress", IM, 2, c),
        (DONE, "pathways", IM, 1, c),
        (DONE, "usage_sessions", None, 2, c),  # no per-product split in the event
        # the restored district's event has table totals only
        (RESTORED, "students", None, 2, r),
        (RESTORED, "classrooms", None, 2, r),
        (RESTORED, "classroom_enrollments", None, 2, r),
        (RESTORED, "assessments", None, 3, r),
        (RESTORED, "progress", None, 2, r),
        (RESTORED, "pathways", None, 1, r),
        (RESTORED, "usage_sessions", None, 2, r),
    }


def test_overdue_districts(audited: tuple[Settings, Warehouse]) -> None:
    _, wh = audited
    got = rows(
        wh,
        "audit_overdue_districts",
        "district_id, reason, needs_csm, days_past_reset_date, run_error",
    )
    assert got == {
        (OVERDUE, "not_started", False, 4, None),
        (FAILED, "failed", False, 22, "snapshot of assessments did not verify"),
        (BLOCKED, "blocked", True, -15, None),
        (RESTORED, "restored", True, 4, None),
    }


def test_upcoming_resets(audited: tuple[Settings, Warehouse]) -> None:
    _, wh = audited
    got = rows(
        wh,
        "audit_upcoming_resets",
        "district_id, effective_reset_date, days_until_reset, syncs_to_pause",
    )
    assert got == {(UPCOMING, date(2023, 8, 10), 9, 2)}


def test_inactive_educators(audited: tuple[Settings, Warehouse]) -> None:
    _, wh = audited
    got = rows(wh, "audit_inactive_educators", "educator_id, district_id, reason, days_inactive")
    assert got == {
        (f"{DONE}-e2", DONE, "never_logged_in", None),
        (f"{DONE}-e3", DONE, "inactive", 573),
        ("e-overdue", OVERDUE, "never_logged_in", None),
    }


def test_no_retention_violation_after_a_clean_reset(
    audited: tuple[Settings, Warehouse],
) -> None:
    settings, wh = audited
    assert rows(wh, "audit_retention_violations", "*") == set()
    # every data test of the audit models, the singular ones included, passes
    run_dbt(settings, ["test", "--select", "path:models/marts/audit"], VARS)


def test_planted_student_row_fails_the_retention_test(
    audited: tuple[Settings, Warehouse],
) -> None:
    settings, wh = audited
    insert(
        wh, "students", [("planted", DONE, f"{DONE}-s", "u", "P", "Q", "5", datetime(2023, 3, 1))]
    )
    # the runner counted import_syncs whole (no district column declared): one row fewer in
    # the table is one row missing
    syncs = int(wh.scalar("select count(*) from app.import_syncs"))
    wh.execute("delete from app.import_syncs where district_id = %s", [DONE])
    try:
        got = rows(
            wh,
            "audit_retention_violations",
            "district_id, school_year, table_name, violation, expected_rows, actual_rows, "
            "rows_in_violation",
        )
        assert got == {
            (DONE, 2023, "students", "student_rows_present", 0, 1, 1),
            (
                DONE,
                2023,
                "import_syncs",
                "retained_rows_missing",
                syncs,
                syncs - 1,
                1,
            ),
        }
        with pytest.raises(DbtError, match="assert_audit_no_retention_violations"):
            run_dbt(settings, ["test", "--select", "assert_audit_no_retention_violations"], VARS)
    finally:
        wh.execute("delete from app.students where student_id = 'planted'")
        insert(
            wh,
            "import_syncs",
            [
                (
                    f"{DONE}-sync",
                    DONE,
                    "clever",
                    "active",
                    datetime(2023, 7, 28, 8),
                    RESUMED_AT,
                    RESUMED_AT,
                )
            ],
        )
    assert rows(wh, "audit_retention_violations", "*") == set()


def test_audit_models_are_views_without_student_data(
    audited: tuple[Settings, Warehouse],
) -> None:
    _, wh = audited
    kinds = dict(
        wh.query(
            "select table_name, table_type from information_schema.tables where table_schema = %s",
            [SCHEMA],
        )
    )
    assert {m: kinds.get(m) for m in AUDIT_MODELS} == dict.fromkeys(AUDIT_MODELS, "VIEW")
    student_values = {
        str(v)
        for row in wh.query("select student_id, username, first_name, last_name from app.students")
        for v in row
    }
    assert student_values, "the scenario keeps some student rows"
    for model in AUDIT_MODELS:
        cols = {
            r[0]
            for r in wh.query(
                "select column_name from information_schema.columns "
                "where table_schema = %s and table_name = %s",
                [SCHEMA, model],
            )
        }
        assert cols, model
        assert not {"student_id", "username", "first_name", "last_name", "email"} & cols
        for row in wh.query(f"select * from {SCHEMA}.{model}"):
            assert not student_values & {str(v) for v in row}, model


def test_docs_generate_and_analyses_answer(audited: tuple[Settings, Warehouse]) -> None:
    settings, wh = audited
    run_dbt(settings, ["docs", "generate"], VARS)  # compiles every node, analyses too
    target = dbt_work_dir(settings) / "target"
    catalog = json.loads((target / "catalog.json").read_text())
    assert {f"model.eoy_reset.{m}" for m in AUDIT_MODELS} <= set(catalog["nodes"])
    manifest = json.loads((target / "manifest.json").read_text())
    assert {"exposure.eoy_reset.eoy_reset_runner", "exposure.eoy_reset.compliance_report"} <= set(
        manifest["exposures"]
    )
    documented = manifest["nodes"]["model.eoy_reset.audit_reset_status"]["columns"]
    assert all(c["description"] for c in documented.values()) and len(documented) > 20
    compiled = target / "compiled" / "eoy_reset" / "analyses"

    def answer(name: str) -> list[dict[str, Any]]:
        return wh.query_dicts((compiled / f"{name}.sql").read_text().replace("%", "%%"))

    last_week = answer("resets_last_week")
    assert [(r["district_id"], r["rows_deleted"]) for r in last_week] == [(DONE, 14)]
    per_product = {
        (r["product"], r["table_name"]): r["rows_deleted"]
        for r in answer("rows_deleted_per_product")
    }
    assert per_product[(IM, "assessments")] == 2 and per_product[("(none)", "students")] == 2
    old = {
        (r["district_id"], r["table_name"]): r["old_rows"]
        for r in answer("districts_with_student_data_older_than_reset_date")
    }
    assert {d for d, _ in old} == {OVERDUE, FAILED, RESTORED}
    assert old[(OVERDUE, "students")] == 2 and old[(FAILED, "classroom_enrollments")] == 2
    resumed = {
        (r["district_id"], r["school_year"]): r["days_from_reset_date_to_resume"]
        for r in answer("time_from_reset_to_resumed_sync")
    }
    assert resumed == {(DONE, 2023): 3, (DONE, 2022): None}
