"""`run --workers N` on PostgreSQL: N worker processes, each resetting districts on its own
connections under its own interpreter.

A district's pass is mostly Python (fingerprints' glue, the ledger, files and manifests) and
Python holds one lock per interpreter: two worker threads passed about 1.05 cores. Processes
use both. The workers are started before the dbt build (their imports overlap it) and die
with the runner: a kill of the runner kills them (Linux's parent-death signal), so a rerun
finds what it finds after any kill. A worker that dies (killed, out of memory) stops the run;
the districts it had in hand or never started are reported failed with one line, and running
again finishes them, as after any kill.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor
from multiprocessing.util import Finalize
from typing import Any

from jobs.config import Settings
from jobs.reset.view import RunProgress
from jobs.scope import Scope, current_scope, use_scope

PR_SET_PDEATHSIG = 1

_connections: Any = None
_events: Any = None


def _die_with_parent(parent: int) -> None:
    """Linux: this process gets SIGKILL when the runner's thread that started it ends."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the runner died before the signal was set
        os._exit(1)


def _start(settings: Settings, events: Any, parent: int, connections: type) -> None:
    """A worker's start: its connections, kept for every district it resets."""
    global _connections, _events
    _die_with_parent(parent)
    _connections = connections(settings)
    _events = events
    Finalize(_connections, _connections.__exit__, args=(None, None, None), exitpriority=10)


def _ready() -> int:
    return os.getpid()


class _Relay:
    """A worker's progress: every call goes to the runner's progress display."""

    def __getattr__(self, name: str) -> Any:
        def send(*args: Any) -> None:
            _events.put((name, args))

        return send


def _reset(
    run_unit: RunUnit, unit: list[dict[str, Any]], year: int, scope: Scope
) -> list[dict[str, Any]]:
    use_scope(scope)  # the runner's, as it loaded and checked it
    return run_unit(_connections, unit, year, _Relay())


# the runner's (connections, districts, school year, progress) -> their outcomes: a batch of
# districts or one alone; passed in, so that this module need not import the runner (a
# function goes to a worker by its name)
RunUnit = Callable[[Any, list[dict[str, Any]], int, Any], list[dict[str, Any]]]


class WorkerPool:
    """N worker processes for the districts' passes; a context manager. `connections`: the
    runner's per-thread connections (a class, made in each worker); `run_unit`: a batch of
    districts, or one alone."""

    def __init__(self, settings: Settings, workers: int, connections: type, run_unit: RunUnit):
        self._run_unit = run_unit
        context = mp.get_context("spawn")  # never fork a process with threads and connections
        self._events = context.SimpleQueue()
        self.workers = workers
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_start,
            initargs=(settings, self._events, os.getpid(), connections),
        )
        # start them now: their imports run while the runner builds the models
        self._warm = [self._pool.submit(_ready) for _ in range(workers)]

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def reset(
        self, units: list[list[dict[str, Any]]], year: int, progress: RunProgress
    ) -> list[dict[str, Any]]:
        """Each district's outcome, unit after unit."""
        in_hand: set[str] = set()
        relay = threading.Thread(
            target=self._relay, args=(progress, in_hand), name="eoy-progress", daemon=True
        )
        relay.start()
        futures: list[Future[list[dict[str, Any]]]] = []
        try:
            with contextlib.suppress(BrokenExecutor):  # a worker died: the rest say so below
                for unit in units:
                    futures.append(
                        self._pool.submit(_reset, self._run_unit, unit, year, current_scope())
                    )
            outcomes = [
                outcome
                for i, unit in enumerate(units)
                for outcome in self._outcomes(unit, futures[i] if i < len(futures) else None)
            ]
        finally:
            self._events.put(None)
            relay.join()
        for outcome in outcomes:
            if outcome.pop("_died", False) and outcome["district_id"] in in_hand:
                outcome["error"] = (
                    "the worker process resetting it died (killed, or out of memory): "
                    "run again to finish"
                )
        return outcomes

    def _outcomes(
        self, unit: list[dict[str, Any]], future: Future[list[dict[str, Any]]] | None
    ) -> list[dict[str, Any]]:
        if future is not None:
            try:
                return future.result()
            except BrokenExecutor:
                pass
        return [
            {
                "district_id": cand["district_id"],
                "status": "failed",
                "step": "run",
                "error": "not run: a worker process of this run died; run again to finish",
                "rows_deleted": 0,
                "_died": True,
            }
            for cand in unit
        ]

    def _relay(self, progress: RunProgress, in_hand: set[str]) -> None:
        """The workers' progress calls, made on the runner's display; which districts are in
        hand when a worker dies."""
        while (item := self._events.get()) is not None:
            name, args = item
            if name == "district_started":
                in_hand.add(args[0])
            elif name in ("district_done", "district_dropped"):
                in_hand.discard(args[0])
            getattr(progress, name)(*args)
