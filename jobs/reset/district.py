"""A district's way through a run, alone or in a batch: its lock, `pause_syncs` on its own
commit, then its pass (`jobs.reset.onepass` alone, `jobs.reset.batch` for a batch, both through
the one commit sequence of `jobs.reset.commit`) with the ledger's events written in the pass's
transaction, and its outcome. A failure is recorded against the step it failed at.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from rich.console import Console

from jobs.config import Settings, scrub
from jobs.errors import EoyError
from jobs.faults import fault_point
from jobs.plan.approval import approval_detail
from jobs.reset.batch import take_batch
from jobs.reset.choose import shown
from jobs.reset.commit import LOCKED_BY_ANOTHER, RetryAlone, StepError
from jobs.reset.connections import Connections
from jobs.reset.ledger_entries import PassLedger, completed_without_pass, pass_ledger
from jobs.reset.onepass import district_state, take_snapshot
from jobs.reset.result import DistrictOutcome
from jobs.reset.syncs import pause_syncs, pause_syncs_of
from jobs.reset.view import RunProgress
from jobs.scope import current_scope
from jobs.snapshot.store import StoreError, is_object_root, open_store
from jobs.snapshot.writer import MAIN, delta_number, settle_parts
from jobs.warehouse.connection import Warehouse, connect
from jobs.warehouse.ledger import (
    all_delete_parts,
    cycle_deletes,
    fail_run,
    get_run,
    get_runs,
    record_event,
    record_events,
    record_events_of,
    start_run,
    start_runs,
    update_run,
    update_runs,
)
from jobs.warehouse.locks import (
    release_district_lock,
    release_district_locks,
    try_district_lock,
    try_district_locks,
)
from jobs.warehouse.rostering import closed_reason, rostered

log = logging.getLogger("eoy_reset.runner")


def failure(exc: BaseException, settings: Settings) -> tuple[str, str]:
    """The step a failure is recorded against and its one line (no credentials in it)."""
    if isinstance(exc, StepError):
        return exc.step, scrub(str(exc), settings.pg_dsn)
    return "run", scrub(_one_line(exc), settings.pg_dsn)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return text if isinstance(exc, EoyError) else f"{type(exc).__name__}: {text}"


# ---------------------------------------------------------------------------------------
# a batch
# ---------------------------------------------------------------------------------------
def run_batch(
    connections: Connections, unit: list[dict[str, Any]], year: int, progress: RunProgress
) -> list[DistrictOutcome]:
    """The districts of a batch: each locked and its syncs paused (one commit), then one
    pass for all (`take_batch`). A district another runner took up meanwhile, or every one
    of a batch that rolled back over rows of one of them, goes on alone."""
    began = time.perf_counter()
    outcomes: dict[str, DistrictOutcome] = {}
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
        return [run_one(connections, c, year, progress) for c in unit]
    for cand in unit:
        district = cand["district_id"]
        if district not in locked:
            progress.district_started(district, 0)
            outcomes[district] = DistrictOutcome(
                district, "skipped", error=LOCKED_BY_ANOTHER, seconds=0.0
            )
            progress.district_done(district)
        elif district in started or district in closed:  # started since, or closed: alone
            alone.append(cand)
        else:
            held.append(cand)
    for cand in held:
        progress.district_started(cand["district_id"], sum(cand["rows"].values()))
    try:
        if held:
            outcomes.update(_pass_batch(connections, wh, held, year, progress))
    except RetryAlone:  # rolled back over rows of one of them: each alone, below
        alone += held
    finally:
        release_district_locks(session, [c["district_id"] for c in held], year)
        seconds = round(time.perf_counter() - began, 2)  # the batch's, the same for each
        for cand in held:
            district = cand["district_id"]
            if district in outcomes:
                outcomes[district].seconds = seconds
                progress.district_done(district)
            else:  # it goes on alone, below
                progress.district_dropped(district)
    for cand in alone:
        outcomes[cand["district_id"]] = run_one(connections, cand, year, progress)
    return [outcomes[c["district_id"]] for c in unit]


def _pause_batch(wh: Warehouse, held: list[dict[str, Any]], year: int) -> None:
    """The batch's run rows begun and its districts' syncs paused, in one commit."""
    for _ in held:
        fault_point("before:pause_syncs")
    with wh.transaction():
        start_runs(wh, year, [(c["district_id"], c["effective_reset_date"]) for c in held])
        paused = pause_syncs_of(wh, [c["district_id"] for c in held])
        events = [
            (
                c["district_id"],
                "pause_syncs",
                "completed",
                {"syncs_paused": paused[c["district_id"]]} | approval_detail(c),
            )
            for c in held
        ]
        record_events_of(wh, year, events)
    for _ in held:
        fault_point("after:pause_syncs")


def _pass_batch(
    connections: Connections,
    wh: Warehouse,
    held: list[dict[str, Any]],
    year: int,
    progress: RunProgress,
) -> dict[str, DistrictOutcome]:
    """pause_syncs, then the batch's pass: each district's outcome. Raises RetryAlone when
    the batch rolled back over rows of one of its districts (each is then taken alone)."""
    settings = connections.settings
    ids = [c["district_id"] for c in held]
    ledgers: dict[str, PassLedger] = {}

    def record(tx: Warehouse, details: dict[str, dict[str, Any]]) -> None:
        for district, detail in details.items():
            ledgers[district] = pass_ledger(district, MAIN, 0, [MAIN], detail)
        record_events_of(
            tx, year, [(d, *step) for d, ledger in ledgers.items() for step in ledger.steps]
        )
        update_runs(tx, year, {d: ledger.values for d, ledger in ledgers.items()})

    outcomes: dict[str, DistrictOutcome] = {}
    try:
        _pause_batch(wh, held, year)
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
        raise
    except Exception as exc:
        step, message = failure(exc, settings)
        for district in ids:
            outcomes[district] = DistrictOutcome(district)
            outcomes[district].fail(step, message)
            wh = _record_failure(connections, wh, district, year, step, message) or wh
        return outcomes
    for district in ids:
        detail = details[district]
        if isinstance(detail, StepError):
            step, message = failure(detail, settings)
            outcomes[district] = DistrictOutcome(district)
            outcomes[district].fail(step, message)
            _record_failure(connections, wh, district, year, step, message)
            continue
        fault_point("after:complete")
        _hold_if_held(wh, settings, district, detail["path"])
        outcome = ledgers[district].outcome
        outcome.snapshot_path, outcome.parts = detail["path"], [MAIN]
        outcomes[district] = outcome
    return outcomes


# ---------------------------------------------------------------------------------------
# one district
# ---------------------------------------------------------------------------------------
def run_one(
    connections: Connections, cand: dict[str, Any], year: int, progress: RunProgress
) -> DistrictOutcome:
    """A district alone: its lock, then its steps; its outcome, a failure recorded."""
    settings = connections.settings
    district = cand["district_id"]
    began = time.perf_counter()
    outcome = DistrictOutcome(district)
    wh: Warehouse | None = None
    session: Warehouse | None = None
    locked = False
    progress.district_started(district, sum(cand["rows"].values()))
    try:
        wh = connections.get()
        session = connections.session()
        locked = try_district_lock(session, district, year)
        if not locked:
            outcome = DistrictOutcome(district, "skipped", error=LOCKED_BY_ANOTHER)
        else:
            outcome = _steps(wh, settings, cand, year, progress)
    except Exception as exc:
        step, message = failure(exc, settings)
        outcome.fail(step, message)
        if locked:  # only the runner holding the district writes its ledger
            wh = _record_failure(connections, wh, district, year, step, message)
    finally:
        if locked and session is not None:
            release_district_lock(session, district, year)
        progress.district_done(district)
    outcome.seconds = round(time.perf_counter() - began, 2)
    log.info("district %s: %s", district, outcome.status)
    return outcome


def _record_failure(
    connections: Connections,
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


def _not_to_run(
    wh: Warehouse, cand: dict[str, Any], year: int, run: dict[str, Any] | None
) -> DistrictOutcome | None:
    """Why a district the run chose is no longer to be reset, now that this runner holds
    it (another runner completed it, an operator restored it, the new year was rostered)."""
    district = cand["district_id"]
    if run is not None and run["status"] == "completed":
        return DistrictOutcome(district, "skipped", error="already completed by another runner")
    if run is not None and run["status"] == "restored" and cand.get("resume") != "restored":
        # an operator restored it after this run chose it: only naming it again resets it
        return DistrictOutcome(
            district,
            "skipped",
            error="restored by an operator during this run: name it with --district "
            "to reset it again",
        )
    closed = rostered(wh, [district], year + 1, current_scope().role_relation("rostering"))
    if closed:  # rostered since this run chose it: refused before anything changes
        return DistrictOutcome(district, "refused", error=closed_reason(year, closed[district]))
    return None


def _pause(wh: Warehouse, cand: dict[str, Any], year: int, run: dict[str, Any] | None) -> None:
    """pause_syncs: on its own commit, so no import starts while the rows are being taken."""
    district = cand["district_id"]
    fault_point("before:pause_syncs")
    with wh.transaction():
        start_run(wh, district, year, cand["effective_reset_date"], run)
        paused = {"syncs_paused": pause_syncs(wh, district)}
        record_event(wh, district, year, "pause_syncs", "completed", paused | approval_detail(cand))
    fault_point("after:pause_syncs")


def _steps(
    wh: Warehouse, settings: Settings, cand: dict[str, Any], year: int, progress: RunProgress
) -> DistrictOutcome:
    district = cand["district_id"]
    run = get_run(wh, district, year)  # again, now that this runner holds the district
    stop = _not_to_run(wh, cand, year, run)
    if stop is not None:
        return stop
    _pause(wh, cand, year, run)

    deletes = cycle_deletes(wh, district, year) if run is not None else []
    settle_parts(deletes, settings)  # a part whose last step a kill cut off goes in place
    if deletes and not sum(cand["rows"].values()):
        return _finish_without_pass(wh, district, year, deletes)

    if deletes:
        part = f"delta-{1 + max(delta_number(p) for p in all_delete_parts(wh, district, year))}"
    else:
        part = MAIN
    prior = sum(int(d.get("rows_total", 0)) for d in deletes)
    parts = [*(str(d["part"]) for d in deletes), part]
    ledgers: list[PassLedger] = []

    def record(tx: Warehouse, detail: dict[str, Any]) -> None:
        ledger = pass_ledger(district, part, prior, parts, detail)
        record_events(tx, district, year, ledger.steps)
        update_run(tx, district, year, **ledger.values)
        ledgers.append(ledger)

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
    outcome = ledgers[-1].outcome
    outcome.snapshot_path = (
        detail["path"]
        if part == MAIN
        else next((d.get("path") for d in deletes if d.get("part") == MAIN), None)
    )
    outcome.parts = parts
    return outcome


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
) -> DistrictOutcome:
    """Every row went in an earlier pass of this cycle: check and complete the district."""
    state = district_state(wh, district, with_remaining=True, school_year=year)
    ledger = completed_without_pass(district, state, deletes)
    with wh.transaction():
        record_events(wh, district, year, ledger.steps)
        update_run(wh, district, year, **ledger.values)
    return ledger.outcome
