"""What the commands tell the operator to do next is right, and the same everywhere: commands
they print run as printed; a restored district gets one piece of advice from every command;
hints and defaults that used to fail (issue: what a newcomer trips over, items 7 and 8)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from jobs.config import PROJECT_DIR, Settings, redact_dsn
from jobs.snapshot.layout import district_dir
from jobs.warehouse.connection import connect
from jobs.warehouse.ledger import take_up_again
from tests.support import operator_data as od
from tests.support.crash_helpers import cli_env
from tests.support.in_process import run_in_process
from tests.support.operator_data import eoy, one_line
from tests.support.reset_data import insert_rows, request
from tests.support.runner_helpers import small_district

RUN = ["run", "--as-of", "2023-07-28"]


def global_options(settings: Settings) -> list[str]:
    """The warehouse as options on the command line (the environment then names none)."""
    if settings.target == "postgres":
        return ["--target", "postgres", "--pg-dsn", settings.pg_dsn or ""]
    return ["--duckdb-path", str(settings.duckdb_path)]


def runnable(line: str) -> list[str]:
    """The arguments of a printed command line, once its program is checked to be this one."""
    program, *args = shlex.split(line)
    assert program == "eoy-reset" or Path(program).name == "eoy-reset", line
    assert shutil.which(program) or Path(program).is_file(), line
    return args


def test_plan_out_prints_the_commands_that_approve_and_run_it(
    settings: Settings, tmp_path: Path
) -> None:
    od.fresh(settings)
    plan = tmp_path / "plan.json"
    given = global_options(settings)
    proc = eoy(settings, [*given, "plan", "--as-of", "2023-07-28", "--out", str(plan)])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"Plan written to {plan}"))
    approve, run = (runnable(line) for line in lines[at + 1 : at + 3])
    expected = [*given, "run", "--as-of", "2023-07-28", "--plan", str(plan)]
    if settings.target == "postgres":  # never the password: the DSN as libpq reads it
        expected[3] = redact_dsn(settings.pg_dsn or "")
    assert run == expected
    # as printed, in a shell that has none of the EOY_* variables
    bare = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EOY_TEST_FAULTS": "1"}
    for args in (approve, run):
        done = run_in_process(args, bare, tmp_path)
        assert done.returncode == 0, (args, done.stderr)
    assert "2 completed" in done.stdout


def test_a_restored_district_gets_one_advice_from_every_command(
    settings: Settings, tmp_path: Path
) -> None:
    od.fresh(settings)
    assert eoy(settings, [*RUN, "--yes"]).returncode == 0
    advice = take_up_again("early", 2023, date(2023, 7, 3))
    line = f"District early was restored: {advice}."
    # restore without a school year: the district's latest reset in the ledger
    restored = eoy(settings, ["restore", "--district", "early"])
    assert restored.returncode == 0, restored.stderr
    assert "school year 2023, its latest reset in the ledger" in restored.stdout
    assert advice in restored.stdout and "syncs stay paused" in restored.stdout
    dry = eoy(settings, [*RUN, "--dry-run"])
    assert dry.returncode == 0 and line in dry.stdout, dry.stdout
    plan = tmp_path / "plan.json"
    planned = eoy(settings, ["plan", "--as-of", "2023-07-28", "--out", str(plan)])
    assert line in planned.stdout, planned.stdout
    assert eoy(settings, ["approve", str(plan)]).returncode == 0
    by_plan = eoy(settings, [*RUN, "--plan", str(plan)])
    assert by_plan.returncode == 0 and line in by_plan.stdout, by_plan.stdout
    resumed = json.loads(eoy(settings, ["resume-syncs", "--json"]).stdout)
    why = {w["district_id"]: w["why"] for w in resumed["waiting"]}
    assert why["early"].endswith(advice) and "restored" in why["early"], why
    # and the advice does what it says (the operator types the confirmation it asks for)
    again = eoy(settings, runnable(advice.split("`")[1]), answer="1")
    assert again.returncode == 0, again.stderr
    with connect(settings) as wh:
        assert wh.scalar(
            "select status from eoy_runner.reset_runs where district_id = 'early'"
        ) == ("completed")


def test_restore_without_a_school_year_names_what_is_missing(settings: Settings) -> None:
    od.fresh(settings)
    one_line(eoy(settings, ["restore", "--district", "default"]), "has no reset in the ledger")
    missing = one_line(eoy(settings, ["export", "--district", "early", "--out", "."]))
    assert "Missing option '--school-year'" in missing and "None" not in missing


def test_verify_against_source_after_a_reset_checks_that_nothing_is_left(
    settings: Settings,
) -> None:
    od.fresh(settings)
    assert eoy(settings, [*RUN, "--yes"]).returncode == 0
    with connect(settings) as wh:  # the new year's students arrive
        small_district(wh, "newcomer", students=1)
        wh.execute("update app.students set district_id = 'early' where district_id = 'newcomer'")
    folder = district_dir(settings.snapshot_root, 2023, "early")
    proc = eoy(settings, ["verify-snapshot", str(folder), "--against-source", "--json"])
    assert proc.returncode == 0, proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["against_source"] == "deleted" and doc["tables"]["students"]["source_rows"] == 1
    assert {t["left_after_reset"] for t in doc["tables"].values()} == {0}
    shown = eoy(settings, ["verify-snapshot", str(folder), "--against-source"], COLUMNS="80")
    assert "none of them is left in the warehouse" in " ".join(shown.stdout.split())
    # one snapshotted row back in the warehouse: that fails, naming the table
    with connect(settings) as wh:
        wh.execute(
            "insert into app.students values "
            "('early-s0', 'early', 'early-sch', 'u', 'Kid', 'Doe', '3', '2022-09-01')"
        )
    failed = eoy(settings, ["verify-snapshot", str(folder), "--against-source"])
    assert failed.returncode == 1
    assert "students: 1 of the snapshot's rows are still in the warehouse" in failed.stderr


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_the_plan_names_a_date_source_one_way(settings: Settings) -> None:
    od.fresh(settings)
    with connect(settings) as wh:
        small_district(wh, "summer")
        insert_rows(
            wh,
            "district_reset_requests",
            [request("summer", date(2023, 7, 10), summer=date(2023, 7, 20))],
        )
    proc = eoy(settings, ["plan", "--as-of", "2023-07-28"], COLUMNS="80")
    assert proc.returncode == 0, proc.stderr
    assert "Request issues" in proc.stdout and "after_session_end" not in proc.stdout
    assert proc.stdout.count("after session") == 2  # the due table, the request issues


def test_report_is_as_of_the_last_reset_date_by_default(settings: Settings, tmp_path: Path) -> None:
    od.fresh(settings)
    assert eoy(settings, [*RUN, "--yes"]).returncode == 0
    html = tmp_path / "r.html"
    proc = eoy(settings, ["report", "--html", str(html)], COLUMNS="80")
    assert proc.returncode == 0, proc.stderr
    assert "as of 2023-07-28 (its last reset date in the ledger)" in proc.stdout
    assert "as of 2023-07-28" in html.read_text()


def test_hold_release_and_purge_say_which_districts(settings: Settings) -> None:
    od.fresh(settings)
    assert eoy(settings, [*RUN, "--yes"]).returncode == 0
    never = eoy(settings, ["release", "--district", "default"])
    assert never.returncode == 0
    assert "District default was not under legal hold: nothing to release." in never.stdout
    assert eoy(settings, ["hold", "--district", "early"]).returncode == 0
    again = eoy(settings, ["hold", "--district", "early"])
    assert "District early is under legal hold (it was already)." in again.stdout
    purge = eoy(settings, ["purge-snapshots", "--older-than", "0", "--dry-run"], COLUMNS="80")
    assert "kept 1 under legal hold (early)" in " ".join(purge.stdout.split())
    lifted = eoy(settings, ["release", "--district", "early"])
    assert "District early is no longer under legal hold." in lifted.stdout


def test_resume_syncs_is_a_table_and_its_json_has_totals(settings: Settings) -> None:
    od.fresh(settings)
    assert eoy(settings, [*RUN, "--yes"]).returncode == 0
    with connect(settings) as wh:
        wh.execute(
            "insert into app.rostering_runs (district_id, school_year, completed_at) "
            "values ('early', 2024, '2023-08-10 10:00:00')"
        )
    shown = eoy(settings, ["resume-syncs"], COLUMNS="80")
    assert shown.returncode == 0, shown.stderr
    rows = [[c.strip() for c in ln.split("│")[1:4]] for ln in shown.stdout.splitlines()]
    assert ["default", "2023", "paused"] in rows and ["early", "2023", "resumed"] in rows, rows
    assert all(len(ln) <= 80 for ln in shown.stdout.splitlines())
    with connect(settings) as wh:  # pause early again: the JSON of the same two
        wh.execute("update app.import_syncs set status = 'paused' where district_id = 'early'")
        wh.execute("delete from app.rostering_runs")
    doc = json.loads(eoy(settings, ["resume-syncs", "--json"]).stdout)
    assert doc["totals"] == {
        "districts": 2,
        "rows": 0,
        "by_status": {"paused": 2},
        "resumed": 0,
        "waiting": 2,
    }
    assert [d["district_id"] for d in doc["districts"]] == ["default", "early"]


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_help_at_80_columns_never_cuts_an_option_name(settings: Settings) -> None:
    from jobs.cli.entry import _command

    def commands(group: object, path: list[str]) -> list[tuple[list[str], object]]:
        found = [(path, group)]
        for name, sub in sorted(getattr(group, "commands", {}).items()):
            found += commands(sub, [*path, name])
        return found

    for path, command in commands(_command(), []):
        proc = eoy(settings, [*path, "--help"], COLUMNS="80")
        assert proc.returncode == 0, (path, proc.stderr)
        assert all(len(line) <= 80 for line in proc.stdout.splitlines()), proc.stdout
        words = set(re.findall(r"--?[a-z][a-z-]*", proc.stdout))
        for param in getattr(command, "params", []):
            for option in param.opts if param.opts[0].startswith("-") else []:
                assert option in words, (path, option, proc.stdout)


@pytest.mark.parametrize("target", ["duckdb"], indirect=True)
def test_the_demo_ends_with_commands_a_new_shell_runs(settings: Settings, tmp_path: Path) -> None:
    # a shell where the virtual environment is not active: its bin folder is not searched
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    env = {**cli_env(settings), "PATH": path}
    demo = run_in_process(["demo"], env, PROJECT_DIR)
    assert demo.returncode == 0, demo.stderr
    lines = demo.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.endswith("Try:"))
    assert "`. .venv/bin/activate` puts them on your PATH" in lines[at], lines[at]
    hints = [line for line in lines[at + 1 :] if line.startswith("  ")]
    assert len(hints) == 3 and all(h.split()[0] == ".venv/bin/eoy-reset" for h in hints), hints
    # the first as a new shell runs it, with none of the EOY_* variables; the others likewise,
    # in this process
    fresh = {"PATH": path, "HOME": str(tmp_path)}
    shell = subprocess.run(
        ["bash", "-c", hints[0].strip()], env=fresh, cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert shell.returncode == 0 and "completed" in shell.stdout, shell.stderr
    for hint in hints[1:]:
        done = run_in_process(runnable(hint), fresh, PROJECT_DIR)
        assert done.returncode == 0, (hint, done.stderr)
