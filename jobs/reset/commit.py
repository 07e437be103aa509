"""The commit sequence of a pass, the one way district rows are deleted: for one district
alone (`jobs.reset.onepass`) and for a batch (`jobs.reset.batch`) alike.

One pass is one transaction, on the session that deletes:
1. the transaction takes each district's lock for itself (`lock_in_transaction`): granted
   only if this session holds the district or nobody does, so no other pass of it is alive;
2. each district's part begins in staging: what a dead pass of the part left there is
   removed, and a staging whose delete committed is put in place instead (the part is done);
3. the pass's own work takes the rows, writes and checks the files, writes the manifests and
   syncs them (`Work`);
4. the ledger's events are written in the same transaction (`before_commit`);
5. COMMIT. When the driver loses the server's answer, a fresh connection reads whether the
   pass's delete events committed, and until it knows nothing is discarded;
6. each part goes in place (`publish`). A failure before the commit discards the staging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from jobs.config import Settings
from jobs.errors import EoyError, first_line
from jobs.faults import fault_point
from jobs.scope import current_scope
from jobs.scope.sql import fixed_owners_names, fixed_owners_sql, owners_fixed
from jobs.snapshot.store import Pending, SnapshotStore, open_store
from jobs.snapshot.writer import DeleteError, VerifyError, WriteError, writing
from jobs.warehouse.connection import DuckDBWarehouse, PostgresWarehouse, Warehouse, connect
from jobs.warehouse.ledger import committed_deletes
from jobs.warehouse.locks import lock_in_transaction
from jobs.warehouse.rostering import closed_reason, rostered

# Where the warehouse's errors come from (ADBC's stream reports through pyarrow).
# Our own lock on a district was taken by another runner: this district is left to it.
LOCKED_BY_ANOTHER = "locked by another runner"

DATABASE_MODULES = ("adbc_driver_manager", "duckdb", "psycopg", "pyarrow", "_duckdb")


class StepError(EoyError):
    """A district's step failed (export, verify, delete, check_retention, complete); the
    message is one line for the operator and the ledger."""

    def __init__(self, step: str, message: str):
        super().__init__(message)
        self.step = step


class RetryAlone(EoyError):
    """A batch rolled back over something that belongs to one of its districts: take them
    one by one, and only that district fails."""


class CommitUnknown(EoyError):
    """COMMIT raised: the server may have committed before the connection failed."""


@dataclass
class Phase:
    """The ledger step a pass is at: the step a failure is recorded against."""

    step: str = "export"


# a pass's work, inside its transaction: (tx, each district's pending part, phase) -> the
# delete's detail of each district (`pass_detail` and what the work adds)
Work = Callable[[Warehouse, dict[str, Pending], Phase], dict[str, dict[str, Any]]]
# the runner's ledger events, written in the pass's transaction
BeforeCommit = Callable[[Warehouse, dict[str, dict[str, Any]]], None]


@contextmanager
def district_transaction(wh: Warehouse, reading_only: bool = False) -> Iterator[Warehouse]:
    """One transaction for a pass: the runner's DuckDB connection, or the PostgreSQL
    warehouse's ADBC session (READ COMMITTED: a delete waits for a row another session is
    updating and takes its newest value; a snapshot that deletes nothing reads every table at
    one point in time, REPEATABLE READ). A COMMIT that raises is CommitUnknown."""
    tx: Warehouse = wh.session() if isinstance(wh, PostgresWarehouse) else wh
    assert isinstance(tx, DuckDBWarehouse) or tx.target == "postgres"
    tx.begin()
    try:
        if tx.target == "postgres":
            if reading_only:
                tx.execute("set transaction isolation level repeatable read, read only")
            tx.execute("set local standard_conforming_strings = on")
        yield tx
    except BaseException:
        with suppress(Exception):
            tx.rollback()
        raise
    try:
        tx.commit()
        fault_point("commit:ack")
    except Exception as exc:
        raise CommitUnknown(first_line(exc)) from exc


def run_pass(
    wh: Warehouse,
    settings: Settings,
    school_year: int,
    parts: dict[str, str],
    work: Work,
    *,
    delete: bool = True,
    before_commit: BeforeCommit | None = None,
    batch: bool = False,
) -> dict[str, dict[str, Any] | StepError]:
    """Run a pass over the districts' parts (district -> part) in one transaction: the
    commit sequence above. Returns each district's delete detail or, after the commit, the
    StepError of a part that could not be put in place (a rerun puts it in place). Before
    the commit a failure is raised: a StepError, or RetryAlone for a batch."""
    store = open_store(settings)
    pendings: dict[str, Pending] = {}
    details: dict[str, dict[str, Any]] = {}
    phase = Phase()
    try:
        with district_transaction(wh, reading_only=not delete) as tx:
            if delete:
                _lock(tx, list(parts), school_year, batch)
                _year_open(tx, list(parts), school_year, batch)
            with writing(store):
                store.begin_all(
                    school_year,
                    parts,
                    lambda shas: _committed_in(tx, school_year, shas),
                    pendings,
                )
            with _owners_fixed(tx, list(parts), school_year, delete):
                details = work(tx, pendings, phase)
            # completion is recorded by events that commit with the delete: a kill here is a
            # kill before it
            fault_point("before:complete")
            if before_commit is not None:
                before_commit(tx, details)
            fault_point("commit:delete")
    except CommitUnknown as exc:
        if not _committed_after_all(settings, school_year, details, str(exc)):
            _discard(pendings)
            failed = DeleteError(
                f"the transaction did not commit ({exc}): rolled back, nothing was deleted; "
                "run again"
            )
            raise _as_failure(failed, "delete", batch) from None
    except BaseException as exc:
        _discard(pendings)
        if not _mapped(exc):
            raise  # not the warehouse's nor the snapshot's: a bug, raised as it is
        raise _as_failure(exc, phase.step, batch) from None
    fault_point("after:commit")
    return _publish(store, pendings, details)


@contextmanager
def _owners_fixed(
    tx: Warehouse, districts: list[str], school_year: int, delete: bool
) -> Iterator[None]:
    """The pass reads the owners of every `rows:` table, and the districts completed for the
    school year, as they were before its first delete: a model that is a view may read
    tables the pass deletes from before it reaches that table, and a batch beside it may
    complete between two of its deletes. One statement per table for the whole batch; the
    copies go with the pass."""
    scope = current_scope()
    statements = fixed_owners_sql(scope, districts, tx.target, school_year) if delete else []
    if not statements:
        yield
        return
    for statement in statements:
        tx.execute(statement)
    with owners_fixed(scope):
        yield
    if tx.target != "postgres":  # PostgreSQL drops them at the commit
        for name in fixed_owners_names(scope):
            tx.execute(f"drop table if exists {name}")


def _lock(tx: Warehouse, districts: list[str], school_year: int, batch: bool) -> None:
    locked = lock_in_transaction(tx, districts, school_year)
    if len(locked) == len(districts):
        return
    message = LOCKED_BY_ANOTHER
    if batch:
        raise RetryAlone(message)
    raise StepError("export", f"{message}: it was taken while this runner waited; run again")


def _year_open(tx: Warehouse, districts: list[str], school_year: int, batch: bool) -> None:
    """The last word before any row goes: no district's rostering for the next school year
    has completed (its live rows would be next year's)."""
    closed = rostered(tx, districts, school_year + 1, current_scope().role_relation("rostering"))
    if not closed:
        return
    district, when = next(iter(closed.items()))
    if batch:
        raise RetryAlone(f"district {district!r}: {closed_reason(school_year, when)}")
    raise StepError("export", f"{closed_reason(school_year, when)}: nothing was deleted")


def _committed_in(tx: Warehouse, school_year: int, shas: list[str]) -> set[str]:
    return {str(d.get("manifest_sha256")) for d in committed_deletes(tx, school_year, shas)}


def _committed_after_all(
    settings: Settings, school_year: int, details: dict[str, dict[str, Any]], lost: str
) -> bool:
    """After a COMMIT that raised: whether the pass's delete events committed, read on a
    fresh connection. When that cannot be read either, nothing is discarded and the
    district fails: the next run puts the parts in place if they committed (`settle_year`),
    or removes them as a dead pass's staging if they did not."""
    shas = [str(d["manifest_sha256"]) for d in details.values() if d.get("manifest_sha256")]
    if not shas:
        return False  # no delete events in this pass (an export): nothing committed matters
    try:
        with connect(settings) as fresh:
            found = _committed_in(fresh, school_year, shas)
    except Exception as exc:
        raise StepError(
            "complete",
            f"the warehouse lost its answer to the commit ({lost}) and could not be asked "
            f"what happened ({first_line(exc)}): the snapshot is kept; run again to finish",
        ) from None
    return bool(found)


def _discard(pendings: dict[str, Pending]) -> None:
    for pending in pendings.values():
        with suppress(Exception):
            pending.discard()


def _publish(
    store: SnapshotStore, pendings: dict[str, Pending], details: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any] | StepError]:
    """After the commit: each part in place, or its district's StepError (a rerun puts it in
    place: the ledger has its staging name and manifest sha256)."""
    out: dict[str, dict[str, Any] | StepError] = {}
    for district, pending in pendings.items():
        try:
            with writing(store):
                pending.publish()
            out[district] = details[district]
        except Exception as exc:
            out[district] = _after_commit(exc)
    return out


def _after_commit(exc: Exception) -> StepError:
    return StepError(
        "complete",
        f"the district's delete committed, but its snapshot could not be put in place "
        f"({first_line(exc)}): run again to finish",
    )


def foreign_key_violation(exc: BaseException) -> bool:
    """The warehouse refused the delete: rows that arrived since refer to the rows it takes."""
    return "foreign key" in str(exc).lower()


def _from_database(exc: BaseException) -> bool:
    # file-system errors of the snapshot are WriteErrors by now: an OSError left is ADBC's
    # stream reporting the server's error through pyarrow
    module = type(exc).__module__.split(".")[0]
    return module in DATABASE_MODULES or isinstance(exc, OSError)


def _mapped(exc: BaseException) -> bool:
    """Whether a failure is the pass's to name (else a bug, raised as it is)."""
    return isinstance(exc, EoyError) or (isinstance(exc, Exception) and _from_database(exc))


# what drivers say when the connection itself is gone (the server restarted, a terminated
# backend, a cut network): every district's failure, not one district's rows
_LOST_MARKERS = (
    "server closed the connection",
    "terminating connection",
    "connection refused",
    "no connection to the server",
    "connection is closed",
    "could not receive data",
    "could not send data",
)


def connection_lost(exc: BaseException) -> bool:
    """Whether a failure is the connection's (SQLSTATE class 08, an administrator's shutdown
    57P, or the words drivers use for it) rather than something in the rows."""
    if isinstance(exc, ConnectionError):
        return True
    sqlstate = str(getattr(exc, "sqlstate", None) or "")
    if sqlstate.startswith(("08", "57P")):
        return True
    text = str(exc).lower()
    return any(marker in text for marker in _LOST_MARKERS)


def _as_failure(exc: BaseException, step: str, batch: bool) -> EoyError:
    """A failure before the commit as the ledger step it failed and one line. In a batch,
    RetryAlone unless the connection itself was lost: it may belong to one district's rows
    (a file, a foreign key, a value), so each district is taken alone at once and only the
    one it belongs to fails."""
    if isinstance(exc, StepError | RetryAlone):
        return exc
    if batch and not connection_lost(exc):
        return RetryAlone(first_line(exc))
    if isinstance(exc, VerifyError):
        return StepError("verify", str(exc))
    if isinstance(exc, DeleteError):
        return StepError("delete", str(exc))
    if isinstance(exc, WriteError):
        return StepError("export", str(exc))
    if isinstance(exc, EoyError):
        return StepError(step, str(exc))
    if foreign_key_violation(exc):
        return StepError(
            "delete",
            "rows that arrived after the snapshot refer to its rows "
            f"({first_line(exc)}): rolled back, nothing was deleted; "
            "run again to take a new snapshot",
        )
    return StepError(
        "delete",
        f"the district's transaction failed and was rolled back ({first_line(exc)}): "
        "nothing was deleted; run again",
    )
