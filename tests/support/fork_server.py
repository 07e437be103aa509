"""`eoy-reset` as a process of its own, forked from a server that has already imported what
the command needs (dbt and its adapters, polars, pyarrow, DuckDB, psycopg, ADBC, boto3).

A command that is killed, raced against another runner or paused must run in a process of
its own; a new interpreter spends seconds importing before the command's first line. The
server (one per test process, `python -c "…serve()"`) pays that once, with one dbt
build that leaves dbt's first-invocation set-up done (`warm_up`), and forks a child per
command: the child is a real process (its own pid, DuckDB file lock, PostgreSQL
connections), killed with SIGKILL like any other, and runs the entry point of
`python -m jobs` (`jobs.cli.main`) with the command's argv, environment and working folder.

The server is started with `-c`, not `-m`, and so a child ends as the `eoy-reset` script
does: with the code of its SystemExit. Under `-m`, CPython ends the process by SIGINT instead
once any KeyboardInterrupt has left an `exec` of a string, however it was caught later: a
Ctrl-C that landed in a library's generated code made the command's exit 130 a death by
SIGINT, one time in forty.

`start(args, env, cwd)` returns a `Forked`, which answers like `subprocess.Popen` (`pid`,
`poll`, `wait`, `kill`, `terminate`, `communicate`, `returncode`).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# what a command imports on its way, so that no child imports it again
PRELOAD = (
    "jobs.cli",
    "dbt.cli.main",
    "dbt.adapters.duckdb",
    "dbt.adapters.postgres",
    "duckdb",
    "polars",
    "pyarrow.parquet",
    "pyarrow.fs",
    "psycopg",
    "adbc_driver_postgresql.dbapi",
    "boto3",
)


# ---------------------------------------------------------------------------------------
# the server
# ---------------------------------------------------------------------------------------
def _child(request: dict[str, Any]) -> int:
    """Runs in the forked child: become the command; its exit code."""
    stdin = os.open(request.get("stdin") or os.devnull, os.O_RDONLY)
    os.dup2(stdin, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, fd)
        os.close(out)
    # a pipe's streams, as a new interpreter would have them
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(  # noqa: SIM115
        2, "w", encoding="utf-8", errors="backslashreplace", closefd=False, buffering=1
    )
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["eoy-reset", *request["args"]]
    batch = request["env"].get("EOY_TEST_BATCH_DISTRICTS")
    if batch:  # a test's batches of fewer districts (the command has no such setting)
        import jobs.reset.runner

        jobs.reset.runner.BATCH_DISTRICTS = int(batch)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from jobs.cli import main
    from tests.support.in_process import exit_code

    try:
        main()
    except SystemExit as exc:
        return exit_code(exc)
    return 0


def warm_up() -> None:
    """One dbt build on a throwaway DuckDB warehouse: what dbt sets up at its first invocation
    in a process (about a second) is then done once here, not in every child."""
    from jobs.config import Settings
    from jobs.plan.dbt import RUN_SELECTION, build_models
    from jobs.warehouse.connection import connect
    from jobs.warehouse.schema import init_warehouse
    from tests.support.in_process import close_dbt_duckdb

    with tempfile.TemporaryDirectory(prefix="eoy-fork-warm-up-") as folder:
        settings = Settings(
            target="duckdb",
            duckdb_path=Path(folder) / "warehouse.duckdb",
            snapshot_root=Path(folder) / "snapshots",
        )
        with connect(settings, create=True, require_init=False) as wh:
            init_warehouse(wh)
        # dbt's static parser (Rust) keeps threads that a forked child would wait on forever:
        # the server parses without it, a child with it
        os.environ["DBT_STATIC_PARSER"] = "false"
        try:
            build_models(settings, RUN_SELECTION)
        finally:
            del os.environ["DBT_STATIC_PARSER"]
            close_dbt_duckdb()


def serve() -> None:
    for name in PRELOAD:
        __import__(name)
    warm_up()
    # what the server holds, out of every child's collections: a child's collector then
    # neither walks it nor writes to its pages (which the child would have to copy)
    gc.collect()
    gc.freeze()
    ended: dict[int, int] = {}
    lock = threading.Lock()

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.005)
                continue
            with lock:
                ended[pid] = os.waitstatus_to_exitcode(status)

    threading.Thread(target=reap, daemon=True).start()
    channel_in = sys.stdin.buffer
    channel_out = sys.stdout.buffer
    channel_out.write(b'{"ready": true}\n')
    channel_out.flush()
    while line := channel_in.readline():
        request = json.loads(line)
        if request["op"] == "start":
            pid = os.fork()
            if pid == 0:
                # the child leaves the server's loop and ends as an interpreter does (exit
                # handlers, semaphores released), with the command's code
                sys.exit(_child(request))
            reply: dict[str, Any] = {"pid": pid}
        else:
            with lock:
                reply = {"code": ended.pop(request["pid"], None)}
        channel_out.write(json.dumps(reply).encode() + b"\n")
        channel_out.flush()


# ---------------------------------------------------------------------------------------
# the test process's side
# ---------------------------------------------------------------------------------------
class _Server:
    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EOY_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tests.support.fork_server import serve; serve()"],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.lock = threading.Lock()
        assert self._read() == {"ready": True}

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fork server has ended")
        return json.loads(line)  # type: ignore[no-any-return]

    def call(self, **request: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        with self.lock:
            self.proc.stdin.write(json.dumps(request).encode() + b"\n")
            self.proc.stdin.flush()
            return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


_server: _Server | None = None


def _the_server() -> _Server:
    global _server
    if _server is None or _server.proc.poll() is not None:
        _server = _Server()
        atexit.register(_server.close)
    return _server


class Forked:
    """A forked command, answering like subprocess.Popen(…, stdout=PIPE, stderr=PIPE,
    text=True): its output is read when it has ended."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        cwd: Path,
        *,
        stdin: str | None = None,
        stderr: str | None = None,
    ) -> None:
        """stdin from /dev/null, or the file or terminal (a pty's /dev/pts path) `stdin`
        names; stderr to the terminal `stderr` names, if given (communicate() then returns
        no stderr)."""
        self.args = ["eoy-reset", *args]
        self._out = tempfile.NamedTemporaryFile(prefix="eoy-out-", delete=False)  # noqa: SIM115
        self._err = tempfile.NamedTemporaryFile(prefix="eoy-err-", delete=False)  # noqa: SIM115
        self._server = _the_server()
        reply = self._server.call(
            op="start",
            args=args,
            env=env,
            cwd=str(cwd),
            stdin=stdin,
            stdout=self._out.name,
            stderr=stderr or self._err.name,
        )
        self.pid: int = reply["pid"]
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.call(op="status", pid=self.pid)["code"]
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        texts = []
        for handle in (self._out, self._err):
            handle.close()
            path = Path(handle.name)
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
            path.unlink(missing_ok=True)
        return texts[0], texts[1]


def start(args: list[str], env: dict[str, str], cwd: Path, **streams: str | None) -> Forked:
    """`eoy-reset <args>` in a process of its own, with exactly this environment, in cwd
    (`streams`: stdin, stderr, as `Forked` takes them)."""
    return Forked(args, env, cwd, **streams)


if __name__ == "__main__":
    serve()
