"""The warehouse connections of the threads that reset districts, set up for the passes."""

from __future__ import annotations

import contextlib
import threading

from jobs.config import Settings
from jobs.warehouse.connection import KEEP_ALIVE_SQL, PostgresWarehouse, Warehouse, connect

# DuckDB's memory during the districts' passes: every table streams through its snapshot in
# batches, so a small cache suffices; it kept the peak of a 20 M-row district at about 0.8 GiB
# (1.2 GiB with DuckDB's default) with no loss of speed.
#
# And one checkpoint when the run is over, not one every few batches: each rewrote the row
# groups the batch deleted from (commits stay durable in DuckDB's write-ahead log, replayed
# if the run is killed).
PASS_SETTINGS = {"memory_limit": "256MB", "checkpoint_threshold": "64GB"}


class Connections:
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

    def __enter__(self) -> Connections:
        return self

    def __exit__(self, *exc: object) -> None:
        for wh in self._all:
            if wh.target == "duckdb":
                with contextlib.suppress(Exception):  # DuckDB's own, for what comes next
                    for name in PASS_SETTINGS:
                        wh.execute(f"reset {name}")
            with contextlib.suppress(Exception):
                wh.close()
