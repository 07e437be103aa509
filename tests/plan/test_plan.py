"""`eoy-reset plan`: the plan document, the approved plan file, and the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from jobs.cli.app import app
from jobs.config import Settings
from jobs.errors import EoyError
from jobs.plan.planner import PlanError, load_plan, make_plan, plan_hash, write_plan
from jobs.plan.view import render_plan
from jobs.warehouse.connection import WarehouseError, connect
from jobs.warehouse.contract import DELETED_TABLES
from jobs.warehouse.schema import init_warehouse
from tests.conftest import TARGETS, make_settings
from tests.support import reset_data


@pytest.fixture(scope="module", params=TARGETS)
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings of a warehouse holding the hand-made districts (models not built yet)."""
    gen = make_settings(str(request.param), tmp_path_factory.mktemp("plan"), request)
    settings = next(gen)
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        reset_data.load_all(wh)
    yield settings
    gen.close()


@pytest.fixture(scope="module")
def plan(loaded: Settings) -> dict[str, Any]:
    return make_plan(loaded, reset_data.AS_OF, None)


def test_plan_lists_due_districts_with_rows_per_table(plan: dict[str, Any]) -> None:
    assert plan["as_of"] == "2023-07-28"
    assert plan["school_year"] == 2023
    assert plan["warehouse"].split(":")[0] in ("duckdb", "postgres")
    ids = [d["district_id"] for d in plan["due"]]
    assert ids == sorted(reset_data.EXPECTED_DUE)
    for d in plan["due"]:
        effective, source = reset_data.EXPECTED_DUE[d["district_id"]]
        assert (d["effective_reset_date"], d["date_source"]) == (effective.isoformat(), source)
        assert list(d["rows"]) == list(DELETED_TABLES)
        assert d["rows_total"] == sum(d["rows"].values())
    ex1 = next(d for d in plan["due"] if d["district_id"] == "ex1")
    assert ex1["rows"] == {t: reset_data.EX1_ROWS[t] for t in DELETED_TABLES}
    assert ex1["issues"] == []
    ex3 = next(d for d in plan["due"] if d["district_id"] == "ex3")
    assert ex3["issues"] == ["request_too_early"]
    assert plan["inactive_educators"] == {"ex1": 2}
    json.dumps(plan)  # JSON-able as it is


def test_plan_lists_blocked_districts_and_request_issues(plan: dict[str, Any]) -> None:
    assert {b["district_id"]: b["issues"] for b in plan["blocked"]} == {
        "ex6": ["conflicts_with_rostering"],
        "ex8": ["conflicts_with_rostering"],
    }
    assert {r["district_id"]: r["issues"] for r in plan["request_issues"]} == {
        "ex3": ["request_too_early"],
        "ex5": ["request_during_session"],
        "ex7": ["request_not_before_rostering"],
    }
    totals = plan["totals"]
    assert totals["districts"] == len(reset_data.EXPECTED_DUE)
    assert totals["blocked"] == 2
    assert totals["rows_by_table"] == {t: reset_data.EX1_ROWS[t] for t in DELETED_TABLES}
    assert totals["rows"] == sum(totals["rows_by_table"].values())


def test_render_plan_shows_every_section(plan: dict[str, Any]) -> None:
    console = Console(record=True, width=200)
    render_plan(console, plan)
    text = console.export_text()
    for expected in (
        "Due districts (8)",
        "ex1",
        "Blocked",
        "ex6",
        "Request issues",
        "request_too_early",
        "Totals",
        "usage_sessions rows to delete",
    ):
        assert expected in text


# ---------------------------------------------------------------------------------------
# the approved plan file (no warehouse needed)
# ---------------------------------------------------------------------------------------
SMALL_PLAN: dict[str, Any] = {
    "as_of": "2023-07-28",
    "school_year": 2023,
    "warehouse": "duckdb:w.duckdb",
    "due": [
        {
            "district_id": "d1",
            "effective_reset_date": "2023-07-28",
            "date_source": "default",
            "issues": [],
            "rows": {"students": 3},
            "rows_total": 3,
        }
    ],
    "blocked": [],
    "request_issues": [],
    "inactive_educators": {},
    "not_due": [],
    "totals": {"districts": 1, "rows": 3, "rows_by_table": {"students": 3}, "blocked": 0},
}


def test_write_and_load_plan_round_trip(tmp_path: Path) -> None:
    path = write_plan(SMALL_PLAN, tmp_path / "plan.json")
    doc = json.loads(path.read_text())
    assert doc["plan_sha256"] == plan_hash(SMALL_PLAN)
    assert len(doc["plan_sha256"]) == 64
    loaded = load_plan(path)
    assert {k: v for k, v in loaded.items() if k != "plan_sha256"} == SMALL_PLAN


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["due"][0]["rows"].update(students=1),
        lambda d: d["due"].append({"district_id": "d2"}),
        lambda d: d.update(as_of="2023-07-29"),
        lambda d: d.pop("plan_sha256"),
    ],
    ids=["rows", "extra_district", "as_of", "no_hash"],
)
def test_edited_plan_is_refused(tmp_path: Path, tamper: Any) -> None:
    path = write_plan(SMALL_PLAN, tmp_path / "plan.json")
    doc = json.loads(path.read_text())
    tamper(doc)
    path.write_text(json.dumps(doc, indent=2))
    with pytest.raises(PlanError) as err:
        load_plan(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_or_broken_plan_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="does not exist"):
        load_plan(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(PlanError, match="not valid JSON"):
        load_plan(broken)


def test_reformatting_a_plan_keeps_it_valid(tmp_path: Path) -> None:
    """The hash covers content, not layout: re-indenting the file is not an edit."""
    path = write_plan(SMALL_PLAN, tmp_path / "plan.json")
    path.write_text(json.dumps(json.loads(path.read_text()), indent=None))
    assert load_plan(path)["school_year"] == 2023


# ---------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------
def cli_options(settings: Settings) -> list[str]:
    if settings.target == "duckdb":
        return ["--target", "duckdb", "--duckdb-path", str(settings.duckdb_path)]
    return ["--target", "postgres", "--pg-dsn", settings.pg_dsn or ""]


def test_cli_plan_json_and_out(loaded: Settings, tmp_path: Path) -> None:
    out = tmp_path / "approved" / "plan.json"
    result = CliRunner().invoke(
        app, [*cli_options(loaded), "plan", "--as-of", "2023-07-28", "--json", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [d["district_id"] for d in doc["due"]] == sorted(reset_data.EXPECTED_DUE)
    approved = load_plan(out)
    assert approved["totals"] == doc["totals"]
    assert approved["due"] == doc["due"]


def test_plan_on_a_warehouse_never_initialised(tmp_path: Path) -> None:
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "none.duckdb")
    with pytest.raises(WarehouseError, match="eoy-reset init"):
        make_plan(settings, reset_data.AS_OF, None)
    assert not settings.duckdb_path.exists()


def test_cli_plan_year_without_policy_fails_in_one_line(tmp_path: Path) -> None:
    settings = Settings(target="duckdb", duckdb_path=tmp_path / "w.duckdb")
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
    result = CliRunner().invoke(app, [*cli_options(settings), "plan", "--as-of", "2031-07-01"])
    assert result.exit_code != 0
    assert isinstance(result.exception, EoyError)
    assert "no reset policy for school year 2031" in str(result.exception)


# Last: other vars than the tests above, so dbt re-parses once, not twice.
def test_plan_for_named_districts(loaded: Settings) -> None:
    named = ["restored_same", "ex6", "later", "done", "ex1", "nowhere"]
    plan = make_plan(loaded, reset_data.AS_OF, 2023, districts=named)
    # a restored district is held until its date changes, unless the operator names it
    assert [d["district_id"] for d in plan["due"]] == ["ex1", "restored_same"]
    assert [b["district_id"] for b in plan["blocked"]] == ["ex6"]
    reasons = {n["district_id"]: n["reason"] for n in plan["not_due"]}
    assert reasons == {
        "done": "already reset for school year 2023",
        "ex6": "blocked: conflicts_with_rostering",
        "later": "not due until 2023-07-29",
        "nowhere": "no such district",
    }
