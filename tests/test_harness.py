"""The test harness itself: a template's copies are the template's data and each test's own,
and xdist keeps the tests of a module-scoped warehouse together wherever the module sits."""

from __future__ import annotations

import pytest

from jobs.config import Settings
from jobs.warehouse.connection import connect
from tests.conftest import make_settings, template_of, work_unit
from tests.support.built import initialised


def one_district(settings: Settings) -> None:
    initialised(settings)
    with connect(settings) as wh, wh.transaction():
        wh.execute("insert into app.districts (district_id, name) values ('t1', 'Template')")


def districts(settings: Settings) -> list[str]:
    with connect(settings) as wh:
        return sorted(str(r[0]) for r in wh.query("select district_id from app.districts"))


def test_copies_of_a_template_hold_its_data_and_keep_their_own(
    target: str, tmp_path, request: pytest.FixtureRequest
) -> None:
    template = template_of(request, "harness_one_district", target, one_district)
    first = make_settings(target, tmp_path / "a", request, own_place=True, template=template)
    second = make_settings(target, tmp_path / "b", request, own_place=True, template=template)
    a, b = next(first), next(second)
    try:
        assert districts(a) == districts(b) == ["t1"]
        with connect(a) as wh, wh.transaction():
            wh.execute("insert into app.districts (district_id, name) values ('t2', 'Copy')")
        assert districts(a) == ["t1", "t2"]
        assert districts(b) == ["t1"]
        assert districts(template.settings()) == ["t1"]
    finally:
        first.close()
        second.close()


def test_the_wh_fixture_is_initialised_and_empty(wh) -> None:
    wh.require_initialised()
    assert wh.scalar("select count(*) from app.districts") == 0


def test_a_module_warehouse_is_one_work_unit_in_any_folder() -> None:
    for module in ("tests/plan/test_plan.py", "tests/plan/test_plan.py"):
        assert work_unit(f"{module}::test_a[duckdb]") == f"{module}::duckdb"
        assert work_unit(f"{module}::test_b[postgres-x]") == f"{module}::postgres"
    assert work_unit("tests/reset/test_runner.py::test_a[duckdb]") == (
        "tests/reset/test_runner.py::test_a[duckdb]"
    )


def test_the_cases_of_a_shared_case_test_are_one_work_unit_per_target() -> None:
    module = "tests/scope/test_vendor_scope.py"
    test = "test_each_refusal_is_one_line_and_changes_nothing"
    assert work_unit(f"{module}::{test}[a-case-postgres]") == f"{module}::{test}::postgres"
    assert work_unit(f"{module}::{test}[another-case-postgres]") == f"{module}::{test}::postgres"
    assert work_unit(f"{module}::{test}[a-case-duckdb]") == f"{module}::{test}::duckdb"
    other = f"{module}::test_plan_run_some_then_the_rest_and_restore[duckdb]"
    assert work_unit(other) == other


def test_every_test_named_for_a_shared_unit_exists() -> None:
    """A test renamed or gone leaves no stale name behind in SHARED_CASES or SHARED_SCENARIOS
    (its cases would silently go back to any worker, each making the scenario again)."""
    import ast
    from pathlib import Path

    from tests.conftest import SHARED_CASES, SHARED_SCENARIOS

    here = Path(__file__).parent
    for file, names in [*SHARED_CASES.items(), *SHARED_SCENARIOS.items()]:
        (path,) = here.rglob(file)
        defined = {
            node.name
            for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
        }
        assert set(names) <= defined, f"{file}: {sorted(set(names) - defined)}"
