"""Crash safety: kill the runner (SIGKILL, no cleanup) at every named point, and with
`kill -9` at random moments, on both targets; run the same command again, and end in exactly
the state of an uninterrupted run (issue: reliability).

The reference is an uninterrupted run on identical data; the comparison covers every app
table, every snapshot file (rows and verification) and the ledger's runs and deletes.
`pytest -s -m slow -k random` prints where each random kill landed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from jobs.config import Settings
from jobs.warehouse.connection import connect
from jobs.warehouse.contract import STEPS
from tests.support.crash_helpers import (
    DISTRICTS,
    Pristine,
    assert_same_end_state,
    lock_holders,
    outcome,
    reference_outcome,
    run_cli,
    start_cli,
    wait_for,
)

pytestmark = pytest.mark.slow

STEP_POINTS = [f"{edge}:{step}" for step in STEPS for edge in ("before", "after")]
# mid-stream (a table's rows taken and deleted, the transaction open), after the files but
# before the commit, and just after the commit (the snapshot not yet in place)
INNER_POINTS = ["export:progress", "export:students", "commit:delete", "after:commit"]
POINTS = STEP_POINTS + INNER_POINTS


def cases(points: list[str]) -> list[Any]:
    """(target, point) for each point on both targets."""
    return [("duckdb", p) for p in points] + [
        pytest.param("postgres", p, marks=pytest.mark.postgres) for p in points
    ]


CASES = cases(POINTS)
TARGETS = ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)]
RANDOM_KILLS = {"duckdb": 6, "postgres": 4}
IN_A_ROW = 2  # kills on the same warehouse before the rerun that must finish the work


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return reference_outcome(tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def pristine(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Pristine]]:
    """The generated warehouse of a target, made on first use and copied for each case."""
    made: dict[str, Pristine] = {}

    def of(target: str) -> Pristine:
        if target not in made:
            base = request.getfixturevalue("pg_base_dsn") if target == "postgres" else None
            made[target] = Pristine(target, tmp_path_factory.mktemp(f"matrix-{target}"), base)
        return made[target]

    yield of
    for each in made.values():
        each.close()


@pytest.mark.parametrize(("target", "point"), CASES)
def test_killed_run_is_finished_by_running_again(
    target: str, point: str, pristine: Callable[[str], Pristine], reference: dict[str, object]
) -> None:
    settings = pristine(target).copy()
    killed = run_cli(settings, EOY_FAULT=point)
    assert killed.returncode == -9, f"the fault point {point} was never reached: {killed.stderr}"
    again = run_cli(settings)
    assert again.returncode == 0, again.stderr
    assert_same_end_state(outcome(settings), reference)


@pytest.mark.parametrize(("target", "point"), cases(INNER_POINTS))
def test_a_kill_with_two_batches_in_flight_is_finished_by_running_again(
    target: str, point: str, pristine: Callable[[str], Pristine], reference: dict[str, object]
) -> None:
    """Batches of two districts passing two at a time: killed inside one batch's
    transaction, or just after its commit, with the other batch in flight. The batch that
    reaches the point first waits there a moment, so the one beside it has begun; that one
    may have committed by the kill, or not."""
    settings = pristine(target).copy()
    killed = run_cli(
        settings, EOY_FAULT=point, EOY_PAUSE=f"{point}:0.3@1", EOY_TEST_BATCH_DISTRICTS="2"
    )
    assert killed.returncode == -9, f"the fault point {point} was never reached: {killed.stderr}"
    with connect(settings) as wh:
        [(started, completed)] = wh.query(
            "select count(*), count(*) filter (where status = 'completed') "
            "from eoy_runner.reset_runs"
        )
    assert started == DISTRICTS, "both batches had started when it was killed"
    assert completed % 2 == 0, "only whole batches had committed"
    again = run_cli(settings)
    assert again.returncode == 0, again.stderr
    assert_same_end_state(outcome(settings), reference)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("batch", ["4", "2"], ids=["one-batch", "two-in-flight"])
def test_commits_whose_answer_is_lost_are_finished_in_the_same_run(
    target: str, batch: str, pristine: Callable[[str], Pristine], reference: dict[str, object]
) -> None:
    """Every pass's COMMIT reaches the server and its answer never comes back: each pass
    asks the warehouse on a fresh connection, learns it committed, and puts its snapshot in
    place; nothing is lost, and the run ends as an uninterrupted one."""
    settings = pristine(target).copy()
    done = run_cli(settings, EOY_RAISE="commit:ack", EOY_TEST_BATCH_DISTRICTS=batch)
    assert done.returncode == 0, done.stderr
    assert_same_end_state(outcome(settings), reference)


@pytest.mark.postgres
@pytest.mark.parametrize("point", ["export:students", "after:verify", "commit:delete"])
def test_a_lock_session_ended_mid_pass_is_finished_by_running_again(
    point: str, pristine: Callable[[str], Pristine], reference: dict[str, object]
) -> None:
    """The session holding the district's lock ends while its pass waits at a point (a
    server timeout, a terminated backend), and a second runner starts at once: whatever the
    point, the district is deleted once, with one complete snapshot of every row."""
    settings = pristine("postgres").copy()
    first = start_cli(settings, EOY_PAUSE=f"{point}:5@1", EOY_TEST_BATCH_DISTRICTS="1")
    with psycopg.connect(settings.pg_dsn or "", autocommit=True) as admin:
        wait_for(lambda: bool(lock_holders(admin, "d00001")), "the first runner's lock")
        time.sleep(0.5)  # at the point by now (it waits 5 s there)
        for pid in lock_holders(admin, "d00001"):
            admin.execute("select pg_terminate_backend(%s)", [pid])
        second = start_cli(settings)
        first.communicate(timeout=300)
        second.communicate(timeout=300)
    again = run_cli(settings)
    assert again.returncode == 0, again.stderr
    assert_same_end_state(outcome(settings), reference)


def last_event(settings: Settings) -> tuple[int, str]:
    """How many ledger events there are, and the last one as 'district step status'."""
    with connect(settings) as wh:
        rows = wh.query(
            "select district_id, step, status from eoy_runner.reset_events order by event_id"
        )
    return len(rows), " ".join(rows[-1]) if rows else "-"


@pytest.mark.parametrize("target", TARGETS)
def test_kill_9_at_random_moments_then_rerun(
    target: str, pristine: Callable[[str], Pristine], reference: dict[str, object]
) -> None:
    # an uninterrupted run ends as the reference; a second one (dbt's parse cache now warm,
    # as for every run below) is timed: start-up (interpreter, dbt build), then the districts
    settings = pristine(target).copy()
    assert run_cli(settings).returncode == 0
    assert_same_end_state(outcome(settings), reference)
    settings = pristine(target).copy()
    began = time.monotonic()
    timed = run_cli(settings)
    duration = time.monotonic() - began
    districts = json.loads(timed.stdout)["seconds_by_phase"]["districts"]
    start_up = duration - districts

    # one delay in each equal slice from halfway through the start-up to the end of the run,
    # in a seeded random order; kills in a row go earliest first
    rng = random.Random(f"kill-9:{target}")
    kills = RANDOM_KILLS[target]
    span = duration - start_up / 2
    delays = [round(start_up / 2 + span * (i + rng.random()) / kills, 2) for i in range(kills)]
    rng.shuffle(delays)
    landed: list[str] = []
    for first in range(0, kills, IN_A_ROW):
        settings = pristine(target).copy()
        for delay in sorted(delays[first : first + IN_A_ROW]):
            seen, _ = last_event(settings)
            proc = start_cli(settings)
            time.sleep(delay)
            proc.kill()
            proc.communicate(timeout=60)
            events, event = last_event(settings)
            where = event if events > seen else "before the first step (start-up, dbt build)"
            what = "killed" if proc.returncode == -9 else f"finished first ({proc.returncode})"
            landed.append(f"{delay:5.2f}s {what}: {where}")
        again = run_cli(settings)
        assert again.returncode == 0, again.stderr
        assert_same_end_state(outcome(settings), reference)
    print(
        f"\n{target}: run {duration:.2f}s (start-up {start_up:.2f}s), kill -9 after",
        *landed,
        sep="\n  ",
    )
    assert sum("killed" in line for line in landed) >= kills // 2, landed
