"""What people do through the console, in the ledger (eoy_runner.console_actions): who, in
which role, did what to which district and how it ended. Names, ids, dates and counts only:
never a password, a session token, a secret or a student's data.
"""

from __future__ import annotations

import json
from typing import Any

from jobs.warehouse.connection import Warehouse
from jobs.warehouse.ledger import utcnow

OUTCOMES = ("ok", "refused", "failed")


def record_action(
    wh: Warehouse,
    username: str,
    role: str | None,
    action: str,
    outcome: str,
    district_id: str | None = None,
    school_year: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one action to the ledger."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    cast = "%s::jsonb" if wh.target == "postgres" else "cast(%s as json)"
    wh.execute(
        'insert into eoy_runner.console_actions ("at", username, role, action, outcome, '
        f"district_id, school_year, detail) values (%s, %s, %s, %s, %s, %s, %s, {cast})",
        [
            utcnow(),
            username,
            role,
            action,
            outcome,
            district_id,
            school_year,
            json.dumps(detail or {}, sort_keys=True, default=str),
        ],
    )
