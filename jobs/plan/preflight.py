"""Checks of a command's school year, file arguments and approved plan, made before anything
is built.

dbt takes seconds to build the models: a plan made for another day, an unreadable plan file
or a folder that cannot be written is said at once, with nothing built and nothing changed.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

from jobs.config import ConfigError, Settings
from jobs.errors import EoyError


class PreflightError(EoyError):
    """A file argument or plan that cannot be used; nothing was built or changed."""


def known_school_year(settings: Settings, year: int | None) -> None:
    """Refuse a school year with no reset policy and no run in the ledger (like `plan`)."""
    from jobs.plan.dbt import policy_years
    from jobs.warehouse.connection import connect

    if year is None or year in policy_years():
        return
    with connect(settings) as wh:
        if wh.scalar("select count(*) from eoy_runner.reset_runs where school_year = %s", [year]):
            return
    hint = " (2022-23 is 2023)" if year < 1000 else ""
    raise ConfigError(
        f"no reset policy for school year {year} and no reset of it in the ledger: give the "
        f"calendar year the school year ends in{hint}, or add a row to seeds/reset_policy.csv"
    )


def plan_for_the_day(plan_path: Path, as_of: date, school_year: int | None) -> dict[str, Any]:
    """The approved plan, read and checked to be made for exactly this day and school year."""
    from jobs.plan.planner import load_plan

    plan = load_plan(plan_path)
    year = school_year if school_year is not None else as_of.year
    made_for = str(plan.get("as_of") or "")
    plan_year = plan.get("school_year")
    if made_for != as_of.isoformat():
        raise PreflightError(
            f"the plan {plan_path} was made for {made_for or 'an unknown day'}, not for "
            f"--as-of {as_of.isoformat()}: run it with --as-of {made_for}, or make and approve "
            f"a plan for {as_of.isoformat()} with `eoy-reset plan --as-of {as_of.isoformat()} "
            "--out FILE`"
        )
    if plan_year is None or int(plan_year) != year:
        raise PreflightError(
            f"the plan {plan_path} is for school year {plan_year}, not {year}: run it with "
            f"--school-year {plan_year}, or make and approve a plan for {year} with "
            f"`eoy-reset plan --as-of {as_of.isoformat()} --school-year {year} --out FILE`"
        )
    return plan


def nearest_existing(path: Path) -> Path:
    """The path itself or its closest ancestor that exists."""
    probe = path.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def writable_file(path: Path, option: str) -> None:
    """A file the command will write: not a folder, and its folder exists (or can be made)
    and is writable."""
    path = Path(path)
    if path.is_dir():
        raise PreflightError(f"{option} {path} is a folder: give the path of the file to write")
    folder = nearest_existing(path.parent)
    if not folder.is_dir():
        raise PreflightError(
            f"{option} {path}: {folder} is a file, not a folder: choose another {option}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PreflightError(
            f"{option} {path}: folder {folder} is not writable: choose another {option}"
        )


def writable_folder(path: Path, option: str) -> None:
    """A folder the command writes into: a folder (or creatable), and writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PreflightError(f"{option} {path} is a file: give a folder to write into")
    folder = nearest_existing(path)
    if not folder.is_dir():
        raise PreflightError(
            f"{option} {path}: {folder} is a file, not a folder: choose another {option}"
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PreflightError(f"{option} {path}: {folder} is not writable: choose another {option}")
