"""What a run did, typed: each district's outcome and the run's result, the one place that
counts them (`totals`) and the one place that turns them into `run --json` (`document`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jobs.output import count_by, totals

# One district of `run` and of `run --dry-run`: the same keys, null where they do not apply.
RUN_DISTRICT_KEYS = (
    "district_id",
    "status",
    "effective_reset_date",
    "rows",
    "rows_total",
    "rows_deleted",
    "resumes",
    "step",
    "error",
    "snapshot_path",
    "parts",
    "seconds",
)
# a district that did not do all it was asked: the run exits non-zero
STOPPED = ("failed", "refused")


@dataclass
class DistrictOutcome:
    """One district of a run: `would_run` (a dry run), `completed`, `failed`, `refused` (the
    plan or the new year's rostering said no) or `skipped` (another runner has it, or it was
    done or restored meanwhile); `rows`: its live rows per table when the run chose it."""

    district_id: str
    status: str = "failed"
    effective_reset_date: str | None = None
    rows: dict[str, int] | None = None
    rows_deleted: int = 0
    resumes: str | None = None
    step: str | None = None
    error: str | None = None
    snapshot_path: str | None = None
    parts: list[str] | None = None
    seconds: float | None = None

    @property
    def rows_total(self) -> int | None:
        """The rows the run chose it with, all tables together (None: not counted)."""
        return sum(int(n) for n in self.rows.values()) if self.rows else None

    def fail(self, step: str, error: str) -> None:
        self.status, self.step, self.error, self.rows_deleted = "failed", step, error, 0

    def document(self) -> dict[str, Any]:
        """The district's entry in `run --json`, RUN_DISTRICT_KEYS in their order."""
        values = {**self.__dict__, "rows_total": self.rows_total}
        values["rows_deleted"] = int(self.rows_deleted or 0)
        return {key: values[key] for key in RUN_DISTRICT_KEYS}


@dataclass
class RunResult:
    """A run as of a day: every district it listed (in the order it took them), the named
    districts it could not run and why, and how long its phases took."""

    as_of: str
    school_year: int
    dry_run: bool
    warehouse: str
    districts: list[DistrictOutcome] = field(default_factory=list)
    not_due: list[dict[str, str]] = field(default_factory=list)
    seconds_by_phase: dict[str, float] = field(default_factory=dict)
    approval: dict[str, Any] | None = None
    # restored districts of the school year that wait to be named (None: not looked up)
    restored: list[dict[str, Any]] | None = None
    seconds: float | None = None

    @property
    def failed(self) -> list[str]:
        return [d.district_id for d in self.districts if d.status in STOPPED]

    def totals(self) -> dict[str, Any]:
        """Districts listed, the rows the run deleted (a dry run: would delete), by status,
        and the run's seconds: the one count of a run, for its table and its JSON."""
        if self.dry_run:
            rows = sum(d.rows_total or 0 for d in self.districts if d.status == "would_run")
        else:
            rows = sum(int(d.rows_deleted or 0) for d in self.districts)
        statuses = [{"status": d.status} for d in self.districts]
        return totals(len(self.districts), rows, count_by(statuses), seconds=self.seconds)

    def problem(self) -> str | None:
        """The first reason the run did not do all it was asked, or None.

        A named district that cannot run (blocked, not due) is a failure; one already reset
        is not, so the same command run again to finish a run still exits 0."""
        stopped = [
            (d.district_id, d.status, d.error) for d in self.districts if d.status in STOPPED
        ]
        stopped += [
            (n["district_id"], "not run", n["reason"])
            for n in self.not_due
            if not str(n["reason"]).startswith("already reset")
        ]
        if not stopped:
            return None
        district, status, error = stopped[0]
        more = f" (and {len(stopped) - 1} more district(s))" if len(stopped) > 1 else ""
        return f"district {district!r} {status}: {error}{more}"

    def document(self) -> dict[str, Any]:
        """`run --json` and `run --dry-run --json`: every district with RUN_DISTRICT_KEYS."""
        doc: dict[str, Any] = {
            "as_of": self.as_of,
            "school_year": self.school_year,
            "dry_run": self.dry_run,
            "warehouse": self.warehouse,
            "not_due": self.not_due,
            "failed": self.failed,
            "seconds_by_phase": self.seconds_by_phase,
            "approval": self.approval,
        }
        if self.restored is not None:
            doc["restored"] = self.restored
        doc["districts"] = [d.document() for d in self.districts]
        doc["totals"] = self.totals()
        return doc
