"""Debian's chromium for the report's rendering test, installed when missing.

Installing it takes a worker half a minute, so the test session starts the install in the
background as soon as it knows a test needs it (`install_in_background`), and the fixture
waits for it (`installed`). Both take the same lock: one installer at a time, whichever
comes first, and the other finds chromium there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.locks import file_lock

CHROMIUM = Path("/usr/bin/chromium")
LOCK = Path(tempfile.gettempdir()) / "eoy-reset-chromium.lock"


def _can_install() -> bool:
    return shutil.which("apt-get") is not None and os.geteuid() == 0


def _apt_get(*args: str) -> bool:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(["apt-get", *args], env=env, capture_output=True, timeout=600)
    return done.returncode == 0


def _install() -> bool:
    """Install chromium under the lock (an update first only if the install fails)."""
    with file_lock(LOCK):
        if CHROMIUM.exists():
            return True
        if _apt_get("install", "-y", "chromium"):
            return True
        _apt_get("update")
        return _apt_get("install", "-y", "chromium")


def install_in_background() -> None:
    """Start the install in a process of its own, if chromium is missing and can be had."""
    if CHROMIUM.exists() or not _can_install():
        return
    subprocess.Popen(
        [sys.executable, "-m", "tests.support.chromium"],
        cwd=Path(__file__).resolve().parents[2],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def installed() -> str | None:
    """None once chromium is there (after any install under way), else why it is not."""
    if CHROMIUM.exists():
        return None
    if not _can_install():
        return "chromium is missing and cannot be installed: run as root on Debian"
    if not _install():
        return "apt-get install -y chromium failed"
    return None if CHROMIUM.exists() else "chromium was installed but /usr/bin/chromium is missing"


if __name__ == "__main__":
    sys.exit(0 if _install() else 1)
