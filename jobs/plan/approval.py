"""`eoy-reset approve` and the approval `run --plan` needs (SPEC §6, §8).

A plan file carries an unkeyed sha256 of itself: it proves the file was not damaged, not that
anyone reviewed it, since whoever edits the file can recompute the hash. The approval is
therefore kept where the plan is not: a row (plan_sha256, approved_by, approved_at) in the
ledger table eoy_runner.plan_approvals. `run --plan` runs a plan only when its hash has such
a row and, with EOY_REQUIRE_SECOND_PERSON=1, one by someone other than the person running it.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.plan.planner import HASH_KEY, PlanError, load_plan
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.ledger import utcnow

SECOND_PERSON_ENV = "EOY_REQUIRE_SECOND_PERSON"
OPERATOR_ENV = "EOY_OPERATOR"
NAME_LIMIT = 200
_ON = ("1", "true", "yes", "on")
_OFF = ("", "0", "false", "no", "off")


class ApprovalError(EoyError):
    """A plan that may not run, or an approval that cannot be recorded; nothing was changed."""


def operator_name() -> str:
    """Who is at the keyboard: EOY_OPERATOR when set, else the OS user."""
    name = os.environ.get(OPERATOR_ENV, "").strip()
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
    raw = os.environ.get(SECOND_PERSON_ENV, "").strip().lower()
    if raw in _ON:
        return True
    if raw in _OFF:
        return False
    raise ApprovalError(
        f"{SECOND_PERSON_ENV}={raw!r} is neither on nor off: set it to 1 (two-person rule) or 0"
    )


def _same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


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


def approve_plan(settings: Settings, plan_path: Path, by: str | None = None) -> dict[str, Any]:
    """Check the plan file and record its approval by `by` (default: operator_name())."""
    plan = load_plan(plan_path)
    due = check_plan_shape(plan, plan_path)
    name = _checked_name(by, "--by") if by is not None else operator_name()
    sha = str(plan[HASH_KEY])
    with connect(settings) as wh:
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
        "approved_at": mine["approved_at"].isoformat(sep=" ", timespec="seconds"),
        "recorded": recorded,
        "approvers": [r["approved_by"] for r in rows],
        "as_of": plan["as_of"],
        "school_year": plan["school_year"],
        "warehouse": plan.get("warehouse"),
        "districts": [{"district_id": d["district_id"], "rows_total": _row_total(d)} for d in due],
        "rows_total": sum(_row_total(d) for d in due),
    }


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
def require_approval(wh: Warehouse, plan_path: Path, plan: dict[str, Any]) -> dict[str, str]:
    """The approval a run of this (loaded, hash-checked) plan uses: hash and approver.

    Refuses, changing nothing, a plan nobody approved, and under the two-person rule one
    approved only by the person running it.
    """
    sha = str(plan[HASH_KEY])
    rows = approvers(wh, sha)
    if not rows:
        raise ApprovalError(
            f"plan {plan_path} is not approved: run `eoy-reset approve {plan_path}` "
            "(a reviewer, after reading it)"
        )
    chosen = rows[0]
    if second_person_required():
        runner = operator_name()
        others = [r for r in rows if not _same_person(str(r["approved_by"]), runner)]
        if not others:
            raise ApprovalError(
                f"plan {plan_path} is approved only by {runner}, who is running it: "
                f"{SECOND_PERSON_ENV}=1 needs another person to run "
                f"`eoy-reset approve {plan_path}`"
            )
        chosen = others[0]
    return {"plan_sha256": sha, "approved_by": str(chosen["approved_by"])}


def load_approved_plan(
    settings: Settings, plan_path: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """The plan file, hash-checked, and the approval that lets it run."""
    plan = load_plan(plan_path)
    with connect(settings) as wh:
        return plan, require_approval(wh, plan_path, plan)


def approval_detail(candidate: dict[str, Any]) -> dict[str, Any]:
    """For a district's ledger event: the approval its run used (hash and approver only)."""
    approval = candidate.get("approval")
    if not approval:
        return {}
    return {"approval": {k: approval[k] for k in ("plan_sha256", "approved_by")}}
