"""`run` at an 80-column terminal: the progress bars end where the run ended, never cut, each
district's line names what it is taking; the summary's seconds are the districts' own; and
Ctrl-C stops the run with one line and exit 130, during the dbt build as during the delete."""

from __future__ import annotations

import io
import json
import re

from rich.console import Console

from jobs.config import Settings
from jobs.plan.view import SHORT_NAMES
from jobs.reset.result import DistrictOutcome
from jobs.reset.view import NOTE_WIDTH, RunProgress, rate_note
from jobs.synthetic.generate import generate_districts
from jobs.warehouse.connection import connect
from jobs.warehouse.contract import DELETED_TABLES
from jobs.warehouse.schema import init_warehouse
from tests.support.operator_data import eoy
from tests.support.terminal import at_terminal

RUN = ["run", "--as-of", "2023-07-28", "--yes"]
INTERRUPTED = "eoy-reset: interrupted; run the same command again to finish"
# a progress line: its label, its bar, then `done/total`
COUNTS = re.compile(r"^(\S.*?|  \S+(?: \S+)*?)\s+[━╸╺ ]+\s+([\d,]+)/([\d,]+)(?:\s|$)")


def generated(settings: Settings, districts: int = 6) -> int:
    """A warehouse of generated districts; their student rows."""
    with connect(settings, create=True, require_init=False) as wh:
        init_warehouse(wh)
        counts = generate_districts(wh, districts, seed=5, students_per_district=40)
    return sum(counts[t] for t in DELETED_TABLES)


def rows_deleted(settings: Settings) -> int:
    with connect(settings) as wh:
        return int(wh.scalar("select coalesce(sum(rows_deleted), 0) from eoy_runner.reset_runs"))


def bars(lines: list[str]) -> list[tuple[str, int, int]]:
    """(label, done, total) of every progress line drawn."""
    found = []
    for line in lines:
        match = COUNTS.match(line)
        if match:
            label, done, total = match.groups()
            found.append((label.strip(), int(done.replace(",", "")), int(total.replace(",", ""))))
    return found


def test_the_bars_end_at_the_rows_deleted_and_fit_80_columns(settings: Settings) -> None:
    generated(settings)
    # batches of two districts: two pass at a time, on threads of their own
    shown = at_terminal(settings, RUN, EOY_TEST_BATCH_DISTRICTS="2")
    assert shown.code == 0, shown.terminal
    deleted = rows_deleted(settings)
    assert deleted > 0
    drawn = bars(shown.lines)
    rows = [(done, total) for label, done, total in drawn if label == "rows"]
    assert rows[-1] == (deleted, deleted), rows[-3:]
    assert all(total == deleted for _, total in rows), "the rows bar counts each row once"
    assert all(len(line) <= 80 for line in shown.lines), shown.terminal
    assert not [line for line in shown.lines if "━" in line and "…" in line], shown.terminal
    # each district's line names the table it takes (as the plan names them), then its
    # check and commit (which of them a redraw caught depends on the machine's speed)
    labels = {label.partition(" ")[2] for label, _, _ in drawn if label.startswith("d0")}
    names = {SHORT_NAMES.get(t, t) for t in DELETED_TABLES}
    assert labels - {""} and labels <= names | {"verify, commit", ""}, labels
    seconds = re.findall(r"│ (d\d{5}) +│ completed │ +[\d,]+ │ +([\d.]+) │", shown.stdout)
    assert len(seconds) == 5 and all(float(s) > 0 for _, s in seconds), shown.stdout


def test_a_district_of_a_batch_took_the_batchs_time(settings: Settings) -> None:
    generated(settings)
    done = eoy(settings, [*RUN, "--json"])
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    seconds = {d["seconds"] for d in doc["districts"]}
    # one batch of five districts: each took the batch's time, not a fifth of it
    assert len(doc["districts"]) == 5 and len(seconds) == 1, doc["districts"]
    assert seconds.pop() >= 0.8 * doc["seconds_by_phase"]["districts"] > 0


def test_progress_lines_are_never_cut_at_80_columns() -> None:
    """A large run and a long district id: the counts stay whole, the label gives way."""
    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, color_system=None)
    progress = RunProgress(True, 3, 123_456_789, console=console)
    assert progress._bar is not None
    with progress:
        progress.district_started("d" * 40, 123_000_000)
        progress.table("d" * 40, "snapshot", "classroom_enrollments", 0)
        progress.table("d" * 40, "snapshot", "classroom_enrollments", 99_999_999)
        progress._bar.refresh()
        progress.table("d" * 40, "snapshot", "students", 23_000_001)
        progress._bar.refresh()
        drawn = [ln for ln in re.split(r"[\r\n]+", out.getvalue()) if ln.strip()]
        progress.district_done("d" * 40)
        progress.finish([DistrictOutcome("d" * 40, "completed")])
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    lines = [ln.rstrip() for ln in re.split(r"[\r\n]+", text) if ln.strip()]
    assert drawn and all(len(ln) <= 80 for ln in lines), lines
    assert any("99,999,999/123,000,000" in ln and "enrollments" in ln for ln in lines), lines
    assert any("verify, commit" in ln for ln in lines), lines
    assert lines[-1].startswith("rows") and lines[-1].endswith("123,000,000/123,000,000"), lines


def test_the_rate_note_fits_its_column_at_any_speed() -> None:
    """A burst of a million rows a second, or hours left: the note is never cut."""
    for speed in (0.4, 1, 999_999, 999_999.6, 1_369_368, 123_456_789_012):
        for left in (None, 0, 59, 3599, 35_999, 360_000):
            note = rate_note(speed, left)
            assert len(note) <= NOTE_WIDTH and note.endswith(("rows/s", "left")), note
    assert rate_note(1_369_368, 1) == "1.4M rows/s, 0:01 left"
    assert rate_note(12_345, 62) == "12,345 rows/s, 1:02 left"
    assert rate_note(999_999, 36_000) == "999,999 rows/s"
    assert rate_note(0, 5) == rate_note(None, None) == ""


def test_ctrl_c_during_the_delete_rolls_back_says_so_and_exits_130(settings: Settings) -> None:
    students = generated(settings, districts=3)
    # paused inside the districts' one transaction, every row taken: Ctrl-C there
    shown = at_terminal(settings, RUN, interrupt_when="verify, commit", EOY_PAUSE="after:export:60")
    assert shown.code == 130, shown.terminal
    assert shown.lines[-1] == INTERRUPTED and shown.terminal.count(INTERRUPTED) == 1
    assert "Traceback" not in shown.terminal and not shown.stdout
    # the bars stopped with no district in hand
    after_bars = shown.lines[shown.lines.index(INTERRUPTED) - 2 :]
    assert [ln.split()[0] for ln in after_bars[:2]] == ["districts", "rows"], after_bars
    assert rows_deleted(settings) == 0
    with connect(settings) as wh:
        assert wh.scalar("select count(*) from app.students") == 3 * 40 < students
    again = eoy(settings, RUN)
    assert again.returncode == 0, again.stderr
    assert rows_deleted(settings) == students


def test_ctrl_c_during_the_dbt_build_says_so_and_exits_130(settings: Settings) -> None:
    generated(settings, districts=2)
    shown = at_terminal(settings, RUN, interrupt_when="building the reset models")
    assert shown.code == 130, shown.terminal
    assert shown.lines[-1] == INTERRUPTED and shown.terminal.count(INTERRUPTED) == 1
    assert "dbt" not in shown.terminal.replace("building the reset models", "")
    assert rows_deleted(settings) == 0
