"""A process parses the dbt project once while nothing a parse reads changes, and keeps the
parse for the next process: the reset's parameters (the day, the school year, the named
districts) reach the models when dbt executes, so a plan of another day runs on the same
parse; new vars, another warehouse (another profile) or a variable a project file reads
parse again, and every build reads the parameters it was given."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import jobs.plan.dbt as dbt
from jobs.config import Settings
from jobs.plan.flags import name_flag_sources_from_frames
from jobs.warehouse.connection import connect
from tests.support import operator_data as od
from tests.support.in_process import counted_parses


@pytest.fixture
def parses(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The parses this process makes from here on (one kept manifest each), none kept by an
    earlier test at this warehouse's place."""
    for kept in (Path(settings.duckdb_path).parent / "dbt").glob("*/manifests"):
        shutil.rmtree(kept)
    return counted_parses(monkeypatch)


def as_of_in_due_districts(settings: Settings, day: str) -> str:
    """Build the run's models as of day; the as-of date due_districts was built for."""
    parameters = {"EOY_AS_OF_DATE": day, "EOY_SCHOOL_YEAR": "2023"}
    dbt.build_models(settings, ["reset_policy", "+due_districts"], parameters=parameters)
    with connect(settings) as wh:
        return str(wh.scalar("select max(as_of_date) from eoy.due_districts"))


@pytest.mark.parametrize("target", ["duckdb"])
def test_a_plan_of_another_day_runs_on_the_same_parse(
    settings: Settings, parses: list[str], tmp_path: Path
) -> None:
    od.fresh(settings)
    assert as_of_in_due_districts(settings, "2023-07-28") == "2023-07-28"
    assert as_of_in_due_districts(settings, "2023-08-16") == "2023-08-16"
    assert len(parses) == 1, parses
    # vars are read while dbt parses (a model's config may use one): a new parse
    dbt.build_models(settings, ["reset_policy"], vars={"upcoming_days": 7})
    assert len(parses) == 2, parses
    # another warehouse is another profile: a new parse
    other = replace(settings, duckdb_path=tmp_path / "other" / "warehouse.duckdb")
    od.fresh(other)
    assert as_of_in_due_districts(other, "2023-07-31") == "2023-07-31"
    assert len(parses) == 3, parses


@pytest.mark.parametrize("target", ["duckdb"])
def test_a_new_process_runs_on_the_parse_an_earlier_one_kept(
    settings: Settings, parses: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    od.fresh(settings)
    assert as_of_in_due_districts(settings, "2023-07-28") == "2023-07-28"
    assert len(parses) == 1, parses
    monkeypatch.setattr(dbt, "_MANIFESTS", type(dbt._MANIFESTS)())  # as a new process has it
    assert as_of_in_due_districts(settings, "2023-08-16") == "2023-08-16"
    assert len(parses) == 1, "a new process parsed again"
    # a variable a project file reads by name (the profile's sslmode) is part of the parse
    monkeypatch.setattr(dbt, "_MANIFESTS", type(dbt._MANIFESTS)())
    monkeypatch.setenv("EOY_PG_SSLMODE", "require")
    assert as_of_in_due_districts(settings, "2023-08-17") == "2023-08-17"
    assert len(parses) == 2, parses
    # a kept parse others may read or write is not unpickled: parsed again
    for kept in (Path(settings.duckdb_path).parent / "dbt").glob("*/manifests/*.pickle"):
        kept.chmod(0o664)
    monkeypatch.setattr(dbt, "_MANIFESTS", type(dbt._MANIFESTS)())
    assert as_of_in_due_districts(settings, "2023-08-18") == "2023-08-18"
    assert len(parses) == 3, parses


def test_a_behaviour_flag_is_made_without_reading_the_stacks_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each dbt invocation makes its adapter's behaviour flags; each flag that does not name
    its module looked it up with `inspect.stack()` (the source lines of every frame). Once
    the process settled for dbt, a flag gets the same name from the frames alone."""
    import inspect

    from dbt_common.behavior_flags import BehaviorFlagRendered

    flag = {"name": "a_flag", "default": True, "description": "a flag"}
    before = BehaviorFlagRendered(flag, {})  # type: ignore[arg-type]
    name_flag_sources_from_frames()

    def no_stack(context: int = 1) -> list[inspect.FrameInfo]:
        raise AssertionError("inspect.stack() called")

    monkeypatch.setattr(inspect, "stack", no_stack)
    after = BehaviorFlagRendered(flag, {})  # type: ignore[arg-type]
    assert after._behavior_change_event.flag_source == __name__
    assert after._behavior_change_event.flag_source == before._behavior_change_event.flag_source
