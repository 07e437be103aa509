"""Test-only fault switch: kill the process at a named point, to prove a rerun recovers.

Set `EOY_FAULT=<point>` (or `<point>@<n>` to die at the n-th time the point is reached;
`*` wildcards allowed) and the process kills itself with SIGKILL there — no cleanup, no
rollback from Python, exactly like a crash or `kill -9`. Unset, a fault point costs one
dictionary lookup.

Points: before:<step> and after:<step> for every runner step; in a district's one
transaction, export:<table> (that table's rows taken and deleted, mid-stream), commit:delete
(the files verified, the manifest and the ledger events written, just before the commit),
commit:ack (the COMMIT returned, inside the pass's commit) and after:commit (committed, the
snapshot folder not yet renamed into place); and import:<table>
(inside the `import-oneroster` transaction, after that table's rows were written). Only
the pause_syncs points, before:export and after:complete lie outside a transaction.

`EOY_RAISE=<point>` raises `LostConnection` there instead (each time, or with `@<n>` only the
n-th time), as a driver does when the connection drops under it: at `commit:ack` (the server
committed, its answer never came back) it is the lost acknowledgement of a COMMIT.

`EOY_PAUSE=<point>:<seconds>` sleeps at a point instead, so a test can break the world
around a live transaction (terminate its connection, restart the server); each time the point
is reached, or, with `<point>:<seconds>@<n>`, only the n-th time.

They act only when `EOY_TEST_FAULTS=1` is set too, which only the test suite sets: left in a
production shell by accident they are ignored, and the command says so in one line.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from fnmatch import fnmatchcase

from jobs.config import fault_switch

_hits: dict[str, int] = {}
_hits_lock = threading.Lock()  # two batches in flight reach the same points
SWITCHES = ("EOY_FAULT", "EOY_RAISE", "EOY_PAUSE")
ENABLE = "EOY_TEST_FAULTS"


class LostConnection(ConnectionError):
    """A test fault: the connection dropped as the server's answer came back."""


def enabled() -> bool:
    return fault_switch(ENABLE) == "1"


def ignored_switches_warning() -> str | None:
    """One line for stderr when a fault switch is set but not enabled, else None."""
    given = [name for name in SWITCHES if fault_switch(name)]
    if not given or enabled():
        return None
    names = " and ".join(given)
    return (
        f"eoy-reset: warning: {names} ignored: test-only switches, they act only in the "
        f"test suite ({ENABLE}=1); unset {names} to silence this warning"
    )


def _hit(key: str) -> int:
    """How many times the point has been reached, this time included."""
    with _hits_lock:
        _hits[key] = _hits.get(key, 0) + 1
        return _hits[key]


def fault_point(name: str) -> None:
    if not enabled():
        return
    pause = fault_switch("EOY_PAUSE")
    if pause:
        point, _, when = pause.rpartition(":")
        seconds, _, nth = when.partition("@")
        if fnmatchcase(name, point):
            hits = _hit(f"pause:{point}")
            if not nth or hits == int(nth):
                time.sleep(float(seconds))
    raising = fault_switch("EOY_RAISE")
    if raising:
        pattern, _, nth = raising.partition("@")
        if fnmatchcase(name, pattern) and (not nth or _hit(f"raise:{pattern}") == int(nth)):
            raise LostConnection(
                f"server closed the connection unexpectedly (test fault at {name})"
            )
    spec = fault_switch("EOY_FAULT")
    if not spec:
        return
    pattern, _, nth = spec.partition("@")
    if fnmatchcase(name, pattern) and _hit(pattern) >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
