"""`eoy-reset approve` and the approval `run --plan` needs.

A plan file carries an unkeyed sha256 of itself: it proves the file was not damaged, not that
anyone reviewed it, since whoever edits the file can recompute the hash. The approval is
therefore kept where the plan is not: a row (plan_sha256, approved_by, approved_at) in the
ledger table eoy_runner.plan_approvals. `run --plan` runs a plan only when its hash has such
a row from the last APPROVAL_DAYS days, made on the same warehouse, and, with
EOY_REQUIRE_SECOND_PERSON=1, one by someone other than the person running it.

Under that two-person rule, who a person is comes from something they cannot type: on
PostgreSQL the database role they connect as (`session_user`), on DuckDB the OS account the
command runs under, in the web console the user who logged in. `--by` and EOY_OPERATOR,
which anyone can set to any name, then count for nothing, and a run needs an approved plan
(`--yes` and a typed confirmation would skip the second person).
"""

from __future__ import annotations

import getpass
import os
import pwd
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from jobs.config import (
    OPERATOR_ENV,
    SECOND_PERSON_ENV,
    Settings,
    operator_setting,
    second_person_setting,
)
from jobs.errors import EoyError
from jobs.plan.planner import HASH_KEY, PlanError, load_plan
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.ledger import utcnow

# an approval older than this does not let a plan run (the warehouse has moved on since)
APPROVAL_DAYS = 7
NAME_LIMIT = 200
_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")


class ApprovalError(EoyError):
    """A plan that may not run, or an approval that cannot be recorded; nothing was changed."""


def operator_name() -> str:
    """Who is at the keyboard: EOY_OPERATOR when set, else the OS user."""
    name = operator_setting()
    if name:
        return _checked_name(name, OPERATOR_ENV)
    try:
        return _checked_name(getpass.getuser(), "the OS user name")
    except (OSError, KeyError):
        raise ApprovalError(
            f"cannot tell who you are (no OS user name): set {OPERATOR_ENV} to your name"
        ) from None


def _checked_name(name: str, where: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_LIMIT or not name.isprintable():
        raise ApprovalError(
            f"{where} must be a person's name on one line (1 to {NAME_LIMIT} characters)"
        )
    return name


def second_person_required() -> bool:
    raw = second_person_setting()
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ApprovalError(
        f"{SECOND_PERSON_ENV}={raw!r} is neither on nor off: set it to 1 (two-person rule) or 0"
    )


def _same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


@dataclass(frozen=True)
class Person:
    """Who approves or runs a plan, and how the tool knows it."""

    name: str
    how: str  # "database role", "OS user", "console login", "--by", "EOY_OPERATOR"
    trusted: bool  # known from something the person cannot type


def proven_person(wh: Warehouse) -> Person:
    """Who the warehouse and the machine say is at work: the PostgreSQL role of the session
    (`session_user`, not changed by SET ROLE), or on DuckDB the OS account running the
    command (not $USER, which anyone can set)."""
    if wh.target == "postgres":
        return Person(str(wh.scalar("select session_user")), "database role", True)
    try:
        return Person(pwd.getpwuid(os.geteuid()).pw_name, "OS user", True)
    except KeyError:
        return Person(f"uid {os.geteuid()}", "OS user", True)


def approving_person(wh: Warehouse, by: str | None, login: str | None = None) -> Person:
    """Who an approval is recorded for: the console's logged-in user; under the two-person
    rule the proven person (a `--by` naming anyone else is refused); else `--by`, or
    EOY_OPERATOR, or the OS user."""
    if login is not None:
        return Person(_checked_name(login, "the console login"), "console login", True)
    if second_person_required():
        me = proven_person(wh)
        if by is not None and not _same_person(by, me.name):
            raise ApprovalError(
                f"--by {by.strip()[:60]!r} is not who you are ({me.how} {me.name!r}): with "
                f"{SECOND_PERSON_ENV}=1 an approval is recorded for the {me.how} that made "
                "it; approve as yourself, or ask the other person to"
            )
        return me
    if by is not None:
        return Person(_checked_name(by, "--by"), "--by", False)
    return Person(operator_name(), OPERATOR_ENV, False)


def running_person(wh: Warehouse) -> Person:
    """Who runs the plan: under the two-person rule the proven person, else the operator."""
    if second_person_required():
        return proven_person(wh)
    return Person(operator_name(), OPERATOR_ENV, False)


def same_warehouse(a: str | None, b: str) -> bool:
    """Whether two descriptions name the same warehouse (a DuckDB file by its full path)."""
    if a is None:
        return False
    if a.startswith("duckdb:") and b.startswith("duckdb:"):
        return Path(a[7:]).resolve() == Path(b[7:]).resolve()

    def where(text: str) -> set[str]:  # the server and database; who connects may differ
        return {p for p in text.split() if not p.startswith(("user=", "sslmode="))}

    return where(a) == where(b)


def _require_table(wh: Warehouse) -> None:
    if not wh.relation_exists("eoy_runner", "plan_approvals"):
        raise ApprovalError(
            "the ledger has no eoy_runner.plan_approvals (the warehouse was initialised before "
            "approvals existed): run `eoy-reset init` to add it"
        )


def approvers(wh: Warehouse, plan_sha256: str) -> list[dict[str, Any]]:
    """Who approved this plan hash and when, first approval first."""
    _require_table(wh)
    return wh.query_dicts(
        "select approved_by, approved_at from eoy_runner.plan_approvals "
        "where plan_sha256 = %s order by approved_at, approved_by",
        [plan_sha256],
    )


# ---------------------------------------------------------------------------------------
# approve
# ---------------------------------------------------------------------------------------
def _counts(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(n, int) and not isinstance(n, bool) and n >= 0
        for k, n in value.items()
    )


def check_plan_shape(plan: dict[str, Any], path: Path) -> list[dict[str, Any]]:
    """The due districts of a plan, or PlanError when the file is not a plan `plan --out` wrote.

    The hash only proves the body was not changed after the hash was computed; a body that
    was made up with its own hash is refused here before anyone approves it.
    """

    def bad(what: str) -> PlanError:
        return PlanError(
            f"plan file {path} is not a reset plan ({what}): "
            "write one with `eoy-reset plan --out` and approve that"
        )

    year = plan.get("school_year")
    if not isinstance(year, int) or isinstance(year, bool):
        raise bad("no school_year")
    if not isinstance(plan.get("as_of"), str):
        raise bad("no as_of date")
    due = plan.get("due")
    if not isinstance(due, list):
        raise bad("due is not a list of districts")
    seen: set[str] = set()
    for i, entry in enumerate(due):
        where = f"due entry {i + 1}"
        if not isinstance(entry, dict):
            raise bad(f"{where} is not a district")
        district = entry.get("district_id")
        if not isinstance(district, str) or not district:
            raise bad(f"{where} has no district_id")
        if district in seen:
            raise bad(f"{where} repeats a district")
        seen.add(district)
        if not _counts(entry.get("rows", {})):
            raise bad(f"{where} has rows that are not counts per table")
        total = entry.get("rows_total", 0)
        if not isinstance(total, int) or isinstance(total, bool) or total < 0:
            raise bad(f"{where} has a rows_total that is not a count")
    return due


def _row_total(entry: dict[str, Any]) -> int:
    rows = entry.get("rows") or {}
    return int(entry.get("rows_total", sum(rows.values())))


def approve_plan(
    settings: Settings, plan_path: Path, by: str | None = None, login: str | None = None
) -> dict[str, Any]:
    """Check the plan file and record its approval by the approving person (`login`: the
    web console's logged-in user; else see `approving_person`)."""
    plan = load_plan(plan_path)
    due = check_plan_shape(plan, plan_path)
    sha = str(plan[HASH_KEY])
    with connect(settings) as wh:
        _check_warehouse(plan, plan_path, settings)
        person = approving_person(wh, by, login)
        name = person.name
        recorded = name not in {r["approved_by"] for r in approvers(wh, sha)}
        wh.execute(
            "insert into eoy_runner.plan_approvals (plan_sha256, approved_by, approved_at) "
            "values (%s, %s, %s) on conflict (plan_sha256, approved_by) do nothing",
            [sha, name, utcnow()],
        )
        rows = approvers(wh, sha)
    mine = next(r for r in rows if r["approved_by"] == name)
    return {
        "plan": str(plan_path),
        "plan_sha256": sha,
        "approved_by": name,
        "approved_as": person.how,
        "approved_at": mine["approved_at"].isoformat(sep=" ", timespec="seconds"),
        "recorded": recorded,
        "approvers": [r["approved_by"] for r in rows],
        "as_of": plan["as_of"],
        "school_year": plan["school_year"],
        "warehouse": plan.get("warehouse"),
        "districts": [{"district_id": d["district_id"], "rows_total": _row_total(d)} for d in due],
        "rows_total": sum(_row_total(d) for d in due),
    }


def _check_warehouse(plan: dict[str, Any], plan_path: Path, settings: Settings) -> None:
    """A plan counts the rows of one warehouse: it is approved and run on that one only."""
    here = settings.describe()
    if not same_warehouse(plan.get("warehouse"), here):
        raise ApprovalError(
            f"the plan {plan_path} was made on {plan.get('warehouse') or 'an unknown warehouse'}"
            f", not on {here}: make and approve a plan on this warehouse"
        )


def render_approval(console: Console, doc: dict[str, Any]) -> None:
    """What was approved: the plan, its districts and rows, who and when."""
    grid = Table(
        title=f"Approved plan {doc['plan']}: reset as of {doc['as_of']}, "
        f"school year {doc['school_year']}",
        title_justify="left",
    )
    grid.add_column("district")
    grid.add_column("rows to delete", justify="right")
    for d in doc["districts"]:
        grid.add_row(d["district_id"], f"{d['rows_total']:,}")
    grid.add_row("total", f"{doc['rows_total']:,}")
    console.print(grid)
    already = "" if doc["recorded"] else " (already recorded)"
    console.print(
        f"Approved by {doc['approved_by']} at {doc['approved_at']} UTC{already}; "
        f"plan sha256 {doc['plan_sha256']}. Approvers: {', '.join(doc['approvers'])}.",
        highlight=False,
    )


# ---------------------------------------------------------------------------------------
# run --plan
# ---------------------------------------------------------------------------------------
def require_approval(
    wh: Warehouse, plan_path: Path, plan: dict[str, Any], settings: Settings
) -> dict[str, str]:
    """The approval a run of this (loaded, hash-checked) plan uses: hash and approver.

    Refuses, changing nothing, a plan made on another warehouse, one nobody approved in the
    last APPROVAL_DAYS days, and under the two-person rule one approved only by the person
    running it.
    """
    _check_warehouse(plan, plan_path, settings)
    sha = str(plan[HASH_KEY])
    rows = approvers(wh, sha)
    if not rows:
        raise ApprovalError(
            f"plan {plan_path} is not approved: run `eoy-reset approve {plan_path}` "
            "(a reviewer, after reading it)"
        )
    since = utcnow() - timedelta(days=APPROVAL_DAYS)
    fresh = [r for r in rows if r["approved_at"] >= since]
    if not fresh:
        last = max(r["approved_at"] for r in rows)
        raise ApprovalError(
            f"plan {plan_path} was last approved on {last:%Y-%m-%d}, more than "
            f"{APPROVAL_DAYS} days ago: approvals expire; make a new plan and approve it"
        )
    chosen = fresh[0]
    if second_person_required():
        runner = running_person(wh)
        others = [r for r in fresh if not _same_person(str(r["approved_by"]), runner.name)]
        if not others:
            raise ApprovalError(
                f"plan {plan_path} is approved only by {runner.name} ({runner.how}), who is "
                f"running it: {SECOND_PERSON_ENV}=1 needs another person to approve it"
            )
        chosen = others[0]
    return {"plan_sha256": sha, "approved_by": str(chosen["approved_by"])}


def load_approved_plan(
    settings: Settings, plan_path: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """The plan file, hash-checked, and the approval that lets it run."""
    plan = load_plan(plan_path)
    with connect(settings) as wh:
        return plan, require_approval(wh, plan_path, plan, settings)


def approval_detail(candidate: dict[str, Any]) -> dict[str, Any]:
    """For a district's ledger event: the approval its run used (hash and approver only)."""
    approval = candidate.get("approval")
    if not approval:
        return {}
    return {"approval": {k: approval[k] for k in ("plan_sha256", "approved_by")}}
