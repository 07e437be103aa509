"""`eoy-reset run`: reset the due districts, each in one verified pass, resumable.

Per district: `pause_syncs` commits on its own; then one transaction takes the snapshot from
the statements that delete the rows (`jobs.reset.onepass`), verifies it, and records `export`,
`verify`, `delete`, `check_retention` and `complete` in the ledger before it commits. Districts
with no run yet go in batches that share those commits and statements (`jobs.reset.batch`);
a district taken up again goes alone. Every step finds out from the warehouse and the ledger
whether it was done already, so running the same command again finishes a run stopped
anywhere.

This module runs the command: which districts (`jobs.reset.choose`), in which units and how
many at a time; each district's way is `jobs.reset.district`, its outcome and the run's result
`jobs.reset.result`.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from jobs.config import Settings, scrub
from jobs.plan.approval import SECOND_PERSON_ENV, load_approved_plan, second_person_required
from jobs.plan.planner import closed_districts
from jobs.reset.batch import BATCH_DISTRICTS, BATCH_ROWS
from jobs.reset.choose import RunError, annotate, candidates, confirm, known_districts, plan_guard
from jobs.reset.connections import PASS_SETTINGS, Connections
from jobs.reset.district import run_batch, run_one
from jobs.reset.result import DistrictOutcome, RunResult
from jobs.reset.syncs import reset_status, resume_syncs
from jobs.reset.view import RunProgress, render_status, render_summary
from jobs.reset.workers import WorkerPool
from jobs.scope import Scope, current_scope, load_scope
from jobs.scope.sql import shared, sweep_sql
from jobs.snapshot.store import StoreError, is_object_root
from jobs.snapshot.writer import settle_year
from jobs.warehouse.connection import connect
from jobs.warehouse.ledger import record_refusals
from jobs.warehouse.locks import command_lock, dbt_lock

__all__ = [
    "PASS_SETTINGS",
    "Connections",
    "RunError",
    "RunResult",
    "render_status",
    "render_summary",
    "reset_status",
    "restore_district",
    "resume_syncs",
    "run_reset",
]

# The runner's own batches pass this many at a time, each in its own transaction on a
# connection of its own, so that one batch's statements overlap the other's files and checks
# (a batch's commit waits for its checks: with one batch at a time the cores idled there).
# Batches never share a district: DuckDB's transactions conflict only over the same rows,
# PostgreSQL's lock only the batch's own. A worker process (`--workers N`) takes one at a time.
BATCHES_IN_FLIGHT = 2


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
) -> RunResult:
    """Reset the due districts as of a day: each district's outcome, in a RunResult."""
    console = console or Console()
    started = time.perf_counter()
    _refuse_early(settings, as_of, school_year, plan_path, yes, dry_run, interactive)
    with command_lock(settings), _worker_pool(settings, workers, dry_run) as pool:
        # the plan as approved in the ledger, or a refusal before anything changes
        plan, approval = load_approved_plan(settings, plan_path) if plan_path else ({}, None)
        result, chosen = _choose(settings, as_of, school_year, districts, dry_run, approval)
        refused = plan_guard(plan_path, result.school_year, chosen, plan) if plan_path else {}
        if refused and not dry_run:  # for `status`, until a run completes them
            with connect(settings) as wh:
                record_refusals(wh, result.school_year, refused)
        runnable = [c for c in chosen if c["district_id"] not in refused]
        result.districts[:0] = [
            DistrictOutcome(district, "refused", error=reason)
            for district, reason in refused.items()
        ]
        if dry_run:
            result.districts += [_would_run(cand) for cand in runnable]
        else:
            if runnable and not plan_path and not yes:
                confirm(console, runnable)
            if settings.target == "duckdb" and workers > 1 and len(runnable) > 1:
                Console(stderr=True).print(
                    "DuckDB allows one writer process: --workers is ignored."
                )
            began = time.perf_counter()
            outcomes = _pass_districts(settings, pool, runnable, result.school_year, show_progress)
            result.districts += outcomes
            if any(o.status == "completed" for o in outcomes):
                _sweep_shared(settings, current_scope(), result.school_year)
            result.seconds_by_phase["districts"] = round(time.perf_counter() - began, 2)
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def _sweep_shared(settings: Settings, scope: Scope, year: int) -> None:
    """Rows several districts own, whose owners have all completed now: gone at the run's
    end, children first (a batch deletes a shared row only once its other owners are done,
    and two batches in flight each see the other's owner still running)."""
    shared_tables = [t for t in scope.delete_order if shared(scope, scope.tables[t])]
    if not shared_tables:
        return
    with connect(settings) as wh, wh.transaction():
        for table in shared_tables:
            wh.execute(sweep_sql(scope, scope.tables[table], year))


def _refuse_early(
    settings: Settings,
    as_of: date,
    school_year: int | None,
    plan_path: Path | None,
    yes: bool,
    dry_run: bool,
    interactive: bool,
) -> None:
    """What refuses a run before anything is built: no way to confirm, the second person's
    rule, a snapshot root that cannot be, a plan for another day or year."""
    if not (dry_run or plan_path or yes or interactive):
        raise RunError("refusing to delete without --plan, --yes or a confirmation at a terminal")
    if not (dry_run or plan_path) and second_person_required():
        raise RunError(
            f"{SECOND_PERSON_ENV}=1: a run deletes only with an approved --plan (--yes and a "
            "typed confirmation would skip the second person); make a plan with "
            "`eoy-reset plan --out FILE` and have another person approve it"
        )
    _check_snapshot_root(settings)
    if plan_path:  # made for this day and school year, checked before anything is built
        from jobs.plan.preflight import plan_for_the_day

        plan_for_the_day(plan_path, as_of, school_year)


def _choose(
    settings: Settings,
    as_of: date,
    school_year: int | None,
    districts: list[str] | None,
    dry_run: bool,
    approval: dict[str, Any] | None,
) -> tuple[RunResult, list[dict[str, Any]]]:
    """The reset models built for the day, the districts the run takes (with their live
    rows), and the result begun: those the new year's rostering closed listed as skipped."""
    from jobs.plan.dbt import build_reset_models

    # other runners rebuild the same marts: read them before letting the next one build
    with dbt_lock(settings), connect(settings) as wh:
        scope = load_scope(settings, wh)  # a scope the reset cannot follow is refused here
        if districts:
            known_districts(wh, districts)
        began = time.perf_counter()
        year = build_reset_models(
            settings,
            as_of,
            school_year,
            named_districts=districts,
            for_run=True,
            models=scope.rows_models,
        )
        built = time.perf_counter() - began
        chosen, not_due = candidates(wh, year, as_of, districts)
        closed_year = [] if districts else closed_districts(wh, year, as_of)
        annotate(wh, year, chosen)
        for cand in chosen:
            cand["approval"] = approval
        if not dry_run:
            try:
                settle_year(wh, settings, year)
            except StoreError as exc:  # each district's pass says it again, and fails
                Console(stderr=True).print(
                    f"eoy-reset: warning: {scrub(str(exc))}", highlight=False, soft_wrap=True
                )
    result = RunResult(
        as_of=as_of.isoformat(),
        school_year=year,
        dry_run=dry_run,
        warehouse=settings.describe(),
        not_due=not_due,
        seconds_by_phase={"build_models": round(built, 2)},
        approval=approval,
    )
    # would be due, but the new year's rostering closed it
    result.districts += [
        DistrictOutcome(closed["district_id"], "skipped", error=closed["reason"])
        for closed in closed_year
    ]
    return result, chosen


def _would_run(cand: dict[str, Any]) -> DistrictOutcome:
    return DistrictOutcome(
        cand["district_id"],
        "would_run",
        effective_reset_date=str(cand["effective_reset_date"]),
        rows=cand["rows"],
        resumes=cand["resume"],
    )


def _pass_districts(
    settings: Settings,
    pool: WorkerPool | None,
    runnable: list[dict[str, Any]],
    year: int,
    show_progress: bool,
) -> list[DistrictOutcome]:
    """Every runnable district's outcome, in the run's order, with what the run chose it
    with (the keys of the dry run)."""
    total_rows = sum(sum(c["rows"].values()) for c in runnable)
    with (
        RunProgress(show_progress, len(runnable), total_rows) as progress,
        Connections(settings) as connections,
    ):
        units = _units(runnable, pool.workers if pool is not None else 1)
        if pool is not None and len(units) > 1:
            done = pool.reset(units, year, progress)
        else:
            done = _run_units(connections, units, year, progress)
        progress.finish(done)
    by_district = {o.district_id: o for o in done}
    outcomes = [by_district[c["district_id"]] for c in runnable]
    for cand, outcome in zip(runnable, outcomes, strict=True):
        outcome.effective_reset_date = str(cand["effective_reset_date"])
        outcome.rows = cand["rows"]
        outcome.resumes = cand["resume"]
    return outcomes


def _worker_pool(
    settings: Settings, workers: int, dry_run: bool
) -> contextlib.AbstractContextManager[WorkerPool | None]:
    """Worker processes for `--workers N` on PostgreSQL, started at once so that their
    imports overlap the dbt build; DuckDB allows one writer, so it has none."""
    if settings.target != "postgres" or workers <= 1 or dry_run:
        return contextlib.nullcontext()
    return WorkerPool(settings, workers, Connections, _run_unit)


def _check_snapshot_root(settings: Settings) -> None:
    """The snapshot root must be a folder, or a path one can be made at: refuse up front.
    An object store is checked by each district's pass, which fails naming the cause."""
    if is_object_root(settings.snapshot_root):
        return
    root = Path(settings.snapshot_root)
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise RunError(
            f"snapshot root {root} is not a folder ({probe} is a file): "
            "point --snapshot-root or EOY_SNAPSHOT_ROOT at a folder; nothing was deleted"
        )


def _units(runnable: list[dict[str, Any]], workers: int) -> list[list[dict[str, Any]]]:
    """The districts in batches that pass in one transaction (`jobs.reset.batch`): districts
    with no run yet, up to BATCH_DISTRICTS and BATCH_ROWS together; every other district
    (taken up again, or too large to hold) alone. With several workers, batches small enough
    to share the districts out evenly."""
    size = BATCH_DISTRICTS
    if workers > 1:
        size = max(1, min(size, -(-len(runnable) // (4 * workers))))
    units: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    rows = 0
    for cand in runnable:
        n = sum(cand["rows"].values())
        if cand.get("resume") is not None or n > BATCH_ROWS:
            if current:  # districts keep their order
                units.append(current)
                current, rows = [], 0
            units.append([cand])
            continue
        if current and (len(current) >= size or rows + n > BATCH_ROWS):
            units.append(current)
            current, rows = [], 0
        current.append(cand)
        rows += n
    if current:
        units.append(current)
    return units


def _run_units(
    connections: Connections,
    units: list[list[dict[str, Any]]],
    year: int,
    progress: RunProgress,
) -> list[DistrictOutcome]:
    """Every unit's outcomes, in order. Batches pass BATCHES_IN_FLIGHT at a time, each on a
    thread and a connection of its own; a district alone (too large for a batch, or taken up
    again) passes with nothing beside it, so that its memory stays its own. A unit that
    raises stops the run: no other starts, the one beside it finishes (its transaction
    commits or rolls back whole), and the error is raised."""
    if sum(len(unit) > 1 for unit in units) <= 1:  # no batch beside another
        return [o for unit in units for o in _run_unit(connections, unit, year, progress)]
    done: dict[int, list[DistrictOutcome]] = {}
    running: dict[Future[list[DistrictOutcome]], int] = {}

    def settle(at_most: int) -> None:
        while len(running) > at_most:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                done[running.pop(future)] = future.result()

    with ThreadPoolExecutor(BATCHES_IN_FLIGHT, thread_name_prefix="eoy-batch") as pool:
        for n, unit in enumerate(units):
            if len(unit) == 1:
                settle(0)
                done[n] = _run_unit(connections, unit, year, progress)
            else:
                settle(BATCHES_IN_FLIGHT - 1)
                running[pool.submit(_run_unit, connections, unit, year, progress)] = n
        settle(0)
    return [o for n in range(len(units)) for o in done[n]]


def _run_unit(
    connections: Connections, unit: list[dict[str, Any]], year: int, progress: RunProgress
) -> list[DistrictOutcome]:
    """A batch of districts, or one district alone: their outcomes."""
    if len(unit) == 1:
        return [run_one(connections, unit[0], year, progress)]
    return run_batch(connections, unit, year, progress)


# ---------------------------------------------------------------------------------------
# restore
# ---------------------------------------------------------------------------------------
def restore_district(settings: Settings, district_id: str, school_year: int) -> dict[str, Any]:
    from jobs.reset.restore import restore

    with command_lock(settings):
        return restore(settings, district_id, school_year)
