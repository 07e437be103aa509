"""The test-only fault switches stay out of the product's reach (issue #11, item 7):
EOY_FAULT and EOY_PAUSE act only when EOY_TEST_FAULTS=1, which only the test suite sets;
set by accident on a production run, they are ignored with one warning line.
"""

from __future__ import annotations

import json
import time

import pytest

from jobs import faults
from jobs.config import Settings
from tests.support.crash_helpers import fresh, run_cli


def test_a_fault_switch_without_the_test_switch_is_ignored(settings: Settings) -> None:
    fresh(settings)

    # the suite's own way: the fault acts
    killed = run_cli(settings, EOY_FAULT="before:export")
    assert killed.returncode == -9, killed.stderr

    # the same switches left in a production shell: the run completes, with one warning
    began = time.monotonic()
    done = run_cli(
        settings, EOY_FAULT="before:export", EOY_PAUSE="before:complete:120", EOY_TEST_FAULTS=""
    )
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - began < 120, "EOY_PAUSE stalled a run it should not touch"
    result = json.loads(done.stdout)
    assert result["districts"] and not result["failed"]
    assert all(d["status"] == "completed" for d in result["districts"])
    warnings = done.stderr.strip().splitlines()
    assert len(warnings) == 1, done.stderr
    assert "EOY_FAULT" in warnings[0] and "EOY_PAUSE" in warnings[0]
    assert "ignored" in warnings[0]


def test_a_pause_with_a_count_sleeps_only_at_that_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(faults.time, "sleep", slept.append)
    monkeypatch.setattr(faults, "_hits", {})
    monkeypatch.setenv("EOY_TEST_FAULTS", "1")
    monkeypatch.setenv("EOY_PAUSE", "export:*:1.5@2")
    for table in ("students", "classrooms", "students"):
        faults.fault_point(f"export:{table}")
    faults.fault_point("after:export")
    assert slept == [1.5]  # the second export point only

    monkeypatch.setenv("EOY_PAUSE", "after:export:0.25")
    faults.fault_point("after:export")
    faults.fault_point("after:export")
    assert slept == [1.5, 0.25, 0.25]  # without a count: every time
