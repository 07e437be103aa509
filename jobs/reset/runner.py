"""`eoy-reset run`: reset the due districts, each in one verified pass, resumable (SPEC §4-§6).

Per district: `pause_syncs` commits on its own; then one transaction takes the snapshot from
the statements that delete the rows (`jobs.reset.onepass`), verifies it, and records `export`,
`verify`, `delete`, `check_retention` and `complete` in the ledger before it commits. Districts
with no run yet go in batches that share those commits and statements (`jobs.reset.batch`);
a district taken up again goes alone. Every step finds out from the warehouse and the ledger
whether it was done already, so running the same command again finishes a run stopped
anywhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date
from pathlib import Path
from typing import Any

from rich.console import Console

from jobs.config import Settings, scrub
from jobs.errors import EoyError
from jobs.faults import fault_point
from jobs.plan.approval import SECOND_PERSON_ENV, load_approved_plan, second_person_required
from jobs.plan.approval import approval_detail as _approval_detail
from jobs.plan.planner import DEFAULT_TOLERANCE, closed_districts
from jobs.reset.batch import BATCH_DISTRICTS, BATCH_ROWS, take_batch
from jobs.reset.commit import RetryAlone, StepError
from jobs.reset.onepass import district_state, take_snapshot
from jobs.reset.syncs import pause_syncs, pause_syncs_of, reset_status, resume_syncs
from jobs.reset.view import RunProgress, render_status, render_summary
from jobs.reset.workers import WorkerPool
from jobs.scope import Scope, current_scope, load_scope
from jobs.scope.sql import shared, sweep_sql
from jobs.snapshot.store import StoreError, is_object_root, open_store
from jobs.snapshot.writer import MAIN, delta_number, settle_parts, settle_year
from jobs.warehouse.connection import (
    KEEP_ALIVE_SQL,
    PostgresWarehouse,
    Warehouse,
    connect,
    quote_ident,
)
from jobs.warehouse.ledger import (
    all_delete_parts,
    cycle_deletes,
    fail_run,
    get_run,
    get_runs,
    record_event,
    record_events,
    record_events_of,
    record_refusals,
    start_run,
    start_runs,
    update_run,
    update_runs,
    utcnow,
)
from jobs.warehouse.locks import (
    command_lock,
    dbt_lock,
    release_district_lock,
    release_district_locks,
    try_district_lock,
    try_district_locks,
)
from jobs.warehouse.rostering import closed_reason, rostered

__all__ = [
    "render_status",
    "render_summary",
    "reset_status",
    "restore_district",
    "resume_syncs",
    "run_reset",
]

log = logging.getLogger("eoy_reset.runner")

# The ledger steps of the one pass, in their order.
PASS_STEPS = ("export", "verify", "delete")
# The runner's own batches pass this many at a time, each in its own transaction on a
# connection of its own, so that one batch's statements overlap the other's files and checks
# (a batch's commit waits for its checks: with one batch at a time the cores idled there).
# Batches never share a district: DuckDB's transactions conflict only over the same rows,
# PostgreSQL's lock only the batch's own. A worker process (`--workers N`) takes one at a time.
BATCHES_IN_FLIGHT = 2


def plan_tolerance(plan: dict[str, Any]) -> float:
    """How far a planned district's rows may move: what the approved plan says (the plan's
    author set it, its approver approved it), never the runner's environment."""
    if os.environ.get("EOY_PLAN_TOLERANCE"):
        raise RunError(
            "EOY_PLAN_TOLERANCE is set, but the person running a plan may not widen it: the "
            "tolerance is the plan's own (`eoy-reset plan --tolerance`, then approve); unset it"
        )
    value = plan.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise RunError(f"the plan's tolerance {value!r} is not a fraction from 0 to 1")
    return float(value)


class RunError(EoyError):
    """The run cannot start; nothing was changed."""


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
    closed = rostered(wh, named, school_year + 1, current_scope().role_relation("rostering"))
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
        elif district in closed:
            reason = closed_reason(school_year, closed[district])
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
    table = current_scope().districts
    key = table.key[0]
    column = quote_ident(key) if table.kind(key) == "text" else f"cast({quote_ident(key)} as text)"
    marks = ", ".join(["%s"] * len(districts))
    found = {
        str(r[0])
        for r in wh.query(
            f"select {column} from {table.relation} where {column} in ({marks})", districts
        )
    }
    for district in districts:
        if district not in found:
            raise RunError(f"unknown district {shown(district)}: it is not in {table.qualified}")


def _annotate(wh: Warehouse, school_year: int, candidates: list[dict[str, Any]]) -> None:
    """Each candidate's live rows per table (dbt's reset_scope counted every due district in
    one grouped pass per table), its run's status, and rows deleted so far in this cycle."""
    live: dict[str, dict[str, int]] = {}
    for district, table, n in wh.query(
        "select district_id, table_name, row_count from eoy.reset_scope "
        "where school_year = %s and action = 'delete'",
        [school_year],
    ):
        live.setdefault(district, {})[table] = int(n)
    runs = {
        r["district_id"]: r
        for r in wh.query_dicts(
            "select district_id, status, rows_deleted from eoy_runner.reset_runs "
            "where school_year = %s",
            [school_year],
        )
    }
    for cand in candidates:
        counts = live.get(cand["district_id"], {})
        cand["rows"] = {t: counts.get(t, 0) for t in current_scope().deleted}
        run = runs.get(cand["district_id"])
        cand["resume"] = run["status"] if run else None
        # a restored run starts a new cycle: nothing of it is deleted yet
        done = run is not None and run["status"] != "restored"
        cand["rows_done"] = int(run["rows_deleted"] or 0) if done and run else 0


def _plan_guard(
    plan_path: Path, school_year: int, candidates: list[dict[str, Any]], plan: dict[str, Any]
) -> dict[str, str]:
    """Districts the approved plan does not cover, with why."""
    plan_year = plan.get("school_year")
    if plan_year is not None and int(plan_year) != school_year:
        raise RunError(
            f"the plan {plan_path} is for school year {plan_year}, not {school_year}: "
            "make a new plan with `eoy-reset plan --out`"
        )
    tolerance = plan_tolerance(plan)
    approved = {d["district_id"]: d for d in plan.get("due", [])}
    refused: dict[str, str] = {}
    for cand in candidates:
        district = cand["district_id"]
        entry = approved.get(district)
        if entry is None:
            refused[district] = "not in the approved plan"
            continue
        planned_rows = entry.get("rows") or {}
        planned = sum(int(planned_rows.get(t, 0)) for t in current_scope().deleted)
        if not planned_rows:
            planned = int(entry.get("rows_total", 0))
        now = sum(cand["rows"].values()) + cand["rows_done"]
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
    from jobs.plan.dbt import build_reset_models

    console = console or Console()
    started = time.perf_counter()
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
    with command_lock(settings), _worker_pool(settings, workers, dry_run) as pool:
        # the plan as approved in the ledger, or a refusal before anything changes
        plan, approval = load_approved_plan(settings, plan_path) if plan_path else ({}, None)
        # other runners rebuild the same marts: read them before letting the next one build
        with dbt_lock(settings), connect(settings) as wh:
            scope = load_scope(settings, wh)  # a scope the reset cannot follow is refused here
            if districts:
                _known(wh, districts)
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
            candidates, not_due = _candidates(wh, year, as_of, districts)
            closed_year = [] if districts else closed_districts(wh, year, as_of)
            _annotate(wh, year, candidates)
            for cand in candidates:
                cand["approval"] = approval
            if not dry_run:
                try:
                    settle_year(wh, settings, year)
                except StoreError as exc:  # each district's pass says it again, and fails
                    Console(stderr=True).print(
                        f"eoy-reset: warning: {scrub(str(exc))}", highlight=False, soft_wrap=True
                    )
        refused = _plan_guard(plan_path, year, candidates, plan) if plan_path else {}
        if refused and not dry_run:  # for `status`, until a run completes them
            with connect(settings) as wh:
                record_refusals(wh, year, refused)
        runnable = [c for c in candidates if c["district_id"] not in refused]
        result: dict[str, Any] = {
            "as_of": as_of.isoformat(),
            "school_year": year,
            "dry_run": dry_run,
            "warehouse": settings.describe(),
            "districts": [],
            "not_due": not_due,
            "failed": [],
            "seconds_by_phase": {"build_models": round(built, 2)},
            "approval": approval,
        }
        for district, reason in refused.items():
            result["districts"].append(
                {"district_id": district, "status": "refused", "error": reason, "rows_deleted": 0}
            )
        for closed in closed_year:  # would be due, but the new year's rostering closed it
            result["districts"].append(
                {
                    "district_id": closed["district_id"],
                    "status": "skipped",
                    "error": closed["reason"],
                    "rows_deleted": 0,
                }
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
            Console(stderr=True).print("DuckDB allows one writer process: --workers is ignored.")
        began = time.perf_counter()
        total_rows = sum(sum(c["rows"].values()) for c in runnable)
        with (
            RunProgress(show_progress, len(runnable), total_rows) as progress,
            _Connections(settings) as connections,
        ):
            units = _units(runnable, pool.workers if pool is not None else 1)
            if pool is not None and len(units) > 1:
                done = pool.reset(units, year, progress)
            else:
                done = _run_units(connections, units, year, progress)
            progress.finish(done)
            by_district = {o["district_id"]: o for o in done}
            outcomes = [by_district[c["district_id"]] for c in runnable]
        result["seconds_by_phase"]["districts"] = round(time.perf_counter() - began, 2)
        for cand, outcome in zip(runnable, outcomes, strict=True):  # keys of the dry run
            outcome.setdefault("effective_reset_date", str(cand["effective_reset_date"]))
            outcome.setdefault("rows", cand["rows"])
            outcome.setdefault("resumes", cand["resume"])
        result["districts"].extend(outcomes)
        if any(o.get("status") == "completed" for o in outcomes):
            _sweep_shared(settings, scope, year)
    return _finish(result, started)


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


def _worker_pool(
    settings: Settings, workers: int, dry_run: bool
) -> contextlib.AbstractContextManager[WorkerPool | None]:
    """Worker processes for `--workers N` on PostgreSQL, started at once so that their
    imports overlap the dbt build; DuckDB allows one writer, so it has none."""
    if settings.target != "postgres" or workers <= 1 or dry_run:
        return contextlib.nullcontext()
    return WorkerPool(settings, workers, _Connections, _run_unit)


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


# DuckDB's memory during the districts' passes: every table streams through its snapshot in
# batches, so a small cache suffices; it kept the peak of a 20 M-row district at about 0.8 GiB
# (1.2 GiB with DuckDB's default) with no loss of speed.
#
# And one checkpoint when the run is over, not one every few batches: each rewrote the row
# groups the batch deleted from (commits stay durable in DuckDB's write-ahead log, replayed
# if the run is killed).
PASS_SETTINGS = {"memory_limit": "256MB", "checkpoint_threshold": "64GB"}


class _Connections:
    """One warehouse connection per thread that resets districts (the runner's, or a worker
    process's), kept for every district it resets."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._local = threading.local()
        self._all: list[Warehouse] = []
        self._lock = threading.Lock()

    def get(self) -> Warehouse:
        wh: Warehouse | None = getattr(self._local, "wh", None)
        if wh is not None and not wh.alive():  # the server ended it: the next district's own
            self.discard()
            wh = None
        if wh is None:
            wh = connect(self.settings)
            if wh.target == "duckdb":
                for name, value in PASS_SETTINGS.items():
                    wh.execute(f"set {name} = '{value}'")
            else:  # idle while its districts' passes run on the other session
                wh.query(KEEP_ALIVE_SQL)
            self._local.wh = wh
            with self._lock:
                self._all.append(wh)
        return wh

    def session(self) -> Warehouse:
        """This thread's session that deletes (PostgreSQL: the ADBC one; DuckDB: the one
        connection): the districts' locks are taken on it, so they guard the deletes."""
        wh = self.get()
        return wh.session() if isinstance(wh, PostgresWarehouse) else wh

    def discard(self) -> None:
        """Forget this thread's connection (it broke); the next district opens a new one."""
        wh = getattr(self._local, "wh", None)
        self._local.wh = None
        if wh is not None:
            with contextlib.suppress(Exception):
                wh.close()

    def __enter__(self) -> _Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        for wh in self._all:
            if wh.target == "duckdb":
                with contextlib.suppress(Exception):  # DuckDB's own, for what comes next
                    for name in PASS_SETTINGS:
                        wh.execute(f"reset {name}")
            with contextlib.suppress(Exception):
                wh.close()


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
# districts in batches
# ---------------------------------------------------------------------------------------
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
    connections: _Connections,
    units: list[list[dict[str, Any]]],
    year: int,
    progress: RunProgress,
) -> list[dict[str, Any]]:
    """Every unit's outcomes, in order. Batches pass BATCHES_IN_FLIGHT at a time, each on a
    thread and a connection of its own; a district alone (too large for a batch, or taken up
    again) passes with nothing beside it, so that its memory stays its own. A unit that
    raises stops the run: no other starts, the one beside it finishes (its transaction
    commits or rolls back whole), and the error is raised."""
    if sum(len(unit) > 1 for unit in units) <= 1:  # no batch beside another
        return [o for unit in units for o in _run_unit(connections, unit, year, progress)]
    done: dict[int, list[dict[str, Any]]] = {}
    running: dict[Future[list[dict[str, Any]]], int] = {}

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
    connections: _Connections, unit: list[dict[str, Any]], year: int, progress: RunProgress
) -> list[dict[str, Any]]:
    """A batch of districts, or one district alone: their outcomes."""
    if len(unit) == 1:
        return [_run_one(connections, unit[0], year, progress)]
    return _run_batch(connections, unit, year, progress)


def _run_batch(
    connections: _Connections, unit: list[dict[str, Any]], year: int, progress: RunProgress
) -> list[dict[str, Any]]:
    """The districts of a batch: each locked and its syncs paused (one commit), then one
    pass for all (`take_batch`). A district another runner took up meanwhile, or every one
    of a batch that rolled back over rows of one of them, goes on alone."""
    began = time.perf_counter()
    outcomes: dict[str, dict[str, Any]] = {}
    alone: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    try:
        wh = connections.get()
        session = connections.session()
        ids = [c["district_id"] for c in unit]
        locked = try_district_locks(session, ids, year)
        started = get_runs(wh, [d for d in ids if d in locked], year)
        # rostered for the next year since the run chose them: refused alone, below
        closed = rostered(
            wh,
            [d for d in ids if d in locked and d not in started],
            year + 1,
            current_scope().role_relation("rostering"),
        )
        release_district_locks(session, [*started, *closed], year)
    except Exception:  # the connection: each district alone says what it is
        connections.discard()
        return [_run_one(connections, c, year, progress) for c in unit]
    for cand in unit:
        district = cand["district_id"]
        if district not in locked:
            progress.district_started(district, 0)
            outcomes[district] = {
                "district_id": district,
                "rows_deleted": 0,
                "status": "skipped",
                "error": "held by another runner",
                "seconds": 0.0,
            }
            progress.district_done(district)
        elif district in started or district in closed:  # started since, or closed: alone
            alone.append(cand)
        else:
            held.append(cand)
    for cand in held:
        progress.district_started(cand["district_id"], sum(cand["rows"].values()))
    try:
        if held:
            alone += _pass_batch(connections, wh, held, year, progress, outcomes)
    finally:
        release_district_locks(session, [c["district_id"] for c in held], year)
        for cand in held:
            district = cand["district_id"]
            if district in outcomes:
                outcomes[district]["seconds"] = round(time.perf_counter() - began, 2)
                progress.district_done(district)
            else:  # it goes on alone, below
                progress.district_dropped(district)
    for cand in alone:
        outcomes[cand["district_id"]] = _run_one(connections, cand, year, progress)
    return [outcomes[c["district_id"]] for c in unit]


def _pass_batch(
    connections: _Connections,
    wh: Warehouse,
    held: list[dict[str, Any]],
    year: int,
    progress: RunProgress,
    outcomes: dict[str, dict[str, Any]],
) -> list[dict[str, Any]]:
    """pause_syncs, then the batch's pass; fills `outcomes`. Returns the districts to take
    alone (the batch rolled back over rows of one of them)."""
    settings = connections.settings
    ids = [c["district_id"] for c in held]
    verdicts: dict[str, dict[str, Any]] = {}

    def record(tx: Warehouse, details: dict[str, dict[str, Any]]) -> None:
        events: list[tuple[str, str, str, dict[str, Any]]] = []
        runs: dict[str, dict[str, Any]] = {}
        for district, detail in details.items():
            verdict, steps, values = _pass_ledger(district, MAIN, 0, [MAIN], detail)
            verdicts[district] = verdict
            events += [(district, *step) for step in steps]
            runs[district] = values
        record_events_of(tx, year, events)
        update_runs(tx, year, runs)

    try:
        for _ in held:
            fault_point("before:pause_syncs")
        with wh.transaction():
            start_runs(wh, year, [(c["district_id"], c["effective_reset_date"]) for c in held])
            paused = pause_syncs_of(wh, ids)
            record_events_of(
                wh,
                year,
                [
                    (
                        c["district_id"],
                        "pause_syncs",
                        "completed",
                        {"syncs_paused": paused[c["district_id"]]} | _approval_detail(c),
                    )
                    for c in held
                ],
            )
        for _ in held:
            fault_point("after:pause_syncs")
        fault_point("before:export")
        details = take_batch(
            wh,
            settings,
            ids,
            year,
            before_commit=record,
            progress=lambda district, table, n: progress.table(district, "snapshot", table, n),
        )
    except RetryAlone:
        return held
    except Exception as exc:
        step = exc.step if isinstance(exc, StepError) else "run"
        message = scrub(str(exc) if isinstance(exc, StepError) else _one_line(exc), settings.pg_dsn)
        for district in ids:
            outcomes[district] = {
                "district_id": district,
                "rows_deleted": 0,
                "status": "failed",
                "step": step,
                "error": message,
            }
            wh = _record_failure(connections, wh, district, year, step, message) or wh
        return []
    for district in ids:
        outcome: dict[str, Any] = {"district_id": district}
        detail = details[district]
        if isinstance(detail, StepError):
            message = scrub(str(detail), settings.pg_dsn)
            outcome.update(status="failed", step=detail.step, error=message, rows_deleted=0)
            _record_failure(connections, wh, district, year, detail.step, message)
        else:
            fault_point("after:complete")
            _hold_if_held(wh, settings, district, detail["path"])
            outcome.update(verdicts[district], snapshot_path=detail["path"], parts=[MAIN])
        outcomes[district] = outcome
    return []


# ---------------------------------------------------------------------------------------
# one district
# ---------------------------------------------------------------------------------------
def _run_one(
    connections: _Connections, cand: dict[str, Any], year: int, progress: RunProgress
) -> dict[str, Any]:
    settings = connections.settings
    district = cand["district_id"]
    began = time.perf_counter()
    outcome: dict[str, Any] = {"district_id": district, "rows_deleted": 0}
    wh: Warehouse | None = None
    session: Warehouse | None = None
    locked = False
    progress.district_started(district, sum(cand["rows"].values()))
    try:
        wh = connections.get()
        session = connections.session()
        locked = try_district_lock(session, district, year)
        if not locked:
            outcome.update(status="skipped", error="held by another runner")
        else:
            outcome.update(_steps(wh, settings, cand, year, progress))
    except Exception as exc:
        step = exc.step if isinstance(exc, StepError) else "run"
        message = scrub(
            str(exc) if isinstance(exc, StepError) else _one_line(exc),
            settings.pg_dsn,
        )
        outcome.update(status="failed", step=step, error=message)
        if locked:  # only the runner holding the district writes its ledger
            wh = _record_failure(connections, wh, district, year, step, message)
    finally:
        if locked and session is not None:
            release_district_lock(session, district, year)
        progress.district_done(district)
    outcome["seconds"] = round(time.perf_counter() - began, 2)
    log.info("district %s: %s", district, outcome.get("status"))
    return outcome


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return text if isinstance(exc, EoyError) else f"{type(exc).__name__}: {text}"


def _record_failure(
    connections: _Connections,
    wh: Warehouse | None,
    district: str,
    year: int,
    step: str,
    message: str,
) -> Warehouse | None:
    """Into the ledger; over a new connection (holding the district) when ours broke.
    Returns the connection that still holds the district's lock, if any."""
    if wh is not None:
        try:
            fail_run(wh, district, year, step, message)
            return wh
        except Exception:
            connections.discard()
    try:
        with connect(connections.settings) as fresh:
            if try_district_lock(fresh, district, year):
                fail_run(fresh, district, year, step, message)
                release_district_lock(fresh, district, year)
    except Exception:
        log.warning("district %s: could not record the failure in the ledger", district)
    return None


def _steps(
    wh: Warehouse, settings: Settings, cand: dict[str, Any], year: int, progress: RunProgress
) -> dict[str, Any]:
    district = cand["district_id"]
    run = get_run(wh, district, year)  # again, now that this runner holds the district
    if run is not None and run["status"] == "completed":
        return {"status": "skipped", "error": "already completed by another runner"}
    if run is not None and run["status"] == "restored" and cand.get("resume") != "restored":
        # an operator restored it after this run chose it: only naming it again resets it
        return {
            "status": "skipped",
            "error": "restored by an operator during this run: name it with --district "
            "to reset it again",
        }
    closed = rostered(wh, [district], year + 1, current_scope().role_relation("rostering"))
    if closed:  # rostered since this run chose it: refused before anything changes
        return {"status": "refused", "error": closed_reason(year, closed[district])}

    # pause_syncs: on its own commit, so no import starts while the rows are being taken
    fault_point("before:pause_syncs")
    with wh.transaction():
        start_run(wh, district, year, cand["effective_reset_date"], run)
        paused = {"syncs_paused": pause_syncs(wh, district)}
        record_event(
            wh, district, year, "pause_syncs", "completed", paused | _approval_detail(cand)
        )
    fault_point("after:pause_syncs")

    deletes = cycle_deletes(wh, district, year) if run is not None else []
    settle_parts(deletes, settings)  # a part whose last step a kill cut off goes in place
    if deletes and not sum(cand["rows"].values()):
        return _finish_without_pass(wh, district, year, deletes)

    if deletes:
        part = f"delta-{1 + max(delta_number(p) for p in all_delete_parts(wh, district, year))}"
    else:
        part = MAIN
    prior = sum(int(d.get("rows_total", 0)) for d in deletes)
    parts = [*(d.get("part") for d in deletes), part]
    verdict: dict[str, Any] = {}

    def record(tx: Warehouse, detail: dict[str, Any]) -> None:
        verdict.update(_record_pass(tx, district, year, part, prior, parts, detail))

    fault_point("before:export")
    detail = take_snapshot(
        wh,
        settings,
        district,
        year,
        part,
        before_commit=record,
        progress=lambda table, n: progress.table(district, "snapshot", table, n),
        expected=cand["rows"],
    )
    fault_point("after:complete")
    _hold_if_held(wh, settings, district, detail["path"])
    main = (
        detail["path"]
        if part == MAIN
        else next((d.get("path") for d in deletes if d.get("part") == MAIN), None)
    )
    return {**verdict, "snapshot_path": main, "parts": parts}


def _record_pass(
    tx: Warehouse,
    district: str,
    year: int,
    part: str,
    prior: int,
    parts: list[Any],
    detail: dict[str, Any],
) -> dict[str, Any]:
    """The ledger's events of a district's pass, written in its transaction; the verdict."""
    verdict, steps, values = _pass_ledger(district, part, prior, parts, detail)
    record_events(tx, district, year, steps)
    update_run(tx, district, year, **values)
    return verdict


def _pass_ledger(
    district: str, part: str, prior: int, parts: list[Any], detail: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, str, dict[str, Any]]], dict[str, Any]]:
    """What the ledger records of a district's pass: (the verdict: status, rows deleted, and
    the step and error when rows arrived meanwhile; its events; its run row's new values)."""
    verdict: dict[str, Any] = {}
    rows_deleted = prior + int(detail["rows_total"])
    left = {t: n for t, n in detail["remaining"].items() if n}
    sha = detail["manifest_sha256"]
    steps: list[tuple[str, str, dict[str, Any]]] = [
        ("export", "completed", {"part": part, "rows": detail["rows"], "manifest_sha256": sha}),
        ("verify", "completed", {"part": part, "manifest_sha256": sha}),
        ("delete", "completed", detail),
    ]
    values: dict[str, Any] = {"rows_deleted": rows_deleted}
    if part == MAIN:  # a delta leaves the main snapshot's path and sha256 in the run row
        values.update(snapshot_path=detail["path"], manifest_sha256=sha)
    if left:
        where = ", ".join(f"{t} {n}" for t, n in left.items())
        error = (
            f"{sum(left.values())} rows arrived after the snapshot ({where}): they stay; "
            "run again to snapshot and delete them as a delta"
        )
        steps.append(("check_retention", "failed", {"error": error, "remaining": left}))
        values.update(status="failed", finished_at=utcnow(), error=error)
        verdict.update(status="failed", step="check_retention", error=error)
    else:
        retained = {t: detail["retained_before"][t] for t in current_scope().retained}
        steps.append(("check_retention", "completed", {"retained": retained, "remaining": 0}))
        steps.append(("complete", "completed", {"rows_deleted": rows_deleted, "parts": parts}))
        values.update(status="completed", finished_at=utcnow(), error=None)
        verdict.update(status="completed", error=None)
    verdict.update(rows_deleted=rows_deleted)
    return verdict, steps, values


def _hold_if_held(wh: Warehouse, settings: Settings, district: str, location: str) -> None:
    """A district under legal hold: its new part gets the store's legal hold too. After the
    commit, so a store that refuses is a warning; `hold` again sets it."""
    if not is_object_root(location):
        return
    if not wh.scalar(
        "select count(*) from eoy_runner.legal_holds where district_id = %s", [district]
    ):
        return
    try:
        open_store(settings).set_legal_hold(location, True)
    except StoreError as exc:
        log.warning("district %s: legal hold not set on %s: %s", district, location, exc)
        Console(stderr=True).print(
            f"eoy-reset: warning: district {shown(district)} is under legal hold, but its new "
            f"snapshot's objects are not ({scrub(str(exc))}): run `eoy-reset hold` again",
            highlight=False,
            soft_wrap=True,
        )


def _finish_without_pass(
    wh: Warehouse, district: str, year: int, deletes: list[dict[str, Any]]
) -> dict[str, Any]:
    """Every row went in an earlier pass of this cycle: check and complete the district."""
    state = district_state(wh, district, with_remaining=True)
    left = {t: state[t][0] for t in current_scope().deleted if state[t][0]}
    if left:
        total = sum(left.values())
        where = ", ".join(f"{t} {n}" for t, n in left.items())
        raise StepError(
            "check_retention",
            f"{total} rows arrived after the snapshot ({where}): they stay; "
            "run again to snapshot and delete them as a delta",
        )
    before = deletes[-1].get("retained_before") or {}
    gone = sorted(t for t in current_scope().retained if t in before and state[t][0] < before[t][0])
    if gone:
        raise StepError(
            "check_retention",
            f"retained rows of the district are gone from {', '.join(gone)} since the delete",
        )
    rows_deleted = sum(int(d.get("rows_total", 0)) for d in deletes)
    parts = [d.get("part") for d in deletes]
    main = next((d for d in deletes if d.get("part") == MAIN), deletes[0])
    with wh.transaction():
        record_events(
            wh,
            district,
            year,
            [
                *((step, "skipped", {"reason": "done already"}) for step in PASS_STEPS),
                ("check_retention", "completed", {"retained": state, "remaining": 0}),
                ("complete", "completed", {"rows_deleted": rows_deleted, "parts": parts}),
            ],
        )
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
    return {
        "status": "completed",
        "rows_deleted": rows_deleted,
        "snapshot_path": main.get("path"),
        "parts": parts,
        "error": None,
    }


# ---------------------------------------------------------------------------------------
# restore
# ---------------------------------------------------------------------------------------
def restore_district(settings: Settings, district_id: str, school_year: int) -> dict[str, Any]:
    from jobs.reset.restore import restore

    with command_lock(settings):
        return restore(settings, district_id, school_year)
