"""The plans `plan --out` wrote, kept in the ledger (eoy_runner.plans) as well as in their file,
so a reviewer can read and approve one in the web console without the file.

A stored plan is the file's document, its hash included, byte for byte as JSON: the console
checks the hash again before anyone approves it, exactly as `approve` checks the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.plan.planner import HASH_KEY, PlanError, load_plan, plan_hash
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.ledger import utcnow

COLUMNS = "plan_sha256, made_at, made_by, school_year, as_of, document"


@dataclass(frozen=True)
class StoredPlan:
    plan_sha256: str
    made_at: datetime
    made_by: str
    school_year: int
    as_of: date
    document: dict[str, Any]


def _require_table(wh: Warehouse) -> None:
    if not wh.relation_exists("eoy_runner", "plans"):
        raise PlanError(
            "the ledger has no eoy_runner.plans (the warehouse was initialised before plans "
            "were kept): run `eoy-reset init` to add it"
        )


def record_plan(wh: Warehouse, plan: dict[str, Any], made_by: str) -> bool:
    """Keep a plan document (with its hash, as written) in the ledger; False when the same
    plan was kept already (the first writer and time stay)."""
    _require_table(wh)
    sha = str(plan[HASH_KEY])
    if sha != plan_hash(plan):
        raise PlanError("the plan was changed after its hash was computed: make it again")
    return bool(
        wh.execute(
            f"insert into eoy_runner.plans ({COLUMNS}) values (%s, %s, %s, %s, %s, %s) "
            "on conflict (plan_sha256) do nothing",
            [
                sha,
                utcnow(),
                made_by,
                int(plan["school_year"]),
                date.fromisoformat(str(plan["as_of"])),
                json.dumps(plan, sort_keys=True, default=str),
            ],
        )
        != 0
    )


def keep_plan_file(settings: Settings, path: Path, made_by: str) -> bool:
    """Keep the plan file `plan --out` just wrote (hash-checked) in the ledger."""
    plan = load_plan(path)
    with connect(settings) as wh:
        return record_plan(wh, plan, made_by)


def _stored(row: tuple[Any, ...]) -> StoredPlan:
    sha, made_at, made_by, year, as_of, document = row
    return StoredPlan(str(sha), made_at, str(made_by), int(year), as_of, json.loads(document))


def stored_plans(wh: Warehouse, limit: int = 50) -> list[StoredPlan]:
    """The plans kept, newest first."""
    _require_table(wh)
    rows = wh.query(
        f"select {COLUMNS} from eoy_runner.plans order by made_at desc, plan_sha256 limit %s",
        [limit],
    )
    return [_stored(row) for row in rows]


def stored_plan(wh: Warehouse, plan_sha256: str) -> StoredPlan | None:
    """One kept plan by its hash; None when there is none."""
    _require_table(wh)
    rows = wh.query(f"select {COLUMNS} from eoy_runner.plans where plan_sha256 = %s", [plan_sha256])
    return _stored(rows[0]) if rows else None
