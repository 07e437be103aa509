"""An approved plan runs only on the day and school year it was made for, and a district
named with --district that cannot run makes the run fail (issue #16, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.config import Settings
from jobs.plan.planner import make_plan, write_plan
from jobs.plan.preflight import PreflightError
from jobs.reset.runner import run_reset
from jobs.warehouse.connection import connect
from tests.support import operator_data as od
from tests.support.crash_helpers import run_cli
from tests.support.runner_helpers import dump_app, dump_ledger, student_rows


def due_now(settings: Settings) -> list[tuple[object, ...]]:
    with connect(settings) as wh:
        return wh.query("select * from eoy.due_districts order by district_id")


def state(settings: Settings) -> tuple[object, ...]:
    with connect(settings) as wh:
        return dump_app(wh), dump_ledger(wh)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("eoy-reset: ") and "Traceback" not in stderr
    return lines[0]


def test_a_plan_of_another_day_is_refused_before_anything_is_built(
    settings: Settings, tmp_path: Path
) -> None:
    od.fresh(settings)
    path = tmp_path / "p.json"
    write_plan(make_plan(settings, od.DAY_BEFORE, None), path)
    built, before = due_now(settings), state(settings)
    assert [r[0] for r in built] == ["early"]  # as of the 27th: the default day is tomorrow

    with pytest.raises(PreflightError, match="made for 2023-07-27, not for --as-of 2023-07-28"):
        run_reset(settings, od.AS_OF, plan_path=path, show_progress=False)
    # dbt did not build the models for the 28th: they still say who was due on the 27th
    assert due_now(settings) == built
    assert state(settings) == before

    proc = run_cli(settings, ["run", "--as-of", "2023-07-28", "--plan", str(path)])
    line = one_line(proc.stderr)
    assert proc.returncode != 0
    assert "2023-07-27" in line and "2023-07-28" in line and "eoy-reset plan" in line
    assert state(settings) == before


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_plan_of_another_school_year_is_refused(settings: Settings, tmp_path: Path) -> None:
    od.fresh(settings)
    path = tmp_path / "p.json"
    write_plan(make_plan(settings, od.AS_OF, None), path)
    before = state(settings)
    with pytest.raises(PreflightError, match="for school year 2023, not 2024"):
        run_reset(settings, od.AS_OF, school_year=2024, plan_path=path, show_progress=False)
    assert state(settings) == before


def test_the_plan_of_the_day_runs(settings: Settings, tmp_path: Path) -> None:
    od.fresh(settings)
    path = tmp_path / "p.json"
    made = run_cli(settings, ["plan", "--as-of", "2023-07-28", "--out", str(path)])
    assert made.returncode == 0, made.stderr
    approved = run_cli(settings, ["approve", str(path), "--by", "reviewer"])
    assert approved.returncode == 0, approved.stderr
    proc = run_cli(settings, ["run", "--as-of", "2023-07-28", "--plan", str(path), "--json"])
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    assert sorted(d["district_id"] for d in doc["districts"]) == ["default", "early"]


@pytest.mark.parametrize(
    ("district", "reason"),
    [("blocked", "blocked"), ("later", "not due until 2023-08-15")],
)
def test_a_named_district_that_cannot_run_fails_the_run(
    settings: Settings, district: str, reason: str
) -> None:
    od.fresh(settings)
    before = state(settings)
    proc = run_cli(settings, ["run", "--as-of", "2023-07-28", "--district", district, "--yes"])
    assert proc.returncode == 1, proc.stdout
    line = one_line(proc.stderr)
    assert district in line and reason in line
    assert state(settings)[0] == before[0]


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_a_named_district_already_reset_is_not_a_failure(settings: Settings) -> None:
    od.fresh(settings)
    args = ["run", "--as-of", "2023-07-28", "--district", "early", "--yes"]
    first = run_cli(settings, args)
    assert first.returncode == 0, first.stderr
    with connect(settings) as wh:
        assert student_rows(wh, "early") == 0
    again = run_cli(settings, [*args, "--json"])
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["ok"] is True
