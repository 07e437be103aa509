"""Who may reset what at once (issue: concurrency).

DuckDB: one eoy-reset command at a time per warehouse file, by an exclusive `flock` on
`<warehouse>.lock` held for the whole command. PostgreSQL: any number of runners on any
machines; each district (whatever the school year) is held by a session advisory lock for as
long as it is worked on, and dbt builds take turns under another advisory lock.
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
from jobs.warehouse.connection import Warehouse


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
    """One district's try_district_locks: whether it is now held."""
    return district_id in try_district_locks(wh, [district_id], school_year)


def release_district_lock(wh: Warehouse, district_id: str, school_year: int) -> None:
    release_district_locks(wh, [district_id], school_year)


def try_district_locks(wh: Warehouse, districts: list[str], school_year: int) -> set[str]:
    """PostgreSQL: take each district's advisory lock on this connection if free, in one
    statement; the districts now held (on DuckDB, every one: its file lock serialises)."""
    if wh.target != "postgres" or not districts:
        return set(districts)
    found = wh.query(
        f"select d, pg_try_advisory_lock({_key_sql('k')}) "
        "from unnest(%s::text[], %s::text[]) as t (d, k)",
        [districts, [district_key(d, school_year) for d in districts]],
    )
    return {str(d) for d, locked in found if locked}


def release_district_locks(wh: Warehouse, districts: list[str], school_year: int) -> None:
    """Release the districts' locks held on this connection, in one statement."""
    if wh.target != "postgres" or not districts:
        return
    # a dead connection has released its locks already
    with contextlib.suppress(Exception):
        wh.query(
            f"select pg_advisory_unlock({_key_sql('k')}) from unnest(%s::text[]) k",
            [[district_key(d, school_year) for d in districts]],
        )


def wait_district_lock(
    wh: Warehouse, district_id: str, school_year: int, timeout: float = 60.0
) -> None:
    """PostgreSQL: wait for a district held by a runner (restore waits for a run to end)."""
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
        wh.scalar(f"select pg_advisory_lock({_key_sql('%s')})", [DBT_LOCK_NAME])
        try:
            yield
        finally:
            wh.scalar(f"select pg_advisory_unlock({_key_sql('%s')})", [DBT_LOCK_NAME])
