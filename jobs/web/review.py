"""A reviewer's approval in the console: the same approval `eoy-reset approve` records
(eoy_runner.plan_approvals), of a plan kept by `plan --out`, by the signed-in reviewer."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from jobs.config import Settings
from jobs.plan.approval import approve_plan
from jobs.plan.stored import stored_plan
from jobs.warehouse.connection import connect


def approve_as(settings: Settings, plan_sha256: str, reviewer: str) -> dict[str, Any] | None:
    """Approve the kept plan with this hash in the name of the signed-in reviewer (the
    console's login is who they are); None when no plan with this hash was kept.

    The plan goes through approve_plan as its file would: hash and shape checked, then
    recorded, so `run --plan` of the same file finds the approval."""
    with connect(settings) as wh:
        plan = stored_plan(wh, plan_sha256)
    if plan is None:
        return None
    with tempfile.TemporaryDirectory(prefix="eoy-plan-") as folder:
        path = Path(folder) / "plan.json"
        path.write_text(json.dumps(plan.document, indent=2), encoding="utf-8")
        return approve_plan(settings, path, login=reviewer)
