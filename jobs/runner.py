"""`eoy-reset run`: reset the due districts, step by step, resumable (SPEC §4-§6).

Per district: pause_syncs → export → verify → delete → check_retention → complete, each
recorded in eoy_runner. Every step finds out from the warehouse and the ledger whether it
was done already, so running the same command again finishes a run stopped anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from jobs.config import Settings
from jobs.contract import DELETED_TABLES
from jobs.delete import DeleteError, delete_part, deleted_counts, retained_fingerprint
from jobs.errors import EoyError
from jobs.faults import fault_point
from jobs.ledger import (
    all_delete_parts,
    cycle_deletes,
    fail_run,
    get_run,
    record_event,
    start_run,
    update_run,
    utcnow,
)
from jobs.locks import command_lock, dbt_lock, release_district_lock, try_district_lock
from jobs.parts import MAIN, check_part, delta_number, export_part, manifest_of, part_dir
from jobs.runner_view import RunProgress, render_status, render_summary
from jobs.syncs import pause_syncs, reset_status, resume_syncs
from jobs.warehouse import Warehouse, connect

__all__ = [
    "render_status",
    "render_summary",
    "reset_status",
    "restore_district",
    "resume_syncs",
    "run_reset",
]

log = logging.getLogger("eoy_reset.runner")

# A planned district runs only if its rows moved by at most this share since the plan.
PLAN_TOLERANCE = 0.10


def plan_tolerance() -> float:
    """PLAN_TOLERANCE, or EOY_PLAN_TOLERANCE (a fraction: 0.05 is 5 %) when set."""
    raw = os.environ.get("EOY_PLAN_TOLERANCE")
    if not raw:
        return PLAN_TOLERANCE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1:
        raise RunError(f"EOY_PLAN_TOLERANCE={raw!r} must be a fraction from 0 to 1, like 0.1")
    return value


class RunError(EoyError):
    """The run cannot start; nothing was changed."""


class StepFailed(EoyError):
    """A district's step failed; the district stops there, the ledger has the reason."""

    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


# ---------------------------------------------------------------------------------------
# which districts
# ---------------------------------------------------------------------------------------
def _candidates(
    wh: Warehouse, school_year: int, as_of: date, named: list[str] | None
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Due districts (or the named ones that can run) and, for named ones, why not."""
    due = wh.query_dicts(
        "select district_id, effective_reset_date, date_source, issues from eoy.due_districts "
        "where school_year = %s order by district_id",
        [school_year],
    )
    if not named:
        return due, []
    by_id = {d["district_id"]: d for d in due}
    chosen: list[dict[str, Any]] = []
    not_due: list[dict[str, str]] = []
    _known(wh, named)
    for district in dict.fromkeys(named):
        if district in by_id:
            chosen.append(by_id[district])
            continue
        rows = wh.query_dicts(
            "select effective_reset_date, date_source, status, issues from eoy.reset_schedule "
            "where district_id = %s and school_year = %s",
            [district, school_year],
        )
        run = get_run(wh, district, school_year)
        if not rows:
            reason = f"no reset date for school year {school_year}"
        elif rows[0]["status"] != "scheduled":
            reason = f"blocked ({rows[0]['issues'] or 'conflicts_with_rostering'}): a CSM must act"
        elif rows[0]["effective_reset_date"] > as_of:
            reason = f"not due until {rows[0]['effective_reset_date']}"
        elif run is not None and run["status"] == "completed":
            reason = f"already reset (completed {run['finished_at']:%Y-%m-%d %H:%M} UTC)"
        elif run is not None and run["status"] == "restored":
            # restored districts wait until an operator names them: this is that operator
            chosen.append({"district_id": district, **rows[0]})
            continue
        else:
            reason = "not due"
        not_due.append({"district_id": district, "reason": reason})
    return chosen, not_due


def shown(district_id: str, limit: int = 60) -> str:
    """A district id for a one-line message: quoted, and cut when very long."""
    text = repr(district_id[:limit])
    return text + "…" if len(district_id) > limit else text


def _known(wh: Warehouse, districts: list[str]) -> None:
    for district in districts:
        if not wh.scalar("select count(*) from app.districts where district_id = %s", [district]):
            raise RunError(f"unknown district {shown(district)}: it is not in app.districts")


def _current_rows(wh: Warehouse, district_id: str, school_year: int) -> dict[str, int]:
    """The district's rows per table: live now plus deleted already in this reset."""
    rows = deleted_counts(wh, district_id)
    for done in cycle_deletes(wh, district_id, school_year):
        for table, n in done.get("rows", {}).items():
            rows[table] = rows.get(table, 0) + int(n)
    return rows


def _plan_guard(
    plan_path: Path, school_year: int, candidates: list[dict[str, Any]]
) -> dict[str, str]:
    """Districts the approved plan does not cover, with why."""
    from jobs.plan import load_plan

    plan = load_plan(plan_path)
    plan_year = plan.get("school_year")
    if plan_year is not None and int(plan_year) != school_year:
        raise RunError(
            f"the plan {plan_path} is for school year {plan_year}, not {school_year}: "
            "make a new plan with `eoy-reset plan --out`"
        )
    tolerance = plan_tolerance()
    approved = {d["district_id"]: d for d in plan.get("due", [])}
    refused: dict[str, str] = {}
    for cand in candidates:
        district = cand["district_id"]
        entry = approved.get(district)
        if entry is None:
            refused[district] = "not in the approved plan"
            continue
        planned_rows = entry.get("rows") or {}
        planned = sum(int(planned_rows.get(t, 0)) for t in DELETED_TABLES)
        if not planned_rows:
            planned = int(entry.get("rows_total", 0))
        now = sum(cand["rows"].values())
        moved = abs(now - planned) / max(planned, 1)
        if moved > tolerance:
            refused[district] = (
                f"rows moved {moved:.0%} since the plan ({planned:,} -> {now:,}), "
                f"more than {tolerance:.0%}: make and approve a new plan"
            )
    return refused


def _confirm(console: Console, candidates: list[dict[str, Any]]) -> None:
    import typer

    n = len(candidates)
    rows = sum(sum(c["rows"].values()) for c in candidates)
    console.print(
        f"[bold]About to delete the student data of {n} district{'s' if n != 1 else ''} "
        f"({rows:,} rows), after snapshotting it.[/]"
    )
    answer = typer.prompt(f"Type {n} to confirm", default="", show_default=False)
    if answer.strip() != str(n):
        raise RunError("confirmation did not match: nothing was deleted")


# ---------------------------------------------------------------------------------------
# the command
# ---------------------------------------------------------------------------------------
def run_reset(
    settings: Settings,
    as_of: date,
    school_year: int | None = None,
    districts: list[str] | None = None,
    plan_path: Path | None = None,
    yes: bool = False,
    dry_run: bool = False,
    workers: int = 1,
    interactive: bool = False,
    show_progress: bool = True,
    console: Console | None = None,
) -> dict[str, Any]:
    """Reset the due districts as of a day; one result per district, and the failed ids."""
    from jobs.dbt import build_reset_models

    console = console or Console()
    started = time.perf_counter()
    if not (dry_run or plan_path or yes or interactive):
        raise RunError("refusing to delete without --plan, --yes or a confirmation at a terminal")
    if plan_path:  # made for this day and school year, checked before anything is built
        from jobs.preflight import plan_for_the_day

        plan_for_the_day(plan_path, as_of, school_year)
    with command_lock(settings):
        if districts:
            with connect(settings) as wh:
                _known(wh, districts)
        # other runners rebuild the same marts: read them before letting the next one build
        with dbt_lock(settings), connect(settings) as wh:
            year = build_reset_models(settings, as_of, school_year, named_districts=districts)
            candidates, not_due = _candidates(wh, year, as_of, districts)
            for cand in candidates:
                cand["rows"] = _current_rows(wh, cand["district_id"], year)
                run = get_run(wh, cand["district_id"], year)
                cand["resume"] = run["status"] if run else None
        refused = _plan_guard(plan_path, year, candidates) if plan_path else {}
        runnable = [c for c in candidates if c["district_id"] not in refused]
        result: dict[str, Any] = {
            "as_of": as_of.isoformat(),
            "school_year": year,
            "dry_run": dry_run,
            "warehouse": settings.describe(),
            "districts": [],
            "not_due": not_due,
            "failed": [],
        }
        for district, reason in refused.items():
            result["districts"].append(
                {"district_id": district, "status": "refused", "error": reason, "rows_deleted": 0}
            )
        if dry_run:
            for cand in runnable:
                result["districts"].append(
                    {
                        "district_id": cand["district_id"],
                        "status": "would_run",
                        "effective_reset_date": str(cand["effective_reset_date"]),
                        "rows": cand["rows"],
                        "rows_deleted": 0,
                        "resumes": cand["resume"],
                    }
                )
            return _finish(result, started)
        if runnable and not plan_path and not yes:
            _confirm(console, runnable)
        if settings.target == "duckdb" and workers > 1 and len(runnable) > 1:
            Console(stderr=True).print("DuckDB allows one writer: districts run one at a time.")
            workers = 1
        total_rows = sum(sum(c["rows"].values()) for c in runnable)
        with RunProgress(show_progress, len(runnable), total_rows) as progress:
            if workers <= 1 or len(runnable) <= 1:
                shared = connect(settings) if settings.target == "duckdb" and runnable else None
                try:
                    outcomes = [_run_one(settings, c, year, progress, shared) for c in runnable]
                finally:
                    if shared is not None:
                        shared.close()
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    outcomes = list(
                        pool.map(lambda c: _run_one(settings, c, year, progress, None), runnable)
                    )
        for cand, outcome in zip(runnable, outcomes, strict=True):  # keys of the dry run
            outcome.setdefault("effective_reset_date", str(cand["effective_reset_date"]))
            outcome.setdefault("rows", cand["rows"])
            outcome.setdefault("resumes", cand["resume"])
        result["districts"].extend(outcomes)
    return _finish(result, started)


def _finish(result: dict[str, Any], started: float) -> dict[str, Any]:
    result["failed"] = [
        d["district_id"] for d in result["districts"] if d["status"] in ("failed", "refused")
    ]
    counts: dict[str, int] = {}
    for d in result["districts"]:
        counts[d["status"]] = counts.get(d["status"], 0) + 1
    result["totals"] = {
        "districts": len(result["districts"]),
        "by_status": counts,
        "rows_deleted": sum(int(d.get("rows_deleted") or 0) for d in result["districts"]),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return result


# ---------------------------------------------------------------------------------------
# one district
# ---------------------------------------------------------------------------------------
def _run_one(
    settings: Settings,
    cand: dict[str, Any],
    year: int,
    progress: RunProgress,
    shared: Warehouse | None,
) -> dict[str, Any]:
    district = cand["district_id"]
    began = time.perf_counter()
    outcome: dict[str, Any] = {"district_id": district, "rows_deleted": 0}
    wh: Warehouse | None = shared
    locked = False
    progress.district_started(district, sum(cand["rows"].values()))
    try:
        wh = wh or connect(settings)
        locked = try_district_lock(wh, district, year)
        if not locked:
            outcome.update(status="skipped", error="held by another runner")
        else:
            outcome.update(_steps(wh, settings, cand, year, progress))
    except Exception as exc:
        step = exc.step if isinstance(exc, StepFailed) else "run"
        message = str(exc) if isinstance(exc, StepFailed) else _one_line(exc)
        outcome.update(status="failed", step=step, error=message)
        if locked:  # only the runner holding the district writes its ledger
            _record_failure(wh, settings, district, year, step, message)
    finally:
        if locked and wh is not None:
            release_district_lock(wh, district, year)
        if shared is None and wh is not None:
            with contextlib.suppress(Exception):
                wh.close()
        progress.district_done(district)
    outcome["seconds"] = round(time.perf_counter() - began, 2)
    log.info("district %s: %s", district, outcome.get("status"))
    return outcome


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return text if isinstance(exc, EoyError) else f"{type(exc).__name__}: {text}"


def _record_failure(
    wh: Warehouse | None, settings: Settings, district: str, year: int, step: str, message: str
) -> None:
    """Into the ledger; over a new connection (holding the district) when ours broke."""
    if wh is not None:
        try:
            fail_run(wh, district, year, step, message)
            return
        except Exception:
            pass
    try:
        with connect(settings) as fresh:
            if try_district_lock(fresh, district, year):
                fail_run(fresh, district, year, step, message)
                release_district_lock(fresh, district, year)
    except Exception:
        log.warning("district %s: could not record the failure in the ledger", district)


def _step(wh: Warehouse, district: str, year: int, step: str) -> None:
    fault_point(f"before:{step}")
    record_event(wh, district, year, step, "started")


def _done(
    wh: Warehouse,
    district: str,
    year: int,
    step: str,
    detail: dict[str, Any],
    status: str = "completed",
) -> None:
    record_event(wh, district, year, step, status, detail)
    fault_point(f"after:{step}")


def _steps(
    wh: Warehouse, settings: Settings, cand: dict[str, Any], year: int, progress: RunProgress
) -> dict[str, Any]:
    district = cand["district_id"]
    run = get_run(wh, district, year)
    if run is not None and run["status"] == "completed":
        return {"status": "skipped", "error": "already completed by another runner"}
    if run is not None and run["status"] == "restored" and cand.get("resume") != "restored":
        # an operator restored it after this run chose it: only naming it again resets it
        return {
            "status": "skipped",
            "error": "restored by an operator during this run: name it with --district "
            "to reset it again",
        }
    start_run(wh, district, year, cand["effective_reset_date"])

    # pause_syncs: idempotent, only active syncs change
    _step(wh, district, year, "pause_syncs")
    _done(wh, district, year, "pause_syncs", {"syncs_paused": pause_syncs(wh, district)})

    deletes = cycle_deletes(wh, district, year)
    live = deleted_counts(wh, district)
    if not deletes or sum(live.values()) > 0:
        if deletes:
            part = f"delta-{1 + max(delta_number(p) for p in all_delete_parts(wh, district, year))}"
        else:
            part = MAIN
        deletes.append(_snapshot_and_delete(wh, settings, district, year, part, progress))
    else:
        for step in ("export", "verify", "delete"):
            record_event(wh, district, year, step, "skipped", {"reason": "done already"})

    # check_retention: the delete proved, before its commit, that no retained row (of any
    # district) changed; now no retained row of the district may be gone and no student row
    # may be left. Later edits by the app (a teacher logging in) are noted, not failed.
    _step(wh, district, year, "check_retention")
    before = deletes[-1].get("retained_before") or {}
    after = retained_fingerprint(wh, district)
    gone = sorted(t for t in after if t in before and after[t][0] < before[t][0])
    if gone:
        raise StepFailed(
            "check_retention",
            f"retained rows of the district are gone from {', '.join(gone)} since the delete",
        )
    edited = sorted(t for t in after if t in before and after[t] != before[t])
    left = {t: n for t, n in deleted_counts(wh, district).items() if n}
    if left:
        total = sum(left.values())
        where = ", ".join(f"{t} {n}" for t, n in left.items())
        raise StepFailed(
            "check_retention",
            f"{total} rows arrived after the snapshot ({where}): they stay; "
            "run again to snapshot and delete them as a delta",
        )
    _done(
        wh,
        district,
        year,
        "check_retention",
        {"retained": after, "edited_since_delete": edited, "remaining": 0},
    )

    # complete
    _step(wh, district, year, "complete")
    rows_deleted = sum(int(d.get("rows_total", 0)) for d in deletes)
    main = next((d for d in deletes if d.get("part") == MAIN), deletes[0])
    with wh.transaction():
        update_run(
            wh,
            district,
            year,
            status="completed",
            finished_at=utcnow(),
            rows_deleted=rows_deleted,
            snapshot_path=main.get("path"),
            manifest_sha256=main.get("manifest_sha256"),
            error=None,
        )
        record_event(
            wh,
            district,
            year,
            "complete",
            "completed",
            {"rows_deleted": rows_deleted, "parts": [d.get("part") for d in deletes]},
        )
    fault_point("after:complete")
    return {
        "status": "completed",
        "rows_deleted": rows_deleted,
        "snapshot_path": main.get("path"),
        "parts": [d.get("part") for d in deletes],
        "error": None,
    }


def _snapshot_and_delete(
    wh: Warehouse, settings: Settings, district: str, year: int, part: str, progress: RunProgress
) -> dict[str, Any]:
    folder = part_dir(settings, year, district, part)

    # export: reuse a part that verifies and holds exactly the current rows
    _step(wh, district, year, "export")
    problems = check_part(wh, folder, district, year) if folder.is_dir() else ["absent"]
    if not problems:
        manifest, sha = manifest_of(folder)
        _done(wh, district, year, "export", {"part": part, "reused": True}, "skipped")
    else:
        made = export_part(
            wh,
            settings,
            district,
            year,
            part,
            progress=lambda table, n: progress.table(district, "export", table, n),
        )
        manifest, sha = manifest_of(Path(made["path"]))
        rows = {t: e["rows"] for t, e in manifest["tables"].items()}
        _done(wh, district, year, "export", {"part": part, "rows": rows, "manifest_sha256": sha})
    if part == MAIN:
        update_run(wh, district, year, snapshot_path=str(folder), manifest_sha256=sha)

    # verify: the files against the manifest, and against the live rows
    _step(wh, district, year, "verify")
    problems = check_part(wh, folder, district, year)
    if problems:
        raise StepFailed(
            "verify", f"snapshot {folder} did not verify: {problems[0]}; nothing was deleted"
        )
    _done(wh, district, year, "verify", {"part": part, "manifest_sha256": sha})

    # delete: one transaction, what was snapshotted and nothing else
    _step(wh, district, year, "delete")
    try:
        detail = delete_part(
            wh,
            district,
            year,
            part,
            folder,
            manifest,
            sha,
            progress=lambda table, n: progress.table(district, "delete", table, n),
        )
    except DeleteError as exc:
        raise StepFailed("delete", str(exc)) from None
    except EoyError:
        raise
    except Exception as exc:
        if type(exc).__name__ == "ForeignKeyViolation":
            raise StepFailed(
                "delete",
                "rows that arrived after the snapshot refer to its rows "
                f"({_one_line(exc)}): rolled back, nothing was deleted; "
                "run again to take a new snapshot",
            ) from None
        raise StepFailed(
            "delete", f"the delete failed and was rolled back: {_one_line(exc)}; run again"
        ) from None
    fault_point("after:delete")
    return detail


# ---------------------------------------------------------------------------------------
# restore
# ---------------------------------------------------------------------------------------
def restore_district(settings: Settings, district_id: str, school_year: int) -> dict[str, Any]:
    from jobs.restore import restore

    with command_lock(settings):
        return restore(settings, district_id, school_year)
