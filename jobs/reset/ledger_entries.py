"""What the ledger records of a district's pass: its events, its run row's new values, and
the district's outcome they amount to. Pure: the caller writes them in the pass's
transaction, so they commit with the delete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobs.reset.commit import StepError
from jobs.reset.result import DistrictOutcome
from jobs.scope import current_scope
from jobs.snapshot.writer import MAIN
from jobs.warehouse.ledger import utcnow

# The ledger steps of the one pass, in their order.
PASS_STEPS = ("export", "verify", "delete")

# a ledger event of one district: (step, status, detail)
Event = tuple[str, str, dict[str, Any]]


@dataclass
class PassLedger:
    """A district's pass as the ledger records it."""

    outcome: DistrictOutcome
    steps: list[Event]
    values: dict[str, Any]


def arrived_error(left: dict[str, int]) -> str:
    where = ", ".join(f"{t} {n}" for t, n in left.items())
    return (
        f"{sum(left.values())} rows arrived after the snapshot ({where}): they stay; "
        "run again to snapshot and delete them as a delta"
    )


def pass_ledger(
    district: str, part: str, prior: int, parts: list[Any], detail: dict[str, Any]
) -> PassLedger:
    """The events of a district's pass, its run row's values, and its outcome: completed, or
    failed at check_retention when rows arrived meanwhile."""
    rows_deleted = prior + int(detail["rows_total"])
    left = {t: n for t, n in detail["remaining"].items() if n}
    sha = detail["manifest_sha256"]
    steps: list[Event] = [
        ("export", "completed", {"part": part, "rows": detail["rows"], "manifest_sha256": sha}),
        ("verify", "completed", {"part": part, "manifest_sha256": sha}),
        ("delete", "completed", detail),
    ]
    values: dict[str, Any] = {"rows_deleted": rows_deleted}
    if part == MAIN:  # a delta leaves the main snapshot's path and sha256 in the run row
        values.update(snapshot_path=detail["path"], manifest_sha256=sha)
    outcome = DistrictOutcome(district, rows_deleted=rows_deleted)
    if left:
        error = arrived_error(left)
        steps.append(("check_retention", "failed", {"error": error, "remaining": left}))
        values.update(status="failed", finished_at=utcnow(), error=error)
        outcome.status, outcome.step, outcome.error = "failed", "check_retention", error
    else:
        retained = {t: detail["retained_before"][t] for t in current_scope().retained}
        steps.append(("check_retention", "completed", {"retained": retained, "remaining": 0}))
        steps.append(("complete", "completed", {"rows_deleted": rows_deleted, "parts": parts}))
        values.update(status="completed", finished_at=utcnow(), error=None)
        outcome.status = "completed"
    return PassLedger(outcome, steps, values)


def completed_without_pass(
    district: str, state: dict[str, list[int]], deletes: list[dict[str, Any]]
) -> PassLedger:
    """A district whose every row went in an earlier pass of this cycle, checked against its
    state now: completed, or a StepError at check_retention."""
    left = {t: state[t][0] for t in current_scope().deleted if state[t][0]}
    if left:
        raise StepError("check_retention", arrived_error(left))
    before = deletes[-1].get("retained_before") or {}
    gone = sorted(t for t in current_scope().retained if t in before and state[t][0] < before[t][0])
    if gone:
        raise StepError(
            "check_retention",
            f"retained rows of the district are gone from {', '.join(gone)} since the delete",
        )
    rows_deleted = sum(int(d.get("rows_total", 0)) for d in deletes)
    parts = [str(d["part"]) for d in deletes]
    main = next((d for d in deletes if d.get("part") == MAIN), deletes[0])
    steps: list[Event] = [
        *((step, "skipped", {"reason": "done already"}) for step in PASS_STEPS),
        ("check_retention", "completed", {"retained": state, "remaining": 0}),
        ("complete", "completed", {"rows_deleted": rows_deleted, "parts": parts}),
    ]
    values = {
        "status": "completed",
        "finished_at": utcnow(),
        "rows_deleted": rows_deleted,
        "snapshot_path": main.get("path"),
        "manifest_sha256": main.get("manifest_sha256"),
        "error": None,
    }
    outcome = DistrictOutcome(
        district,
        "completed",
        rows_deleted=rows_deleted,
        snapshot_path=main.get("path"),
        parts=parts,
    )
    return PassLedger(outcome, steps, values)
