"""How every command talks: one JSON convention, one-line errors, a spinner while it builds.

The JSON convention (docs/reference.md, "JSON output"), the same for every command with `--json`:
- `ok`: true on success; false on failure, with `error` (the line printed on stderr).
- paths are absolute (keys `path`, `*_path`, an export's `parts`, the DuckDB file of
  `warehouse`); a run's `parts` are part names (`main`, `d1`, ...);
- timestamps (keys `*_at`) are ISO 8601 with an offset, UTC `+00:00`; days are `YYYY-MM-DD`;
- `totals` is `{districts, rows, by_status?}` plus what only that command counts.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from jobs.config import spinner_off
from jobs.errors import EoyError

PATH_KEYS = frozenset({"path", "directory", "out", "html", "plan"})

_state = {"emitted": False}


class CommandFailed(EoyError):
    """The command ran and reported, but did not do all it was asked: exit 1, one line."""

    exit_code = 1


def json_requested(argv: list[str] | None = None) -> bool:
    """--json among the arguments (failures before a command parses still answer in JSON)."""
    args = sys.argv[1:] if argv is None else argv
    return "--json" in args


def already_emitted() -> bool:
    return _state["emitted"]


def new_command() -> None:
    """A command begins: nothing of it has been written yet."""
    _state["emitted"] = False


# ---------------------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------------------
INTERRUPTED = "interrupted; run the same command again to finish"
_interrupt = threading.Event()


def interrupted() -> bool:
    """Whether Ctrl-C was pressed during this command."""
    return _interrupt.is_set()


def check_interrupt() -> None:
    """Raise KeyboardInterrupt in this thread when Ctrl-C was pressed: Python delivers it to
    the main thread only, and dbt and the drivers turn it into errors of their own."""
    if _interrupt.is_set():
        raise KeyboardInterrupt


@contextmanager
def interrupts() -> Iterator[None]:
    """While a command runs, Ctrl-C is remembered (`interrupted`) as well as raised."""
    _interrupt.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum: int, frame: object) -> None:
        _interrupt.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------
def timestamp(value: datetime | str) -> str:
    """ISO 8601 with an offset; the ledger's naive timestamps are UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace(" ", "T", 1))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def absolute(path: str | Path) -> str:
    text = str(path)
    if "://" in text:  # an object-store root stays as it is
        return text
    return str(Path(text).expanduser().absolute())


def _is_path_key(key: str) -> bool:
    return key in PATH_KEYS or key.endswith("_path")


def normalize(value: Any, key: str = "") -> Any:
    """The document with the convention applied to every value (see the module's doc)."""
    if isinstance(value, dict):
        return {str(k): normalize(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalize(v, key) for v in value]
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Path):
        return absolute(value)
    if isinstance(value, str) and value:
        if _is_path_key(key):
            return absolute(value)
        if key == "warehouse" and value.startswith("duckdb:"):
            return "duckdb:" + absolute(value.removeprefix("duckdb:"))
        if key.endswith("_at"):
            try:
                return timestamp(value)
            except ValueError:
                return value
    return value


def totals(
    districts: int, rows: int, by_status: dict[str, int] | None = None, **extra: Any
) -> dict[str, Any]:
    """The one shape of `totals`: districts listed, student rows concerned, by status."""
    out: dict[str, Any] = {"districts": int(districts), "rows": int(rows)}
    if by_status is not None:
        out["by_status"] = dict(sorted(by_status.items()))
    out.update(extra)
    return out


def count_by(items: list[dict[str, Any]], key: str = "status") -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[str(item[key])] = counts.get(str(item[key]), 0) + 1
    return counts


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def emit_json(doc: dict[str, Any], error: str | None = None) -> None:
    """The command's one JSON document on stdout: `ok` first, then the document."""
    head: dict[str, Any] = {"ok": error is None and doc.get("ok", True) is not False}
    if error is not None:
        head["error"] = error
    body = {k: v for k, v in normalize(doc).items() if k not in ("ok", "error")}
    sys.stdout.write(json.dumps({**head, **body}, indent=2, default=str) + "\n")
    sys.stdout.flush()
    _state["emitted"] = True


def emit(
    doc: dict[str, Any], as_json: bool, render: Callable[[], object], error: str | None = None
) -> None:
    """A command's result: its JSON document with --json, else what `render` prints."""
    if as_json:
        emit_json(doc, error=error)
    else:
        render()


def emit_failure(message: str) -> None:
    """`{"ok": false, "error": ...}` unless the command already wrote its document."""
    if not _state["emitted"]:
        emit_json({}, error=message)


# ---------------------------------------------------------------------------------------
# commands to type next
# ---------------------------------------------------------------------------------------
def program() -> str:
    """`eoy-reset` as the operator's shell reaches it here: its name when the shell finds
    this very program, else its path (relative under the working folder): after `make demo`
    it lives in `.venv/bin`, which a fresh shell does not search."""
    given = Path(sys.argv[0]) if sys.argv and os.sep in sys.argv[0] else None
    script = given if given is not None and given.name == "eoy-reset" else None
    script = script or Path(sys.executable).with_name("eoy-reset")  # `python -m jobs`
    found = shutil.which("eoy-reset")
    if not script.is_file() or (found and Path(found).resolve() == script.resolve()):
        return "eoy-reset"
    path = script.absolute()
    with suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def command_line(args: Sequence[str], options: Sequence[str] = ()) -> str:
    """A command to type next, quoted for the shell: the program, its global options, args."""
    return " ".join(shlex.quote(str(a)) for a in (program(), *options, *args))


# ---------------------------------------------------------------------------------------
# the spinner
# ---------------------------------------------------------------------------------------
def spinner_wanted() -> bool:
    if spinner_off():
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def phase(text: str) -> Iterator[None]:
    """A spinner with what is happening on stderr, when stderr is a terminal; else nothing."""
    if not spinner_wanted():
        yield
        return
    with Console(stderr=True).status(text, spinner="dots"):
        yield


# ---------------------------------------------------------------------------------------
# the document of status (plan's is the plan's; run's is `jobs.reset.result`)
# ---------------------------------------------------------------------------------------
def status_document(doc: dict[str, Any]) -> dict[str, Any]:
    """`status --json`: the status document with the common totals."""
    rows = sum(int(d.get("rows_deleted") or 0) for d in doc["districts"])
    return {**doc, "totals": totals(len(doc["districts"]), rows, count_by(doc["districts"]))}
