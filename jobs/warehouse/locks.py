"""Who may reset what at once.

DuckDB: one eoy-reset command at a time per warehouse file, by an exclusive `flock` on
`<warehouse>.lock` kept for the whole command. PostgreSQL: any number of runners on any
machines; each district (whatever the school year) is locked by a session advisory lock for as
long as it is worked on, and dbt builds take turns under another advisory lock.

A session's advisory lock guards only what that session does: it goes when the session ends,
while another session of the same runner may still be at work. So a district's lock is taken
on the session that changes its rows (the runner's ADBC session, `PostgresWarehouse.session`;
restore and the roster import work on the session they lock on), and the transaction that
deletes takes it again for itself (`lock_in_transaction`): it commits only while it holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.config import Settings
from jobs.errors import EoyError
from jobs.warehouse.connection import KEEP_ALIVE_SQL, AdbcSession, Warehouse


def _key_sql(text: str) -> str:
    """The advisory lock's 64-bit key of a lock name (an SQL text expression)."""
    return f"('x' || substr(md5({text}), 1, 16))::bit(64)::bigint"


DBT_LOCK_NAME = "eoy-reset:dbt-build"


class LockError(EoyError):
    """Another eoy-reset process holds what this one needs."""


def lock_path(settings: Settings) -> Path:
    path = Path(settings.duckdb_path)
    return path.with_name(path.name + ".lock")


@contextmanager
def command_lock(settings: Settings) -> Iterator[None]:
    """DuckDB: hold the warehouse for this whole command, or refuse at once."""
    if settings.target != "duckdb":
        yield
        return
    path = lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockError(
                f"another eoy-reset run holds the warehouse {settings.duckdb_path}: "
                "wait for it to finish, then run again"
            ) from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def district_key(district_id: str, school_year: int) -> str:
    """One lock a district, whatever the school year: a restore of last year's reset, a run
    of this year's and a roster import never touch the same district at once."""
    del school_year  # the year is in callers' signatures for their messages, not the key
    return f"eoy-reset:district:{district_id}"


def try_district_lock(wh: Warehouse, district_id: str, school_year: int) -> bool:
    """One district's try_district_locks: whether this session has it locked now."""
    return district_id in try_district_locks(wh, [district_id], school_year)


def release_district_lock(wh: Warehouse, district_id: str, school_year: int) -> None:
    release_district_locks(wh, [district_id], school_year)


def _literal(text: str) -> str:
    """A PostgreSQL string literal: lock statements run on psycopg and on ADBC alike."""
    if "\x00" in text:
        raise LockError("a district id with a NUL character cannot exist in PostgreSQL")
    return "'" + text.replace("'", "''") + "'"


def _districts_values(districts: list[str], school_year: int) -> str:
    rows = ", ".join(
        f"({_literal(d)}, {_literal(district_key(d, school_year))})" for d in districts
    )
    return f"(values {rows}) as t (d, k)"


def try_district_locks(wh: Warehouse, districts: list[str], school_year: int) -> set[str]:
    """PostgreSQL: take each district's advisory lock on this session if free, in one
    statement; the districts it has locked now (on DuckDB, every one: its file lock serialises)."""
    if wh.target != "postgres" or not districts:
        return set(districts)
    found = wh.query(
        f"select d, pg_try_advisory_lock({_key_sql('k')}) "
        f"from {_districts_values(districts, school_year)}"
    )
    _end_statement(wh)
    return {str(d) for d, locked in found if locked}


def release_district_locks(wh: Warehouse, districts: list[str], school_year: int) -> None:
    """Release the districts' locks this session has, in one statement."""
    if wh.target != "postgres" or not districts:
        return
    # a dead connection has released its locks already
    with contextlib.suppress(Exception):
        wh.query(
            f"select pg_advisory_unlock({_key_sql('k')}) "
            f"from {_districts_values(districts, school_year)}"
        )
        _end_statement(wh)


def lock_in_transaction(tx: Warehouse, districts: list[str], school_year: int) -> set[str]:
    """Inside the transaction that changes the districts' rows: each district's lock for this
    transaction, granted when this session has the district locked already or nobody has (one
    statement). The districts locked; another session's district is not."""
    if tx.target != "postgres" or not districts:
        return set(districts)
    found = tx.query(
        f"select d, pg_try_advisory_xact_lock({_key_sql('k')}) "
        f"from {_districts_values(districts, school_year)}"
    )
    return {str(d) for d, locked in found if locked}


def _end_statement(wh: Warehouse) -> None:
    """On a session that is not in autocommit (ADBC), end the statement's transaction: a
    session lock outlives it, and the next pass begins a transaction of its own."""
    if isinstance(wh, AdbcSession):
        wh.con.commit()


def wait_district_lock(
    wh: Warehouse, district_id: str, school_year: int, timeout: float = 60.0
) -> None:
    """PostgreSQL: wait for a district another runner has locked (restore waits for a run to
    end)."""
    deadline = time.monotonic() + timeout
    while not try_district_lock(wh, district_id, school_year):
        if time.monotonic() > deadline:
            raise LockError(
                f"district {district_id!r} is being worked on by another eoy-reset process "
                "(a run, restore or roster import): try again when it has finished"
            )
        time.sleep(0.5)


@contextmanager
def dbt_lock(settings: Settings) -> Iterator[None]:
    """PostgreSQL: one dbt build at a time across runners (they rebuild the same tables)."""
    if settings.target != "postgres":
        yield
        return
    from jobs.warehouse.connection import connect

    with connect(settings, require_init=False) as wh:
        wh.query(KEEP_ALIVE_SQL)  # idle through the whole build: never ended for it
        wh.scalar(f"select pg_advisory_lock({_key_sql('%s')})", [DBT_LOCK_NAME])
        try:
            yield
        finally:
            # a session the server ended anyway has released the lock with it
            with contextlib.suppress(Exception):
                wh.scalar(f"select pg_advisory_unlock({_key_sql('%s')})", [DBT_LOCK_NAME])
