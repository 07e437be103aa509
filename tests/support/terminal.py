"""A command with its stderr on a pseudo-terminal, where progress bars and spinners draw: what
the terminal showed, line by line, and Ctrl-C sent at a moment the test chooses."""

from __future__ import annotations

import os
import pty
import re
import signal
import threading
from dataclasses import dataclass

from jobs.config import PROJECT_DIR, Settings
from tests.support import fork_server
from tests.support.crash_helpers import cli_env

# colours go; a cursor move or an erased line ends the line drawn
_STYLE = re.compile(r"\x1b\[[0-9;]*m|\x1b[()][A-Z0-9]")
_MOVE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Shown:
    code: int
    stdout: str
    terminal: str  # what stderr drew, escape sequences removed

    @property
    def lines(self) -> list[str]:
        """Every line the terminal drew (each redraw of a bar is a line of its own)."""
        return [ln.rstrip() for ln in re.split(r"[\r\n]+", self.terminal) if ln.strip()]


def plain(text: str) -> str:
    return _MOVE.sub("\n", _STYLE.sub("", text))


def at_terminal(
    settings: Settings,
    args: list[str],
    *,
    columns: int = 80,
    interrupt_when: str | None = None,
    **env: str,
) -> Shown:
    """`eoy-reset <args>` with stderr on a terminal `columns` wide; with `interrupt_when`,
    a SIGINT (Ctrl-C) as soon as the terminal shows that text."""
    master, slave = pty.openpty()
    shown: list[bytes] = []
    seen = threading.Event()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # every end of the terminal closed, what it held read
                return
            if not chunk:
                return
            shown.append(chunk)
            if interrupt_when and interrupt_when in plain(b"".join(shown).decode(errors="replace")):
                seen.set()

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = fork_server.start(
            args,
            cli_env(settings, COLUMNS=str(columns), **env),
            PROJECT_DIR,
            stderr=os.ttyname(slave),
        )
        if interrupt_when:
            assert seen.wait(timeout=300), f"the terminal never showed {interrupt_when!r}"
            proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=600)
    finally:
        os.close(slave)  # the command has ended: the reader gets the rest, then EIO
    reader.join(timeout=10)
    os.close(master)
    return Shown(proc.wait(), out, plain(b"".join(shown).decode(errors="replace")))
